"""`pretrained(FILE, until=LAYER, trainable=...)`: a model file as a layer of a spec, with its
weights: feature extraction gives what Keras's own predict gave, a frozen base keeps its weights
through training, and mistakes are one line each."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from convert_support import flat_layers
from nnspec.backends.keras import reader

FIX = Path(__file__).parent / "fixtures" / "keras_apps"
SPECS = Path(__file__).parent.parent / "specs"


def _spec(tmp_path: Path, body: str, base: str = "transfer_base.k3.keras") -> Path:
    shutil.copy(FIX / base, tmp_path / base)
    path = tmp_path / "spec.nn"
    path.write_text(f"model features {{\n  input image: float32[16, 16, 3]\n{body}\n}}\n")
    return path


@pytest.mark.parametrize("base", ["transfer_base.k3.keras", "transfer_base.k2.h5"])
def test_feature_extraction_predicts_what_keras_did(tmp_path, base):
    spec = _spec(tmp_path, f'  pretrained("{base}")', base)
    io = np.load(FIX / f"transfer_base.{base.split('.')[1]}.io.npz")
    np.save(tmp_path / "x.npy", io["x0"])
    result = run_cli("predict", spec, "-i", tmp_path / "x.npy", "-o", tmp_path / "f.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "random weights" not in result.stderr  # every weight came from the file
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), io["y0"], atol=1e-5)


def test_a_cut_keeps_the_layers_before_it_and_their_trainable_flags(tmp_path):
    spec = _spec(tmp_path, '  pretrained("transfer_base.k3.keras", until="max_pooling2d", trainable=false)\n  flatten()')
    result = run_cli("summary", spec)
    assert result.returncode == 0, result.stderr
    assert "conv2d_1" not in result.stdout and "max_pooling2d (MaxPooling2D)" in result.stdout
    assert "(None, 8, 8, 8)" in result.stdout and "Trainable params: 0" in result.stdout


def test_a_frozen_base_keeps_the_file_weights_through_training(tmp_path):
    spec = _spec(tmp_path, '  pretrained("transfer_base.k3.keras", trainable=false)\n  dense(3, activation=softmax, name="head")')
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((32, 16, 16, 3), np.float32), y=np.eye(3, dtype=np.float32)[rng.integers(0, 3, 32)])
    result = run_cli("train", spec, "--data", tmp_path / "d.npz", "--loss", "categorical_crossentropy", "--epochs", "2",
                     "--batch-size", "8", "--verbose", "0", "--no-plot", "-o", tmp_path / "t.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    trained = np.load(tmp_path / "t.npz")
    base = {layer.name: layer.weights for layer in reader.load(FIX / "transfer_base.k3.keras").layers if layer.weights}
    for name, arrays in base.items():
        for i, array in enumerate(arrays):
            key = next(k for k in trained.files if k.startswith(f"{name}/{i}/"))
            assert trained[key].tobytes() == np.asarray(array, np.float32).tobytes(), key
    assert not np.allclose(trained["head/0/kernel"], 0)


def test_the_example_specs_fine_tune_after_a_frozen_run(tmp_path):
    first = run_cli("train", SPECS / "transfer_shapes.nn", "--epochs", "1", "--verbose", "0", "--no-plot",
                    "-o", tmp_path / "frozen.onnx", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_cli("train", SPECS / "transfer_shapes_finetune.nn", "--weights", tmp_path / "frozen.npz", "--epochs",
                     "1", "--verbose", "0", "--no-plot", "-o", tmp_path / "tuned.onnx", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    frozen, tuned = np.load(tmp_path / "frozen.npz"), np.load(tmp_path / "tuned.npz")
    assert not np.array_equal(frozen["conv2d/0/kernel"], tuned["conv2d/0/kernel"])  # unfrozen: the base moves
    assert json.loads((tmp_path / "tuned.history.json").read_text())["loss"]


@pytest.mark.parametrize("body,message", [
    ('  pretrained("transfer_base.k3.keras", until="conv2d_9")', "no layer 'conv2d_9'; did you mean"),
    ('  pretrained("missing.h5")', "missing.h5: no such file"),
    ('  pretrained("transfer_base.k3.keras", trainable=false, frozen=true)', "pretrained() has no argument 'frozen'"),
    ('  conv2d(4, 3, name="conv2d")\n  pretrained("transfer_base.k3.keras")', "layer 'conv2d' of transfer_base.k3.keras has a name"),
])
def test_mistakes_are_one_line_with_the_place(tmp_path, body, message):
    result = run_cli("check", _spec(tmp_path, body))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "spec.nn:" in result.stderr


@pytest.mark.parametrize("fmt", ["k3.keras", "k2.h5", "onnx"])
def test_predict_layer_extracts_features_from_any_model_file(tmp_path, fmt):
    """`predict --layer NAME`: Keras's Model(model.input, model.get_layer(NAME).output). The
    head applied to the extracted features by hand gives what Keras's predict gave."""
    version = "k2" if fmt == "k2.h5" else "k3"
    model = FIX / f"transfer_sgd.{fmt}" if fmt != "onnx" else tmp_path / "m.onnx"
    if fmt == "onnx":
        assert run_cli("convert", FIX / "transfer_sgd.k3.keras", model).returncode == 0
    io = np.load(FIX / f"transfer_sgd.{version}.io.npz")
    np.save(tmp_path / "x.npy", io["x0"])
    names = {layer.name for layer in flat_layers(reader.load(FIX / f"transfer_sgd.{fmt if fmt != 'onnx' else 'k3.keras'}"))}
    pool, gap = sorted(n for n in names if n.startswith("max_pooling2d"))[0], next(n for n in names if "global" in n)
    result = run_cli("predict", model, "--layer", gap, "--layer", pool, "-i", tmp_path / "x.npy",
                     "-o", tmp_path / "f.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    features = np.load(tmp_path / "f.npz")
    assert features[pool].shape == (len(io["x0"]), 8, 8, 8)
    head = {layer.name: layer.weights for layer in reader.load(FIX / f"transfer_sgd.{version}.{'h5' if version == 'k2' else 'keras'}").layers}["head"]
    logits = features[gap].astype(np.float64) @ head[0] + head[1]
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probabilities / probabilities.sum(1, keepdims=True), io["y0"], atol=1e-5)



def test_predict_layer_names_a_missing_layer(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 16, 16, 3), np.float32))
    result = run_cli("predict", FIX / "transfer_sgd.k3.keras", "--layer", "max_pooling2d", "-i", tmp_path / "x.npy")
    assert result.returncode == 2 and "no layer 'max_pooling2d'; did you mean 'max_pooling2d_" in result.stderr
    assert "Traceback" not in result.stderr
