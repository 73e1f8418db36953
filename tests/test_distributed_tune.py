"""`nnspec tune --backend ray`: trials as Ray tasks on the same Optuna study as local workers; a driver
killed with SIGKILL and the same command run again loses no trial and runs none twice; a local worker then
goes on with the same study."""
import csv
import signal
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna")

from conftest import run_cli  # noqa: E402
from test_tune import study, write_spec  # noqa: E402


def test_a_study_on_ray_tasks_killed_with_sigkill_goes_on_with_no_trial_lost_or_run_twice(tmp_path, ray_address):
    write_spec(tmp_path, epochs=200)  # trials far longer than the kill and the look at the study take
    command = [sys.executable, "-m", "nnspec.cli", "tune", "r.nn", "--data", "d.npz", "--trials", "3", "--jobs", "2",
               "--pruner", "none", "--heartbeat", "1", "--backend", "ray", "--address", ray_address]
    driver = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoints = tmp_path / "r.tune" / "trials"
    deadline = time.time() + 300  # Ray may take minutes to start its workers on a loaded machine
    while not list(checkpoints.glob("*/checkpoint/checkpoint.npz")) and time.time() < deadline:
        time.sleep(0.01)
    driver.send_signal(signal.SIGKILL)
    driver.communicate(timeout=60)
    assert driver.returncode == -signal.SIGKILL
    before = {t.number: t for t in study(tmp_path).trials}
    # cut off in the middle of a trial: still RUNNING, or failed already (Ray ended its task) with its rerun queued
    queued = {t.user_attrs["retry_of"] for t in before.values() if "retry_of" in t.user_attrs}
    assert any(t.state.name == "RUNNING" or (t.state.name == "FAIL" and t.number in queued) for t in before.values()), \
        [(t.number, t.state.name, t.user_attrs) for t in before.values()]

    # At once, as a user would: the killed driver's tasks may still run (Ray ends them when it notices the
    # driver is gone), and may even start a trial before they end.
    finished = run_cli(*command[3:], cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr

    trials = study(tmp_path).trials
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in trials)  # none left RUNNING
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert 3 <= len(complete) <= 4  # --trials 3, at most jobs - 1 over (README)
    for number, earlier in before.items():  # a trial finished before the kill was not run again
        if earlier.state.name == "COMPLETE":
            assert trials[number].datetime_complete == earlier.datetime_complete
    for cut in (t for t in trials if t.state.name == "FAIL"):  # each ran again once, at its point, and completed
        reruns = [t for t in trials if t.user_attrs.get("retry_of") == cut.number]
        assert len(reruns) == 1 and reruns[0].state.name == "COMPLETE", (cut.number, cut.user_attrs, reruns)
        assert cut.params.items() <= reruns[0].params.items()  # a trial killed while drawing its point has part of it
    assert any(t.state.name == "FAIL" for t in trials if t.number in before)  # the killed driver's trials
    firsts = [t for t in complete if "retry_of" not in t.user_attrs]
    assert len({tuple(sorted(t.params.items())) for t in firsts}) == len(firsts)
    rows = list(csv.DictReader((tmp_path / "r.tune" / "trials.csv").open()))
    assert len(rows) == len(trials) and (tmp_path / "r.tune" / "r.best.nn").exists() and (tmp_path / "r.tune" / "best.onnx").exists()
    assert "Ray task" in finished.stdout

    total = len(complete) + 1
    local = run_cli("tune", "r.nn", "--data", "d.npz", "--trials", str(total), "--pruner", "none", cwd=tmp_path)
    assert local.returncode == 0, local.stderr  # the same study goes on with a local worker
    assert f"{len(complete)} of {total} trials; 1 worker(s)" in local.stdout
    assert [t.state.name for t in study(tmp_path).trials].count("COMPLETE") == total


def test_the_ray_backend_without_ray_is_a_one_line_error_naming_the_extra(tmp_path):
    spec = write_spec(tmp_path)
    shim = ("import sys; sys.modules['ray'] = None; from nnspec.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", shim, "tune", str(spec), "--backend", "ray", "-o",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == "nnspec tune: error: --backend ray needs Ray: pip install 'nnspec[ray]'\n"
    assert not (tmp_path / "out").exists()


def test_an_address_without_the_ray_backend_is_refused(tmp_path, capsys):
    from nnspec.cli import main

    assert main(["tune", str(write_spec(tmp_path)), "--address", "auto", "-o", str(tmp_path / "o")]) == 2
    assert "--address joins a Ray cluster: give --backend ray" in capsys.readouterr().err
