"""Training end to end: real MNIST, the cosine task, every example spec, callbacks, the command
line, and checkpoints that survive SIGKILL."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from nnspec.data import Dataset
from nnspec.loader import load, loads
from nnspec.train.run import configure, evaluate, load_data, train
from conftest import ROOT, SPECS, run_cli

MNIST = ROOT / "tests" / "fixtures" / "mnist"


def test_mnist_mlp_reaches_96_percent_on_held_out_digits():
    spec = load(ROOT / "specs" / "mnist_mlp.nn")
    digits = load_data(spec.model.train.data.model_copy(update={"stop": None}), ROOT / "specs")
    train_part, test_part = digits.take(slice(0, 8000)), digits.take(slice(8000, 10000))
    config = configure(spec, {"verbose": 0, "validation_split": 0.0, "callbacks": [], "epochs": 10})
    run = train(spec, config, train_part, None, seed=0, verbose=0, device="cpu")
    assert evaluate(spec, config, test_part, run.weights, device="cpu")["accuracy"] >= 0.96


def cosine_windows(window=50, n=1050):
    series = np.cos(np.arange(n + window) * 0.1).astype(np.float32)
    x = np.stack([series[i:i + window] for i in range(n)])[..., None]
    return Dataset([x], [series[window:window + n, None]])


def test_cosine_lstm_learns_the_next_value():
    spec = load(ROOT / "specs" / "cosine_lstm.nn")
    data = cosine_windows()
    config = configure(spec, {"verbose": 0})
    run = train(spec, config, data, None, seed=0, verbose=0, device="cpu")
    assert evaluate(spec, config, data, run.weights, device="cpu")["loss"] < 1e-3


def test_tiny_transformer_learns_the_next_value():
    """specs/tiny_transformer.nn (causal multi-head attention, residuals, layer norms) trains."""
    spec = load(ROOT / "specs" / "tiny_transformer.nn")
    config = configure(spec, {"verbose": 0, "epochs": 6})
    run = train(spec, config, cosine_windows(window=16, n=256), None, seed=0, verbose=0, device="cpu")
    losses = run.history.history["loss"]
    assert losses[-1] < 0.2 * losses[0], losses


def synthetic(spec, n=48, seed=0):
    """Inputs of the model's shapes and targets that fit its loss."""
    rng = np.random.default_rng(seed)
    xs = []
    for i in spec.model.inputs:
        shape = [n, *[4 if d is None else d for d in i.shape]]
        xs.append(rng.normal(size=shape).astype(np.float32) if i.dtype.startswith("float")
                  else rng.integers(0, 5, shape).astype(i.dtype))
    ys = []
    for out in spec.analysis.output_types:
        classes = out.shape[-1]
        labels = rng.integers(0, classes, n)
        loss = spec.model.train.loss.name
        if loss == "categorical_crossentropy":
            ys.append(np.eye(classes, dtype=np.float32)[labels])
        elif loss == "binary_crossentropy":
            ys.append(rng.integers(0, 2, (n, *out.shape)).astype(np.float32))
        else:
            ys.append(rng.normal(size=(n, *out.shape)).astype(np.float32))
    return Dataset(xs, ys)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_example_spec_trains_one_epoch(path):
    spec = load(path)
    config = configure(spec, {"epochs": 1, "verbose": 0, "callbacks": [], "batch_size": 16})
    run = train(spec, config, synthetic(spec), None, seed=1, verbose=0, device="cpu")
    assert np.isfinite(run.history.history["loss"][0])
    before = {k: v for k, v in run.weights.items()}
    assert before  # trained weights came back


# ---- callbacks ----------------------------------------------------------------------------------------

REGRESSION = """
model r {
  input x: float32[3]
  dense(8, activation=tanh, kernel_regularizer=l2(1e-3), kernel_constraint=max_norm(2.0))
  dense(1)
}
train { loss mse  optimizer sgd(learning_rate=0.05)  batch_size 8  metrics [mae, rmse] }
"""


def regression_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return Dataset([x], [(x @ np.array([[1.0], [-2.0], [0.5]], np.float32) + 0.1).astype(np.float32)])


def fit(callbacks, epochs=6, tmp_path=None, **overrides):
    spec = loads(REGRESSION, "r.nn")
    config = configure(spec, {"epochs": epochs, "verbose": 0, "callbacks": callbacks, **overrides})
    data = regression_data()
    return train(spec, config, *data.split(0.25), seed=0, verbose=0, device="cpu", base_dir=tmp_path or Path("."))


def test_history_has_keras_keys_and_rmse_is_root_of_mse():
    run = fit([])
    h = run.history.history
    assert set(h) == {"loss", "mae", "rmse", "val_loss", "val_mae", "val_rmse"}
    assert all(len(v) == 6 for v in h.values())
    assert h["loss"][-1] < h["loss"][0]


def test_early_stopping_stops_and_restores_best_weights():
    run = fit([{"name": "early_stopping", "monitor": "loss", "min_delta": 10.0, "patience": 2,
                "restore_best_weights": True}], epochs=20)
    assert len(run.history.history["loss"]) == 3  # no epoch improves by 10: stop after patience 2


def test_reduce_lr_on_plateau_and_scheduler_change_the_rate():
    run = fit([{"name": "reduce_lr_on_plateau", "monitor": "loss", "min_delta": 10.0, "patience": 1,
                "factor": 0.5}], epochs=4)
    assert run.trainer.current_lr() == pytest.approx(0.05 * 0.5 ** 3)  # the first epoch always improves
    run = fit([{"name": "learning_rate_scheduler", "schedule": {"name": "exponential_decay",
                "initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5}}], epochs=3)
    assert run.trainer.current_lr() == pytest.approx(0.1 * 0.5 ** 2)


def test_csv_logger_and_model_checkpoint_write_files(tmp_path):
    fit([{"name": "csv_logger", "filename": "log.csv"},
         {"name": "model_checkpoint", "filepath": "best-{epoch:02d}.onnx", "monitor": "val_loss",
          "save_best_only": True}], epochs=3, tmp_path=tmp_path)
    rows = (tmp_path / "log.csv").read_text().splitlines()
    assert rows[0].split(",") == ["epoch", "loss", "mae", "rmse", "val_loss", "val_mae", "val_rmse"]
    assert len(rows) == 4
    assert (tmp_path / "best-01.onnx").exists() and (tmp_path / "best-03.onnx").exists()


def test_terminate_on_nan_stops_a_diverging_run():
    run = fit(["terminate_on_nan"], epochs=5, optimizer={"name": "sgd", "learning_rate": 1e6})
    assert len(run.history.history["loss"]) < 5 or not np.isfinite(run.history.history["loss"][-1])


def test_constraint_holds_after_every_update():
    spec = loads(REGRESSION.replace("max_norm(2.0)", "max_norm(0.5)"), "r.nn")
    config = configure(spec, {"epochs": 3, "verbose": 0, "optimizer": {"name": "sgd", "learning_rate": 0.2}})
    run = train(spec, config, regression_data(), None, seed=0, verbose=0, device="cpu")
    norms = np.sqrt((run.weights["dense"][0] ** 2).sum(axis=0))
    assert norms.max() <= 0.5 + 1e-6 and norms.max() > 0.45  # the constraint is active, and holds


def test_class_weights_scale_the_loss():
    spec = loads("model c { input x: float32[2]\n dense(2, activation=softmax) }\n"
                 "train { loss categorical_crossentropy  optimizer sgd(learning_rate=1e-9) batch_size 4 }", "c.nn")
    x = np.ones((4, 2), np.float32)
    y = np.eye(2, dtype=np.float32)[[0, 0, 1, 1]]

    def first_loss(**overrides):
        config = configure(spec, {"verbose": 0, **overrides})
        return train(spec, config, Dataset([x], [y]), None, seed=0, verbose=0, device="cpu").history.history["loss"][0]

    # identical inputs: every sample of a class has the same loss l0 or l1; Keras: sum(w * l) / N
    plain = first_loss()
    only_first = first_loss(class_weight={0: 2.0, 1: 0.0})
    only_second = first_loss(class_weight={0: 0.0, 1: 2.0})
    assert only_first + only_second == pytest.approx(2 * plain, rel=1e-6)
    assert only_first != pytest.approx(only_second)


# ---- the command line and resuming ----------------------------------------------------------------------------

def write_regression(tmp_path, epochs=8):
    (tmp_path / "r.nn").write_text(REGRESSION.replace("batch_size 8", f"batch_size 8  epochs {epochs}  seed 3"))
    data = regression_data(256)
    np.savez(tmp_path / "data.npz", x=data.xs[0], y=data.ys[0])


def test_train_and_evaluate_commands(tmp_path):
    write_regression(tmp_path)
    result = run_cli("train", "r.nn", "--data", "data.npz", "--verbose", "2", "--validation-split", "0.25",
                     "-o", "out/r.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Epoch 8/8" in result.stdout and "val_loss" in result.stdout
    history = json.loads((tmp_path / "out" / "r.history.json").read_text())
    assert len(history["loss"]) == 8 and "val_mae" in history
    result = run_cli("evaluate", "r.nn", "--data", "data.npz", "--weights", "out/r.npz", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("loss: "), result.stderr
    result = run_cli("predict", "out/r.onnx", "-i", "data.npz", "-o", "p.npy", cwd=tmp_path)
    assert result.returncode == 0 and np.load(tmp_path / "p.npy").shape == (256, 1)


@pytest.mark.parametrize("args, fragment", [
    (["--data", "missing.npz"], "missing.npz: no such file"),
    (["--data", "bad.npz"], "input 'x' expects samples of shape (3,), the data has (5,)"),
    (["--data", "nan.npz"], "has NaN or infinite values"),
    (["--data", "data.npz", "--optimizer", "adamm"], "unknown optimizer 'adamm'"),
    (["--data", "data.npz", "--epochs", "0"], "epochs: input should be greater than 0"),
])
def test_train_rejects_bad_input(tmp_path, args, fragment):
    write_regression(tmp_path)
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 5), np.float32), y=np.zeros((4, 1), np.float32))
    np.savez(tmp_path / "nan.npz", x=np.full((4, 3), np.nan, np.float32), y=np.zeros((4, 1), np.float32))
    result = run_cli("train", "r.nn", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r.trained.onnx").exists()


def test_a_run_killed_at_any_moment_resumes_to_the_same_result(tmp_path):
    write_regression(tmp_path, epochs=40)
    base = ["train", "r.nn", "--data", "data.npz", "--verbose", "0"]
    reference = run_cli(*base, "-o", "ref/r.onnx", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    exe = [sys.executable, "-m", "nnspec.cli"]
    process = subprocess.Popen([*exe, *base, "-o", "run/r.onnx"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    checkpoint = tmp_path / "run" / "r.checkpoint" / "checkpoint.npz"
    deadline = time.time() + 60
    while not checkpoint.exists() and time.time() < deadline:  # kill it mid-run, after some epochs
        time.sleep(0.01)
    time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL  # it was killed mid-run, not finished
    assert not (tmp_path / "run" / "r.history.json").exists()
    resumed = run_cli(*base, "-o", "run/r.onnx", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    ref_history = json.loads((tmp_path / "ref" / "r.history.json").read_text())
    assert json.loads((tmp_path / "run" / "r.history.json").read_text()) == ref_history
    a, b = np.load(tmp_path / "ref" / "r.npz"), np.load(tmp_path / "run" / "r.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])


def test_stateful_lstm_carries_its_state_from_batch_to_batch():
    """Two batches through a stateful LSTM = one batch of the joined sequences through a plain one."""
    from nnspec.backends.onnx.step import OnnxStep
    from nnspec.backends.onnx.training import build
    from nnspec.weights import initial_weights

    text = "model s {{ input x: float32[{t}, 2]\n lstm(3, stateful={s})\n dense(1) }}\n" \
           "train {{ loss mse  optimizer sgd(learning_rate=1e-9)  batch_size 4 }}"
    stateful, plain = loads(text.format(t=5, s="true"), "s.nn"), loads(text.format(t=10, s="false"), "p.nn")
    weights = initial_weights(stateful.analysis, 0)
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(2, 4, 5, 2)).astype(np.float32)
    y = rng.normal(size=(4, 1)).astype(np.float32)
    sw = np.ones(4, np.float32)

    def step_for(spec):
        config = configure(spec, {})
        return OnnxStep(build(spec.analysis, config, [((1,), "float32")]), weights, device="cpu",
                        notice=False, batch_size=4)

    carried = step_for(stateful)
    carried.train([first], [y], sw, 1e-9, 0)
    loss_second, _ = carried.train([second], [y], sw, 1e-9, 1)
    joined, _ = step_for(plain).train([np.concatenate([first, second], axis=1)], [y], sw, 1e-9, 0)
    assert loss_second == pytest.approx(joined, rel=1e-5)
    carried.reset_states()
    fresh, _ = carried.train([second], [y], sw, 1e-9, 2)
    assert fresh != pytest.approx(loss_second, rel=1e-3)


def test_a_step_given_a_state_goes_on_from_it_not_from_the_buffers_it_ran_on():
    """A step keeps its binding of the state between steps; load_state must replace it (an odd and an
    even number of steps in, so both halves of the double buffers are checked), and copy what it is
    given: on the CPU a value wraps an array's memory, and later steps would write into `saved`."""
    from nnspec.backends.onnx.step import OnnxStep
    from nnspec.backends.onnx.training import build
    from nnspec.weights import initial_weights

    spec = loads("model m { input x: float32[3]\n dense(4, activation=relu)\n dense(1) }\n"
                 "train { loss mse  optimizer adam(learning_rate=0.05)  batch_size 8 }", "m.nn")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 1)).astype(np.float32)
    sw = np.ones(8, np.float32)
    step = OnnxStep(build(spec.analysis, configure(spec, {}), [((1,), "float32")]),
                    initial_weights(spec.analysis, 0), device="cpu", notice=False, batch_size=8)
    saved = step.state()
    first = [step.train([x], [y], sw, 0.05, i)[0] for i in range(3)]
    for extra in (0, 1):
        for i in range(extra):
            step.train([x], [y], sw, 0.05, 3 + i)
        step.load_state(saved)
        again = [step.train([x], [y], sw, 0.05, i)[0] for i in range(3)]
        assert again == first


KERAS = ROOT / "tests" / "fixtures" / "keras"


def test_train_goes_on_from_a_keras_file_and_from_its_own_onnx_model(tmp_path):
    """`nnspec train model.h5` starts from Keras's weights: the losses are Keras fit's own."""
    record = np.load(KERAS / "mlp_sigmoid.k2.train.npz")
    np.savez(tmp_path / "d.npz", x=record["x0"], y=record["y"])
    args = ["--data", "d.npz", "--loss", "mse", "--optimizer", "sgd(learning_rate=0.1)", "--batch-size", "16",
            "--no-shuffle", "--verbose", "0"]
    result = run_cli("train", KERAS / "mlp_sigmoid.k2.h5", *args, "--epochs", "5", "-o", "k.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    history = json.loads((tmp_path / "k.history.json").read_text())
    np.testing.assert_allclose(history["loss"], record["losses"], rtol=1e-4)
    # the trained ONNX model knows how it was trained, and goes on from where it stopped
    result = run_cli("evaluate", "k.onnx", "--data", "d.npz", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("loss: "), result.stderr
    result = run_cli("train", "k.onnx", "--data", "d.npz", "--epochs", "1", "--verbose", "0", "-o", "k2.onnx",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "k2.history.json").read_text())["loss"][0] < record["losses"][-1]


def test_evaluate_a_keras_file_with_a_loss_given_on_the_command_line(tmp_path):
    record = np.load(KERAS / "mlp_sigmoid.k3.train.npz")
    np.savez(tmp_path / "d.npz", x=record["x0"], y=record["y"])
    result = run_cli("evaluate", KERAS / "mlp_sigmoid.k3.keras", "--data", "d.npz", "--loss", "mse", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split()[1]) == pytest.approx(record["losses"][0], rel=1e-4)
    result = run_cli("evaluate", KERAS / "mlp_sigmoid.k3.keras", "--data", "d.npz", cwd=tmp_path)
    assert result.returncode == 2 and "no loss" in result.stderr


@pytest.mark.parametrize("version, name", [("k2", "opt.k2.h5"), ("k3", "opt.k3.keras")])
def test_training_goes_on_from_the_optimizer_state_a_keras_file_holds(tmp_path, version, name):
    """Keras saved its Adam slots and step count; the next epochs' losses are the ones Keras reported."""
    folder = ROOT / "tests" / "fixtures" / "keras_resume"
    record = np.load(folder / f"opt.{version}.cont.npz")
    np.savez(tmp_path / "d.npz", x=record["x"], y=record["y"])
    result = run_cli("train", folder / name, "--data", "d.npz", "--epochs", "3", "--batch-size", "8", "--no-shuffle",
                     "--verbose", "0", "-o", "r.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(json.loads((tmp_path / "r.history.json").read_text())["loss"], record["losses"],
                               rtol=1e-5)
