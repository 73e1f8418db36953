"""The Keras-shaped Python API, driven as a notebook user would, against `nnspec train`/`evaluate` run
through the real entry point: same seed, same settings, the same weights and history bit for bit."""
import json

import numpy as np
import pytest

import nnspec
from conftest import FIXTURES, run_cli
from nnspec.errors import SpecError
from nnspec.weights import load_weights

SPEC = """model clf {
  input x: float32[4]
  dense(8, activation=relu)
  dropout(0.25)
  dense(3, activation=softmax)
}

train {
  loss       categorical_crossentropy
  optimizer  adam(learning_rate=0.01)
  metrics    [accuracy]
  batch_size 16
  epochs     3
}
"""


def classification(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    return x, np.eye(3, dtype=np.float32)[labels]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "clf.nn").write_text(SPEC)
    x, y = classification()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    return tmp_path


def assert_same_weights(npz_path, model):
    trained = load_weights(npz_path)
    assert sorted(trained) == sorted(layer.name for layer in model.layers if layer.get_weights())
    for layer in model.layers:
        for a, b in zip(trained.get(layer.name, []), layer.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_fit_reproduces_nnspec_train_bit_for_bit(folder):
    result = run_cli("train", "clf.nn", "--data", "d.npz", "--validation-split", "0.25", "--epochs", "4",
                     "--seed", "7", "--verbose", "0", "-o", "out/clf.onnx", cwd=folder)
    assert result.returncode == 0, result.stderr
    model = nnspec.load(folder / "clf.nn", seed=7, device="cpu")
    x, y = classification()
    history = model.fit(x, y, epochs=4, validation_split=0.25, verbose=0)
    assert history.history == json.loads((folder / "out" / "clf.history.json").read_text())
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"} and history.epoch == [0, 1, 2, 3]
    assert_same_weights(folder / "out" / "clf.npz", model)
    # what the API saves is what the command wrote
    model.save(folder / "api.onnx")
    cli_model = nnspec.load(folder / "out" / "clf.onnx", device="cpu")
    np.testing.assert_array_equal(nnspec.load(folder / "api.onnx", device="cpu").predict(x), cli_model.predict(x))


def test_evaluate_matches_nnspec_evaluate_and_keras_return_forms(folder):
    run_cli("train", "clf.nn", "--data", "d.npz", "--seed", "1", "--verbose", "0", cwd=folder)
    model = nnspec.load(folder / "clf.nn", weights=folder / "clf.trained.npz", device="cpu")
    x, y = classification()
    loss, accuracy = model.evaluate(x, y)
    printed = run_cli("evaluate", "clf.nn", "--data", "d.npz", "--weights", "clf.trained.npz", cwd=folder)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == f"loss: {loss:.4f} - accuracy: {accuracy:.4f}"
    assert model.evaluate(x, y, return_dict=True) == {"loss": loss, "accuracy": accuracy}
    model.compile(metrics=[])
    assert model.evaluate(x, y) == loss  # no metrics: the loss alone, as Keras gives it


def test_compile_takes_keras_strings_and_nnspec_objects(folder):
    from nnspec.ir.training import Adam

    x, y = classification()
    by_string = nnspec.load(folder / "clf.nn", seed=0, device="cpu")
    by_string.compile(optimizer="sgd(learning_rate=0.1)", loss="mse", metrics=["mae"])
    by_object = nnspec.load(folder / "clf.nn", seed=0, device="cpu")
    by_object.compile(optimizer=Adam(learning_rate=0.1), loss="mse", metrics=["mae"])
    a = by_string.fit(x, y, epochs=1, verbose=0).history
    b = by_object.fit(x, y, epochs=1, verbose=0).history
    assert set(a) == {"loss", "mae"} and a != b
    with pytest.raises(SpecError, match="unknown optimizer 'adamm'"):
        by_string.compile(optimizer="adamm")


def test_a_spec_without_train_section_needs_compile(tmp_path):
    model = nnspec.load(nnspec_spec(tmp_path, SPEC.split("train")[0]), seed=0, device="cpu")
    x, y = classification()
    with pytest.raises(SpecError, match="no loss"):
        model.fit(x, y, verbose=0)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=32, validation_data=(x[:10], y[:10]), verbose=0)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(history.history["val_loss"]) == 2


def nnspec_spec(folder, text):
    path = folder / "s.nn"
    path.write_text(text)
    return path


def test_repeated_fit_goes_on_like_one_longer_fit(folder):
    """Keras's fit called twice continues the optimizer (its slots and step count), not a fresh one."""
    spec = nnspec_spec(folder, SPEC.replace("  dropout(0.25)\n", ""))
    x, y = classification()
    once = nnspec.load(spec, seed=2, device="cpu")
    once.fit(x, y, epochs=2, shuffle=False, verbose=0)
    twice = nnspec.load(spec, seed=2, device="cpu")
    first = twice.fit(x, y, epochs=1, shuffle=False, verbose=0).history["loss"]
    second = twice.fit(x, y, epochs=1, shuffle=False, verbose=0).history["loss"]
    assert first + second == once.history.history["loss"]
    for a, b in zip(once.get_weights(), twice.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_fit_takes_callbacks_as_spec_settings_and_objects(folder):
    seen = []

    class Epochs(nnspec.Callback):
        def on_epoch_end(self, epoch, logs):
            seen.append((epoch, sorted(logs)))

    x, y = classification()
    model = nnspec.load(folder / "clf.nn", seed=0, device="cpu")
    history = model.fit(x, y, epochs=10, validation_split=0.25, verbose=0,  # no epoch improves by 10: stop at the 2nd
                        callbacks=["early_stopping(monitor=val_loss, patience=1, min_delta=10)", Epochs()])
    assert len(history.epoch) == 2 and [e for e, _ in seen] == [0, 1]
    assert seen[0][1] == ["accuracy", "loss", "val_accuracy", "val_loss"]


def test_layers_and_weights_like_keras(folder):
    model = nnspec.load(folder / "clf.nn", seed=0, device="cpu")
    assert [layer.name for layer in model.layers] == ["dense", "dropout", "dense_1"]
    kernel, bias = model.layers[0].get_weights()
    assert kernel.shape == (4, 8) and bias.shape == (8,)
    x = classification()[0]
    model.layers[2].set_weights([np.zeros((8, 3), np.float32), np.zeros(3, np.float32)])
    np.testing.assert_allclose(model.predict(x), 1 / 3, rtol=1e-6)  # the new weights are used at once
    flat = model.get_weights()
    assert [a.shape for a in flat] == [(4, 8), (8,), (8, 3), (3,)]
    other = nnspec.load(folder / "clf.nn", seed=5, device="cpu")
    other.set_weights(flat)
    np.testing.assert_array_equal(other.predict(x), model.predict(x))
    with pytest.raises(SpecError, match=r"weight 'dense/kernel' has shape \(3, 8\)"):
        model.layers[0].set_weights([np.zeros((3, 8)), bias])
    with pytest.raises(ValueError, match="4 arrays make up the model's weights, got 5"):
        model.set_weights(flat + [bias])


@pytest.mark.parametrize("suffix", [".onnx", ".h5", ".keras", ".nn"])
def test_save_in_every_format_and_load_back(folder, suffix):
    x, y = classification()
    model = nnspec.load(folder / "clf.nn", seed=0, device="cpu")
    model.fit(x, y, epochs=1, verbose=0)
    written = model.save(folder / f"m{suffix}")
    assert str(folder / f"m{suffix}") in written
    back = nnspec.load(folder / f"m{suffix}", device="cpu") if suffix != ".nn" else \
        nnspec.load(folder / "m.nn", weights=folder / "m.npz", device="cpu")
    np.testing.assert_allclose(back.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)


def test_a_keras_file_fits_as_nnspec_train_does(tmp_path):
    keras_file = FIXTURES / "keras" / "bn_mlp.k3.keras"
    io = np.load(FIXTURES / "keras" / "bn_mlp.k3.io.npz")
    model = nnspec.load(keras_file, device="cpu")
    np.testing.assert_allclose(model.predict(io["x0"]), io["y0"], atol=1e-5)  # Keras's own predictions
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 20)).astype(np.float32), np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)]
    np.savez(tmp_path / "d.npz", x=x, y=y)
    result = run_cli("train", keras_file, "--data", "d.npz", "--loss", "categorical_crossentropy", "--optimizer",
                     "sgd(learning_rate=0.1)", "--epochs", "2", "--verbose", "0", "-o", "k.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model.compile(loss="categorical_crossentropy", optimizer="sgd(learning_rate=0.1)")
    history = model.fit(x, y, epochs=2, verbose=0)
    assert history.history == json.loads((tmp_path / "k.history.json").read_text())
    assert_same_weights(tmp_path / "k.npz", model)


def test_fit_refuses_bad_input_before_training(folder):
    model = nnspec.load(folder / "clf.nn", seed=0, device="cpu")
    x, y = classification()
    with pytest.raises(SpecError, match=r"input 'x' expects samples of shape \(4,\), the data has \(5,\)"):
        model.fit(np.zeros((8, 5), np.float32), y[:8], verbose=0)
    with pytest.raises(nnspec.InputError, match="give the targets"):
        model.fit(x, verbose=0)
    with pytest.raises(SpecError, match="no data"):
        model.fit(verbose=0)  # the spec names none


def test_the_public_api_is_listed_and_import_stays_light():
    assert {"load", "Model", "Layer", "Callback", "History"} <= set(dir(nnspec))
    assert set(nnspec.__all__) <= set(dir(nnspec))
    assert nnspec.History is nnspec.api.History


def test_the_readme_notebook_session_runs_as_written(tmp_path):
    """The README's Python API session, run as it is written, from a folder holding the repository's specs."""
    import subprocess
    import sys

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    session = readme.split("## The Python API\n", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    for name in ("specs", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    result = subprocess.run([sys.executable, "-c", session], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'Model: "mnist_mlp"' in result.stdout and "[0, 1] [" in result.stdout
    assert (tmp_path / "mnist_mlp.keras").exists()
