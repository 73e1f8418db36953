"""Labels follow the loss (sparse losses take class indices, categorical ones one-hot rows), and a
loss that cannot take the labels is refused before any epoch: exit 2, one line with the fix."""
import json

import numpy as np
import pytest

from conftest import FIXTURES, ROOT, run_cli
from nnspec.data import for_model, load, parse_source
from nnspec.ir.training import LOSSES
from nnspec.loader import load as load_spec

MLP = ROOT / "specs" / "mnist_mlp.nn"
FEW_DIGITS = f"mnist('{FIXTURES / 'mnist'}', stop=256)"


def assert_refused(result, folder, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnspec: error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not list(folder.glob("m.*"))  # nothing of the run's output (-o m.onnx) was written


@pytest.mark.parametrize("loss, shape", [("categorical_crossentropy", (10,)), ("sparse_categorical_crossentropy", ())])
def test_mnist_labels_take_the_form_the_loss_wants(loss, shape):
    spec = load_spec(MLP)
    data = load(parse_source(FEW_DIGITS))
    fitted = for_model(data, spec.model, spec.analysis, LOSSES.make(loss), one_hot=data.one_hot)
    assert fitted.y_samples()[0].shape == shape
    labels = fitted.read_y(np.arange(5))[0]
    indices = labels.argmax(axis=1) if shape else labels
    assert indices.tolist() == [7, 2, 1, 0, 4]  # the first digits of the MNIST test set


def test_the_mlp_trains_with_a_sparse_loss(tmp_path):
    """`nnspec train specs/mnist_mlp.nn --loss sparse_categorical_crossentropy` (one epoch here)."""
    result = run_cli("train", MLP, "--loss", "sparse_categorical_crossentropy", "--epochs", "1", "--verbose", "0",
                     "--no-plot", "-o", "m.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    history = json.loads((tmp_path / "m.history.json").read_text())
    assert history["accuracy"][0] > 0.5 and history["val_accuracy"][0] > 0.5


@pytest.mark.parametrize("loss", ["binary_crossentropy", "mse"])
def test_a_loss_that_cannot_take_class_indices_is_refused(tmp_path, loss):
    result = run_cli("train", MLP, "--loss", loss, "-o", "m.onnx", cwd=tmp_path)
    assert_refused(result, tmp_path, "the labels are class indices", "use sparse_categorical_crossentropy")


def test_one_hot_targets_train_with_mse_when_asked_for(tmp_path):
    result = run_cli("train", MLP, "--loss", "mse", "--data", FEW_DIGITS.replace(")", ", one_hot=true)"),
                     "--epochs", "1", "--verbose", "0", "--no-plot", "-o", "m.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_one_hot_npz_labels_with_a_sparse_loss_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((32, 28, 28), np.float32),
             y=np.eye(10, dtype=np.float32)[rng.integers(0, 10, 32)])
    result = run_cli("train", MLP, "--data", "d.npz", "--loss", "sparse_categorical_crossentropy", "-o", "m.onnx",
                     cwd=tmp_path)
    assert_refused(result, tmp_path, "d.npz: the labels are one-hot rows of 10", "use categorical_crossentropy")


def test_one_hot_asked_for_with_a_sparse_loss_is_refused(tmp_path):
    result = run_cli("train", MLP, "--data", FEW_DIGITS.replace(")", ", one_hot=true)"), "--loss",
                     "sparse_categorical_crossentropy", "-o", "m.onnx", cwd=tmp_path)
    assert_refused(result, tmp_path, "one_hot=true makes one-hot label rows", "drop one_hot=true")
