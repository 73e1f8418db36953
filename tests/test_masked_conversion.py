"""Masked recurrent models written by real Keras (tests/fixtures/keras_apps/masked_*: tokens
post-padded, pre-padded, with holes and unpadded) through every path a user takes: Keras 3's
explicit mask argument, the .nn spec, nnspec's own ONNX converted back, and the refusals."""
import json

import numpy as np
import onnx
import pytest

from conftest import run_cli
from convert_support import assert_same_weights, keras_weights
from nnspec.convert import convert
from nnspec.errors import SpecError
from onnx_support import assert_close, run_onnx

from test_keras_apps_convert import FIX

MASKED = ["masked_lstm", "masked_gru", "masked_bilstm"]


def _keras_io(name: str, version: str):
    data = np.load(FIX / f"{name}.{version}.io.npz")
    return [data["x0"]], [data["y0"]]


@pytest.mark.parametrize("name", MASKED)
def test_a_spec_says_the_mask_and_predicts_what_keras_did(name, tmp_path):
    """The .nn spec carries the mask as `embedding(..., mask_zero=true)`; it compiles exact."""
    convert(str(FIX / f"{name}.k3.keras"), str(tmp_path / "m.nn"))
    assert "mask_zero=true" in (tmp_path / "m.nn").read_text()
    result = run_cli("convert", tmp_path / "m.nn", tmp_path / "m.onnx", "--weights", tmp_path / "m.npz")
    assert result.returncode == 0, result.stderr
    xs, ys = _keras_io(name, "k3")
    assert_close(run_onnx(onnx.load(str(tmp_path / "m.onnx")), xs), ys)


@pytest.mark.parametrize("name", MASKED)
def test_nnspec_onnx_of_a_masked_model_converts_back(name, tmp_path):
    source = FIX / f"{name}.k3.keras"
    convert(str(source), str(tmp_path / "m.onnx"))
    result = run_cli("convert", tmp_path / "m.onnx", tmp_path / "back.keras")
    assert result.returncode == 0, result.stderr
    assert_same_weights(keras_weights(tmp_path / "back.keras"), keras_weights(source))
    convert(str(tmp_path / "back.keras"), str(tmp_path / "again.onnx"))
    xs, ys = _keras_io(name, "k3")
    assert_close(run_onnx(onnx.load(str(tmp_path / "again.onnx")), xs), ys)


def test_a_masked_onnx_without_its_spec_is_refused_in_one_line(tmp_path):
    convert(str(FIX / "masked_gru.k3.keras"), str(tmp_path / "m.onnx"))
    proto = onnx.load(str(tmp_path / "m.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    result = run_cli("convert", tmp_path / "bare.onnx", tmp_path / "bare.nn")
    assert result.returncode == 2 and "Equal" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not (tmp_path / "bare.nn").exists()


def _keras3_json(name: str, edit) -> dict:
    doc = json.loads((FIX / f"{name}.k3.json").read_text())
    for layer in doc["config"]["layers"]:
        edit(layer)
    return doc


def _compare_with_one(layer):
    if layer["class_name"] == "NotEqual":
        layer["inbound_nodes"][0]["args"][1] = 1


def _mask_from_elsewhere(layer):
    if layer["class_name"] == "NotEqual":  # tokens != 0 computed on another tensor: the embedding's output
        layer["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["embedding", 0, 0]


@pytest.mark.parametrize("edit", [_compare_with_one, _mask_from_elsewhere])
def test_an_explicit_mask_other_than_the_carried_one_is_refused(edit, tmp_path):
    """Reading such a mask as the embedding's would be silently wrong."""
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_keras3_json("masked_lstm", edit)))
    with pytest.raises(SpecError, match=r"layer 'lstm'.*mask argument \('not_equal'\) is not the mask its input"):
        convert(str(path), str(tmp_path / "m.onnx"), weights=str(FIX / "masked_lstm.k3.weights.h5"))
    assert not (tmp_path / "m.onnx").exists()
    unedited = tmp_path / "ok.json"
    unedited.write_text(json.dumps(_keras3_json("masked_lstm", lambda layer: None)))
    convert(str(unedited), str(tmp_path / "ok.onnx"), weights=str(FIX / "masked_lstm.k3.weights.h5"))
    xs, ys = _keras_io("masked_lstm", "k3")
    assert_close(run_onnx(onnx.load(str(tmp_path / "ok.onnx")), xs), ys)


def test_a_masked_model_trains_and_ignores_where_the_padding_is():
    """Training runs the unrolled Keras loop; the trained weights, compiled back to the native node
    with its gathers, give one answer for the same tokens padded at the end, the start or inside."""
    import nnspec

    model = nnspec.load(str(FIX / "masked_lstm.k3.keras"))
    model.compile(optimizer="adam(learning_rate=0.01)", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.integers(1, 20, (16, 7)).astype(np.int32)
    for i, row in enumerate(x):
        row[rng.permutation(7)[:i % 5]] = 0
    y = np.tanh(rng.normal(size=(16, 5))).astype(np.float32)
    losses = model.fit(x, y, epochs=3, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    tokens = np.array([[3, 5, 7, 0, 0, 0, 0], [0, 0, 0, 0, 3, 5, 7], [3, 0, 5, 0, 0, 7, 0], [0, 3, 0, 5, 7, 0, 0]],
                      np.int32)
    got = model.predict(tokens)
    np.testing.assert_allclose(got, np.repeat(got[:1], 4, axis=0), atol=1e-6)
    assert np.ptp(got) > 0
