"""`nnspec convert` end to end: every Keras fixture to ONNX gives Keras's predictions with no more
nodes than tf2onnx; Keras -> ONNX -> Keras and Keras -> .nn -> Keras give the weights back bit
for bit (but a batch normalization folded into the layer before it); outputs are deterministic; bad inputs fail in one line with exit code 2 and no output."""
import hashlib
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli
from convert_support import FIXTURES, MODELS, VERSIONS, assert_same_weights, fixture, io, keras_weights
from nnspec.convert import convert
from nnspec.errors import SpecError
from nnspec.backends.keras.importer import load
from onnx_support import assert_close, compiled, run_onnx

APPS = FIXTURES.parent / "keras_apps"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MODELS)
def test_keras_to_onnx_predicts_what_keras_did(name, version, tmp_path):
    convert(str(fixture(f"{name}.{version}.h5")), str(tmp_path / "m.onnx"))
    proto = onnx.load(str(tmp_path / "m.onnx"))
    xs, ys = io(name, version)
    assert_close(run_onnx(proto, xs), ys)
    assert len(proto.graph.node) <= len(onnx.load(str(fixture(f"{name}.tf2onnx.onnx"))).graph.node)


# Compiling folds an inference BatchNormalization into the Dense/Conv before it (as tf2onnx does):
# those two layers come back from ONNX as the same function with other numbers.
FOLDED_BATCH_NORM = {"bn_mlp": {"dense_9", "batch_normalization"}}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MODELS)
def test_round_trips_give_keras_weights_back(name, version, tmp_path):
    source = fixture(f"{name}.{version}.keras" if version == "k3" else f"{name}.{version}.h5")
    want = keras_weights(source)
    convert(str(source), str(tmp_path / "m.onnx"))
    convert(str(source), str(tmp_path / "m.nn"))
    for back in ("onnx.h5", "onnx.keras"):  # Keras -> ONNX -> Keras
        convert(str(tmp_path / "m.onnx"), str(tmp_path / back))
        if name in FOLDED_BATCH_NORM:  # the folded weights, the batch normalization as an identity
            got = keras_weights(tmp_path / back)
            assert_same_weights({k: v for k, v in got.items() if k not in FOLDED_BATCH_NORM[name]},
                                {k: v for k, v in want.items() if k not in FOLDED_BATCH_NORM[name]})
            xs, ys = io(name, version)
            assert_close(run_onnx(compiled(load(tmp_path / back).model, got), xs), ys)
        else:
            assert_same_weights(keras_weights(tmp_path / back), want)
    convert(str(tmp_path / "m.nn"), str(tmp_path / "nn.h5"), weights=str(tmp_path / "m.npz"))  # via .nn + .npz
    assert_same_weights(keras_weights(tmp_path / "nn.h5"), want)


def test_an_onnx_input_named_like_a_tensor_reference_converts_to_keras(tmp_path):
    """tf2onnx names graph inputs 'input_1:0'; the ':0' is part of the name, not an output index."""
    proto = onnx.load(str(fixture("cnn_mnist.tf2onnx.onnx")))
    old, new = proto.graph.input[0].name, "input_1:0"
    proto.graph.input[0].name = new
    for node in proto.graph.node:
        node.input[:] = [new if x == old else x for x in node.input]
    onnx.save(proto, str(tmp_path / "renamed.onnx"))
    xs, ys = io("cnn_mnist", "k2")
    for out in ("m.h5", "m.keras"):
        convert(str(tmp_path / "renamed.onnx"), str(tmp_path / out))
        convert(str(tmp_path / out), str(tmp_path / f"{out}.onnx"))
        back = onnx.load(str(tmp_path / f"{out}.onnx"))
        assert [i.name for i in back.graph.input] == [new]
        assert_close(run_onnx(back, xs), ys)


@pytest.mark.parametrize("name", ["masked_bilstm", "time_distributed_dense", "mha_self", "mha_cross", "attention",
                                  "additive_attention", "transformer_block"])
def test_nnspec_onnx_with_unliftable_nodes_converts_back_through_its_spec(name, tmp_path):
    """The mask's Equal, TimeDistributed's reshapes and attention have no lifted layer; the carried spec says
    what the graph is, and the weights come back bit for bit."""
    source = APPS / f"{name}.k2.h5"
    convert(str(source), str(tmp_path / "m.onnx"))
    result = run_cli("convert", tmp_path / "m.onnx", tmp_path / "back.h5")
    assert result.returncode == 0, result.stderr
    assert_same_weights(keras_weights(tmp_path / "back.h5"), keras_weights(source))


def test_a_keras_json_with_or_without_weights(tmp_path):
    json_path, weights_path = fixture("conv1d_gap.k2.json"), fixture("conv1d_gap.k2.weights.h5")
    convert(str(json_path), str(tmp_path / "w.onnx"), weights=str(weights_path))
    xs, ys = io("conv1d_gap", "k2")
    assert_close(run_onnx(onnx.load(str(tmp_path / "w.onnx")), xs), ys)
    _, notes = convert(str(json_path), str(tmp_path / "fresh.nn"), seed=3)
    assert (tmp_path / "fresh.npz").exists() and not notes


def test_specs_convert_with_their_source_kept(tmp_path):
    spec = tmp_path / "tiny.nn"
    spec.write_text("model tiny {\n  input x: float32[6]\n  dense(4, activation=relu)\n  dense(2)\n}\n")
    _, notes = convert(str(spec), str(tmp_path / "t.onnx"), seed=0)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "t.onnx")).metadata_props}
    assert props["nnspec.source"] == spec.read_text() and "fresh weights" in notes[0]
    convert(str(spec), str(tmp_path / "t.keras"), seed=0)
    with pytest.raises(SpecError, match="--opset applies to .onnx output"):
        convert(str(spec), str(tmp_path / "t.h5"), seed=0, opset=17)


def _digests(paths):
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_outputs_are_deterministic(tmp_path):
    source = str(fixture("functional_residual.k3.keras"))
    outputs = [tmp_path / n for n in ("m.onnx", "m.nn", "m.npz", "m.h5", "m.keras")]
    runs = []
    for _ in range(2):
        for out in ("m.onnx", "m.nn", "m.h5", "m.keras"):
            convert(source, str(tmp_path / out))
        runs.append(_digests(outputs))
    assert runs[0] == runs[1]


# ---- the command: errors are one line, exit code 2, and leave nothing behind -------------------


def _truncated_h5(tmp_path):
    data = fixture("mlp_sigmoid.k2.h5").read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(data[: len(data) // 2])
    return [path]


def _not_keras_json(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"hello": "world"}))
    return [path]


def _weights_of_another_model(tmp_path):
    return [fixture("mlp_sigmoid.k2.json"), "--weights", fixture("bn_mlp.k2.weights.h5")]


def _external_data_outside(tmp_path):
    kernel = numpy_helper.from_array(np.ones((4, 2), np.float32), "k")
    kernel.ClearField("raw_data")
    kernel.data_location = TensorProto.EXTERNAL
    kernel.external_data.add(key="location", value="../../etc/passwd")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "k"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])], [kernel])
    path = tmp_path / "ext.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return [path]


def _unknown_op(tmp_path):
    graph = helper.make_graph([helper.make_node("Hardmax", ["x"], ["y"], name="pick")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])])
    path = tmp_path / "op.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return [path]


@pytest.mark.parametrize("make,out,message", [
    (_truncated_h5, "m.onnx", "not a readable HDF5 file"),
    (_not_keras_json, "m.onnx", "neither a Keras model.to_json() (class_name, config) nor an nnspec spec"),
    (_weights_of_another_model, "m.keras", "weight 'kernel' has shape (20, 16) in the file"),
    (_external_data_outside, "m.nn", "outside the model's folder; refused"),
    (_unknown_op, "m.h5", "cannot lift node 'pick' (Hardmax): op Hardmax has no nnspec layer"),
    (lambda tmp_path: [fixture("mlp_sigmoid.k2.h5")], "m.pt", "cannot write this file type"),
])
def test_bad_inputs_fail_in_one_line(make, out, message, tmp_path):
    target = tmp_path / "out" / out
    result = run_cli("convert", *make(tmp_path)[:1], target, *make(tmp_path)[1:])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not target.parent.exists() or not any(target.parent.iterdir())


def test_the_command_writes_and_says_so(tmp_path):
    result = run_cli("convert", fixture("embed_lstm.k3.keras"), tmp_path / "m.nn")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {tmp_path / 'm.nn'}, {tmp_path / 'm.npz'}"
    result = run_cli("predict", tmp_path / "m.nn", "--weights", tmp_path / "m.npz", "-i",
                     fixture("embed_lstm.k3.io.npz"), "-o", tmp_path / "y.npy")
    assert result.returncode == 0, result.stderr
    assert_close([np.load(tmp_path / "y.npy")], io("embed_lstm", "k3")[1])
