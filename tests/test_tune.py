"""`nnspec tune`: a study's results, pruning, grid search, worker processes, flag errors, and a study cut
off by Ctrl-C and by SIGKILL that goes on where it stopped without running a finished trial again."""
import csv
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
sqlalchemy = pytest.importorskip("sqlalchemy")

from conftest import run_cli  # noqa: E402
from nnspec.cli import main  # noqa: E402
from nnspec.data import Dataset  # noqa: E402
from nnspec.formatter import format_text  # noqa: E402
from nnspec.loader import loads  # noqa: E402
from nnspec.train.run import configure, train  # noqa: E402
from nnspec.tune.pruning import Pruning  # noqa: E402
from nnspec.tune.presence import ACTIVE, IDLE, Presence  # noqa: E402
from nnspec.tune.study import retry  # noqa: E402
from nnspec.tune.workers import run_trial  # noqa: E402

TINY = """\
model r {
  input x: float32[3]
  dense(choice(4, 8), activation=tanh)
  optional(dropout(0.2))
  dense(1)
}

train {
  loss             mse
  optimizer        sgd(learning_rate=RATE)
  batch_size       16
  epochs           EPOCHS
  validation_split 0.25
}
"""


def regression(n=128, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.1).astype(np.float32)


def write_spec(folder: Path, epochs=3, rate="log_uniform(0.01, 0.1)") -> Path:
    spec = folder / "r.nn"
    spec.write_text(TINY.replace("RATE", rate).replace("EPOCHS", str(epochs)))
    x, y = regression()
    np.savez(folder / "d.npz", x=x, y=y)
    return spec


def study(folder: Path, name="r") -> "optuna.Study":
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'r.tune' / 'study.db'}")


def test_two_worker_processes_write_the_table_the_best_spec_its_model_and_plots(tmp_path):
    write_spec(tmp_path, epochs=30)  # trials long enough that the worker starting second gets some
    result = run_cli("tune", "r.nn", "--data", "d.npz", "--trials", "4", "--jobs", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trials = study(tmp_path).get_trials()
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # two processes took trials from one study
    rows = list(csv.DictReader((tmp_path / "r.tune" / "trials.csv").open()))
    assert len(rows) == len(trials) == 4 and {r["state"] for r in rows} == {"complete"}
    losses = [float(r["val_loss"]) for r in rows]
    assert losses == sorted(losses) and float(rows[0]["seconds"]) > 0
    assert set(rows[0]) == {"trial", "state", "val_loss", "epochs", "seconds", "dense.units", "dropout.enabled",
                            "optimizer.learning_rate", "note"}
    table = result.stdout.splitlines()
    assert table[-6].split()[:3] == ["trial", "state", "val_loss"] and table[-5].split()[:2] == [rows[0]["trial"], "complete"]
    best = (tmp_path / "r.tune" / "r.best.nn").read_text()
    assert best.startswith(f"# The best trial ({rows[0]['trial']}) of `nnspec tune` study 'r': val_loss ")
    assert format_text(best) == best and loads(best, "best.nn").space is None
    assert f"dense({rows[0]['dense.units']}, activation=tanh)" in best
    assert (f"learning_rate={float(rows[0]['optimizer.learning_rate'])!r})") in best
    from nnspec.api import load as load_model

    predictions = load_model(str(tmp_path / "r.tune" / "best.onnx")).predict(regression(5)[0])
    assert predictions.shape == (5, 1)
    for picture in ("history.png", "params.png"):
        assert (tmp_path / "r.tune" / picture).read_bytes()[:4] == b"\x89PNG"


def test_a_trial_the_pruner_rejects_stops_after_that_epoch():
    spec = loads(TINY.replace("RATE", "0.05").replace("EPOCHS", "5").replace("choice(4, 8)", "4")
                 .replace("optional(dropout(0.2))", "dropout(0.2)"), "r.nn")
    config = configure(spec, {"verbose": 0})
    data = Dataset(*map(lambda a: [a], regression()))
    pruned = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))  # every loss is above 0

    def objective(trial):
        train(spec, config, data, None, verbose=0, device="cpu", callbacks=(Pruning(trial, "val_loss"),))
        return 0.0

    pruned.optimize(objective, n_trials=1)
    trial = pruned.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED and list(trial.intermediate_values) == [0]


def test_grid_search_runs_every_point_once(tmp_path, capsys):
    spec = write_spec(tmp_path, epochs=2, rate="0.05")
    assert main(["tune", str(spec), "--data", str(tmp_path / "d.npz"), "--sampler", "grid",
                 "-o", str(tmp_path / "r.tune")]) == 0
    points = {(t.params["dense.units"], t.params["dropout.enabled"]) for t in study(tmp_path).trials}
    assert len(study(tmp_path).trials) == 4 and points == {(4, True), (4, False), (8, True), (8, False)}
    assert "4 trials" not in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--trials", "0"], "nnspec tune: error: argument --trials: expected a positive number, got '0'"),
    (["--jobs", "two"], "nnspec tune: error: argument --jobs: expected a positive number, got 'two'"),
    (["--sampler", "grid"], "SPEC:10:38: error: grid search needs finite parameters, and optimizer.learning_rate "
                            "is log_uniform(0.01, 0.1): use choice() or int_range(), or another sampler"),
    (["--objective", "val_acc"], "nnspec tune: error: --objective val_acc: training reports loss, val_loss"),
    (["--storage", "nosuchdb://x"], "nnspec tune: error: --storage nosuchdb://x: cannot open it"),
    (["--study", "other", "--direction", "maximize"], None),  # a study made for another direction
])
def test_bad_flags_are_one_line_errors(tmp_path, capsys, args, message):
    spec = write_spec(tmp_path)
    base = ["tune", str(spec), "--data", str(tmp_path / "d.npz"), "-o", str(tmp_path / "out"), "--trials", "1"]
    if message is None:
        assert main(base + ["--study", "other"]) == 0
        capsys.readouterr()
        message = "nnspec tune: error: --study other: that study searches another space or objective"
    try:
        code = main(base + args)
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    lines = 3 if message.startswith("SPEC") else 1  # a spec's error shows its line and a caret
    assert code == 2 and err.startswith(message.replace("SPEC", str(spec))) and err.count("\n") == lines, err


def test_a_spec_without_a_space_or_without_optuna_is_refused(tmp_path, capsys, monkeypatch):
    (tmp_path / "p.nn").write_text("model p { input x: float32[3]\n dense(1) }\ntrain { loss mse }\n")
    assert main(["tune", str(tmp_path / "p.nn"), "-o", str(tmp_path / "out")]) == 2
    assert "p.nn: no search space to tune" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["tune", str(write_spec(tmp_path)), "-o", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == "nnspec tune: error: needs Optuna: pip install 'nnspec[tune]'\n"


def test_a_study_cut_off_by_ctrl_c_and_by_sigkill_goes_on_where_it_stopped(tmp_path):
    write_spec(tmp_path, epochs=60)  # long enough to be cut off in the middle on a fast machine
    command = [sys.executable, "-m", "nnspec.cli", "tune", "r.nn", "--data", "d.npz", "--trials", "4",
               "--pruner", "none", "--heartbeat", "1"]

    def cut_off(trial: int, how: signal.Signals) -> subprocess.CompletedProcess:
        """Run the study and stop it with `how` in the middle of `trial` (after its first checkpoint)."""
        process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        checkpoint = tmp_path / "r.tune" / "trials" / str(trial) / "checkpoint" / "checkpoint.npz"
        deadline = time.time() + 60
        while not checkpoint.exists() and time.time() < deadline:
            time.sleep(0.01)
        process.send_signal(how)
        out, err = process.communicate(timeout=60)
        return subprocess.CompletedProcess(command, process.returncode, out, err)

    interrupted = cut_off(1, signal.SIGINT)
    assert interrupted.returncode == 130, interrupted.stderr
    rows = {r["trial"]: r for r in csv.DictReader((tmp_path / "r.tune" / "trials.csv").open())}  # written on Ctrl-C
    assert (rows["0"]["state"], rows["1"]["state"], rows["1"]["note"]) == ("complete", "failed", "interrupted")
    assert (rows["2"]["state"], rows["2"]["note"]) == ("waiting", "rerun of trial 1")
    first = study(tmp_path).trials[0]

    killed = cut_off(3, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    time.sleep(2.5)  # the heartbeat's grace period: 2 seconds without a beat, and the trial is failed
    finished = run_cli(*command[3:], cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr

    trials = study(tmp_path).trials
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert (trials[0].value, trials[0].datetime_complete) == (first.value, first.datetime_complete)  # not run again
    for rerun, cut in ((trials[2], trials[1]), (trials[4], trials[3])):  # each cut-off trial ran again, resumed
        assert rerun.user_attrs["retry_of"] == cut.number and rerun.params == cut.params
        assert rerun.user_attrs["resumed_at_epoch"] > 1 and len(rerun.intermediate_values) == 60
    assert "rerun of trial 3; resumed at epoch" in finished.stdout


@pytest.mark.parametrize("heartbeat", [True, False], ids=["silent-heartbeat", "no-heartbeat"])
def test_a_trial_a_dead_worker_left_running_is_failed_and_run_again_before_the_command_ends(tmp_path, heartbeat):
    """The same command run again while a killed worker's trial still looks alive (its last heartbeat within
    the grace period), or after a worker was killed between making its trial and its first heartbeat: the
    trial counts toward --trials, so the command must wait for it to go stale rather than end with it RUNNING."""
    write_spec(tmp_path)
    command = ["tune", "r.nn", "--data", "d.npz", "--pruner", "none", "--heartbeat", "1"]
    assert run_cli(*command, "--trials", "1", cwd=tmp_path).returncode == 0
    url = f"sqlite:///{tmp_path / 'r.tune' / 'study.db'}"
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=1, engine_kwargs={"connect_args": {"timeout": 60}})
    dead = optuna.load_study(study_name="r", storage=storage).ask()

    again = subprocess.Popen([sys.executable, "-m", "nnspec.cli", *command, "--trials", "2"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if heartbeat:  # the dead worker's heartbeat goes on until the new command has opened the study
        reading = threading.Thread(target=again.stdout.readline)
        reading.start()
        while reading.is_alive():
            storage.record_heartbeat(dead._trial_id)
            reading.join(0.2)
    out, err = again.communicate(timeout=300)
    finished = subprocess.CompletedProcess(again.args, again.returncode, out, err)
    assert finished.returncode == 0, finished.stderr
    trials = study(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].user_attrs["retry_of"] == dead.number and "rerun of trial 1" in finished.stdout


def test_a_command_waits_for_another_live_worker_and_runs_the_rerun_of_the_trial_it_was_cut_off_in(tmp_path):
    """A killed Ray driver's task that Ray has not ended yet, seen from the same command run again: the study
    already holds --trials, but that live worker may still start a trial; the command must not end before it,
    and when that trial is cut off (here: as by Ctrl-C), it runs the rerun even though the study is full."""
    write_spec(tmp_path)
    command = ["tune", "r.nn", "--data", "d.npz", "--pruner", "none", "--heartbeat", "1", "--trials", "1"]
    assert run_cli(*command, cwd=tmp_path).returncode == 0
    url = f"sqlite:///{tmp_path / 'r.tune' / 'study.db'}"
    other = optuna.load_study(study_name="r", storage=optuna.storages.RDBStorage(
        url, engine_kwargs={"connect_args": {"timeout": 60}}))
    with Presence(other, heartbeat=1) as lease:
        lease.mark(ACTIVE)
        again = subprocess.Popen([sys.executable, "-m", "nnspec.cli", *command], cwd=tmp_path,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert again.stdout.readline().startswith("study 'r'")  # its worker starts now
        time.sleep(3)  # more than the lease's lifetime, and than the command takes to end when nothing holds it
        assert again.poll() is None  # still waiting for this worker
        cut = other.ask()  # one more trial, begun late, then cut off
        other.tell(cut, state=optuna.trial.TrialState.FAIL)
        retry(other, other.trials[cut.number])
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    trials = study(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].user_attrs["retry_of"] == 1


def test_a_worker_lease_counts_while_active_and_fresh():
    shared = optuna.create_study()
    with Presence(shared, heartbeat=60) as mine, Presence(shared, heartbeat=60) as theirs:
        assert not mine.others_active()  # idle
        theirs.mark(ACTIVE)
        assert mine.others_active() and not theirs.others_active()
        theirs.mark(IDLE)
        assert not mine.others_active()
        shared._storage.set_study_system_attr(shared._study_id, "nnspec:worker:dead", {"state": ACTIVE,
                                                                                      "at": time.time() - 121})
        assert not mine.others_active()  # older than twice the heartbeat: a dead worker's
    with Presence(shared, heartbeat=60) as last:
        assert not last.others_active()  # those that left are gone


def test_a_trial_failed_as_stale_while_its_worker_still_runs_it_is_run_once_more_not_twice(tmp_path):
    """A live worker's heartbeat late on a loaded machine (here: the worker stopped with SIGSTOP), so that
    another worker fails its trial and queues it again. Once it runs again, the late worker stops that trial
    at its next epoch (no late result, no traceback), runs the rerun from the trial's checkpoint, and ends."""
    epochs = 200  # far more than can run between the first checkpoint and the stop
    write_spec(tmp_path, epochs=epochs)
    command = [sys.executable, "-m", "nnspec.cli", "tune", "r.nn", "--data", "d.npz", "--trials", "1",
               "--pruner", "none", "--heartbeat", "1"]
    worker = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)  # its own process group: the command and its worker process
    checkpoint = tmp_path / "r.tune" / "trials" / "0" / "checkpoint" / "checkpoint.npz"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and worker.poll() is None:
        time.sleep(0.005)
    url = f"sqlite:///{tmp_path / 'r.tune' / 'study.db'}"
    for _ in range(100):  # stopped in the middle of a write, the worker would hold SQLite's lock: let it go on a bit
        os.killpg(worker.pid, signal.SIGSTOP)
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 0.2}})
            shared = optuna.load_study(study_name="r", storage=storage)
            taken = shared.trials[0]
            assert taken.state.name == "RUNNING"
            assert shared._storage.set_trial_state_values(taken._trial_id, optuna.trial.TrialState.FAIL)
            retry(shared, taken)  # what the stale check does
            break
        except (sqlalchemy.exc.OperationalError, optuna.exceptions.StorageInternalError):
            time.sleep(0.01)
        finally:
            os.killpg(worker.pid, signal.SIGCONT)
    else:
        pytest.fail("the study stayed locked by the worker")

    out, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    trials = study(tmp_path).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"] and trials[1].user_attrs["retry_of"] == 0
    assert trials[1].user_attrs["resumed_at_epoch"] > 1
    assert len(trials[1].intermediate_values) == epochs and "Traceback" not in err


@pytest.mark.parametrize("cause, note", [(SystemExit(1), "its worker was ended"), (KeyboardInterrupt(), "interrupted")])
def test_a_trial_cut_off_by_its_workers_end_fails_and_is_queued_to_run_again_at_its_point(tmp_path, cause, note):
    """Ray ends a dead driver's tasks with SIGTERM, which Ray's handler raises as SystemExit in the trial."""
    shared = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")

    def objective(trial):
        trial.suggest_float("x", 0.0, 1.0)
        raise cause

    with pytest.raises(type(cause)):
        run_trial(shared, objective)
    cut, rerun = shared.trials
    assert (cut.state.name, cut.user_attrs["error"]) == ("FAIL", note)
    assert (rerun.state.name, rerun.user_attrs) == ("WAITING", {"retry_of": 0})
    assert rerun.system_attrs["fixed_params"] == cut.params


# ---- a study shared through PostgreSQL ----------------------------------------------------------------------

def _postgres_program(name: str) -> str | None:
    """Debian keeps PostgreSQL's programs out of PATH, in /usr/lib/postgresql/VERSION/bin."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return shutil.which(name) or (found[-1] if found else None)


@pytest.fixture
def postgres():
    """A private PostgreSQL server on loopback, in a temporary folder; its URL."""
    initdb, pg_ctl = _postgres_program("initdb"), _postgres_program("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    folder = tempfile.mkdtemp(prefix="nnspec-pg-")  # not under pytest's tmp_path: the server's user must reach it
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root with no 'postgres' user to run PostgreSQL as")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = f"{folder}/data"
    steps = [[initdb, "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
             [pg_ctl, "-D", data, "-l", f"{folder}/log", "-w", "-o",
              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"]]
    for step in steps:
        done = subprocess.run([*as_user, *step], capture_output=True, text=True)
        if done.returncode:
            shutil.rmtree(folder, ignore_errors=True)
            pytest.skip(f"PostgreSQL cannot start here: {(done.stderr or done.stdout).strip()[-300:]}")
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_one_study_in_postgresql(tmp_path, postgres):
    write_spec(tmp_path, epochs=30)
    workers = []
    for name in ("one", "two"):  # two separate processes with their own folders, as on two machines
        (tmp_path / name).mkdir()
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "nnspec.cli", "tune", "../r.nn", "--data", "../d.npz", "--trials", "8",
             "--pruner", "none", "--storage", postgres, "--study", "shared", "-o", "out"],
            cwd=tmp_path / name, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert "wrote out/trials.csv" in out
    trials = optuna.load_study(study_name="shared", storage=postgres.replace("postgresql:", "postgresql+psycopg:")
                               ).get_trials()
    assert [t.number for t in trials] == list(range(len(trials)))
    assert {t.state.name for t in trials} == {"COMPLETE"}
    # --trials caps the study's total; running trials count toward it, so that workers stop together (two
    # workers deciding to start a trial in the same instant could still make it one more)
    assert 8 <= len(trials) <= 9
    assert len({t.user_attrs["pid"] for t in trials}) == 2
    for name in ("one", "two"):
        assert len(list(csv.DictReader((tmp_path / name / "out" / "trials.csv").open()))) == len(trials)


def test_results_go_to_the_current_folder_and_the_best_spec_trains_from_there(tmp_path):
    """The one rule for outputs: -o decides, else the current folder; never beside the searched spec."""
    specs = tmp_path / "specs"
    specs.mkdir()
    spec = write_spec(specs, epochs=2, rate="0.05")
    spec.write_text("# A tiny regression with its width left open: `nnspec tune` searches it.\n"
                    + spec.read_text().replace("train {\n", 'train {\n  data npz("d.npz")\n'))
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli("tune", "../specs/r.nn", "--trials", "2", "--sampler", "grid", "--device", "cpu", cwd=work)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in specs.iterdir()) == ["d.npz", "r.nn"]  # nothing beside the spec
    best = (work / "r.tune" / "r.best.nn").read_text()
    assert "left open" not in best and best.splitlines()[1] == "# r.nn with the values of that trial; " \
        "`nnspec train r.best.nn` trains it."
    assert 'data             npz("../../specs/d.npz")' in best  # the data path still holds from the new folder
    trained = run_cli("train", "r.best.nn", "--verbose", "0", "--epochs", "1", cwd=work / "r.tune")
    assert trained.returncode == 0, trained.stderr
    other = run_cli("tune", "../specs/r.nn", "--trials", "1", "--sampler", "grid", "-o", "elsewhere", cwd=work)
    assert other.returncode == 0 and (work / "elsewhere" / "r.best.nn").exists(), other.stderr
