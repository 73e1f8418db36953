"""nnspec.load / Model: what a Keras user reaches for."""
import subprocess
import sys

import numpy as np
import pytest

import nnspec
from nnspec.api import InputError
from nnspec.errors import SpecError
from nnspec.loader import dump_json, loads
from nnspec.weights import load_weights

SPEC = """model two_inputs {
  input image: float32[4, 4]
  input ids: int32[3]
  flat = flatten(image)
  emb = embedding(ids, 10, 2) -> flatten()
  h = concat(flat, emb) -> dense(5, activation=relu)
  output h
}
"""
MLP = """model mlp {
  input x: float32[6]
  dense(8, activation=tanh)
  dropout(0.5)
  dense(3, activation=softmax)
}
"""


@pytest.fixture
def mlp_path(tmp_path):
    path = tmp_path / "mlp.nn"
    path.write_text(MLP)
    return path


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(7, 6)).astype(np.float32)


def test_import_stays_light():
    code = "import sys, nnspec; assert 'onnxruntime' not in sys.modules and 'onnx' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_predict_batches_and_seeds(mlp_path, x):
    model = nnspec.load(mlp_path, seed=1)
    y = model.predict(x)
    assert y.shape == (7, 3) and y.dtype == np.float32
    assert np.allclose(y.sum(1), 1.0, atol=1e-6)
    assert np.array_equal(model.predict(x, batch_size=2), y)
    assert np.array_equal(nnspec.load(mlp_path, seed=1).predict(x), y)
    assert not np.allclose(nnspec.load(mlp_path, seed=2).predict(x), y)
    assert model.predict(x[:0]).shape == (0, 3)


def test_inputs_as_list_or_dict(tmp_path):
    model = nnspec.load(loads(SPEC, "two.nn"), seed=0)
    rng = np.random.default_rng(1)
    image, ids = rng.normal(size=(5, 4, 4)), rng.integers(0, 10, (5, 3))
    y = model.predict([image, ids])
    assert y.shape == (5, 5)
    assert np.array_equal(model.predict({"ids": ids, "image": image}), y)
    with pytest.raises(InputError, match=r"missing: \['ids'\]"):
        model.predict({"image": image})
    with pytest.raises(InputError, match=r"takes 2 input\(s\)"):
        model.predict(image)
    with pytest.raises(InputError, match=r"input 'image' takes arrays of shape \(None, 4, 4\), got \(5, 16\)"):
        model.predict([image.reshape(5, 16), ids])
    with pytest.raises(InputError, match="different batch sizes"):
        model.predict([image, ids[:2]])


def test_save_and_reload(mlp_path, tmp_path, x, capsys):
    model = nnspec.load(mlp_path, seed=3)
    model.save_onnx(tmp_path / "mlp.onnx")
    model.save_weights(tmp_path / "mlp.npz")
    from_onnx = nnspec.load(tmp_path / "mlp.onnx")
    assert np.array_equal(from_onnx.predict(x), model.predict(x))
    assert from_onnx.spec.source == MLP
    for name, arrays in model.weights.items():  # an ONNX file's weights are lifted back from its graph
        assert all(np.array_equal(a, b) for a, b in zip(from_onnx.weights[name], arrays))
    from_npz = nnspec.load(mlp_path, weights=tmp_path / "mlp.npz")
    assert np.array_equal(from_npz.predict(x), model.predict(x))
    from_dict = nnspec.load(mlp_path, weights=model.weights)  # what the Keras reader gives
    assert np.array_equal(from_dict.predict(x), model.predict(x))
    from_onnx.summary()
    assert 'Model: "mlp"' in capsys.readouterr().out  # the spec came back from the ONNX file


def test_summary_and_ir_model(x, capsys):
    spec = loads(MLP, "mlp.nn")
    model = nnspec.load(spec.model, seed=0)  # an IR model built in Python
    model.summary()
    out = capsys.readouterr().out
    assert "dense_1 (Dense)" in out and "Total params: 83" in out
    assert model.predict(x).shape == (7, 3)
    assert dump_json(nnspec.load(spec.model, seed=0).spec.model) == dump_json(spec.model)


def test_weights_file_format(mlp_path, tmp_path):
    model = nnspec.load(mlp_path, seed=0)
    model.save_weights(tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz", allow_pickle=False) as data:
        assert sorted(data.files) == ["dense/0/kernel", "dense/1/bias", "dense_1/0/kernel", "dense_1/1/bias"]
    weights = load_weights(tmp_path / "w.npz", model.spec.analysis)
    assert [w.shape for w in weights["dense"]] == [(6, 8), (8,)]
    np.savez(tmp_path / "bad.npz", kernel=np.zeros(3))
    with pytest.raises(SpecError, match="is not 'layer_name/index/weight_name'"):
        load_weights(tmp_path / "bad.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(SpecError, match="not an nnspec weights file"):
        load_weights(tmp_path / "one.npy")
    np.savez(tmp_path / "short.npz", **{"dense/0/kernel": np.zeros((6, 8))})
    with pytest.raises(SpecError, match=r"layer 'dense' takes 2 weight array\(s\)"):
        nnspec.load(mlp_path, weights=tmp_path / "short.npz")


def test_onnx_files_refuse_weights(tmp_path, mlp_path):
    nnspec.load(mlp_path, seed=0).save_onnx(tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="carries its weights"):
        nnspec.load(tmp_path / "m.onnx", seed=1)
