"""The ONNX files nnspec writes: valid, small, named, self-describing; and, with the weights of
real Keras models (tests/fixtures/keras), giving Keras's predictions with no more nodes than
tf2onnx's export of the same model."""
import json
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest

from nnspec.onnx_file import compile_model, compile_spec, spec_from_onnx
from nnspec.backends.onnx.emit import MAX_OPSET, MIN_OPSET
from nnspec.errors import SpecError
from nnspec.loader import dump_json, loads
from nnspec.weights import initial_weights
from onnx_support import analysis_of, assert_close, compiled, model_of, random_weights, run_onnx

FIXTURES = Path(__file__).parent / "fixtures" / "keras"

# The fixtures' architectures, written by hand as JSON specs (layer names: the Keras files').
KERAS_MODELS = {
    "mlp_sigmoid": ([784], [{"type": "Dense", "units": 128}, {"type": "Activation", "activation": "sigmoid"},
                            {"type": "Dense", "units": 10}, {"type": "Activation", "activation": "sigmoid"}]),
    "mlp_dropout_l2": ([784], [{"type": "Dense", "units": 64, "activation": "relu"}, {"type": "Dropout", "rate": 0.2},
                               {"type": "Dense", "units": 32, "activation": "tanh"}, {"type": "Dropout", "rate": 0.2},
                               {"type": "Dense", "units": 10, "activation": "softmax"}]),
    "cnn_mnist": ([28, 28, 1], [
        {"type": "Conv2D", "filters": 8, "kernel_size": 3, "activation": "relu"},
        {"type": "Conv2D", "filters": 16, "kernel_size": 3, "activation": "relu"},
        {"type": "MaxPooling2D", "pool_size": 2}, {"type": "Dropout", "rate": 0.25}, {"type": "Flatten"},
        {"type": "Dense", "units": 32, "activation": "relu"}, {"type": "Dropout", "rate": 0.5},
        {"type": "Dense", "units": 10, "activation": "softmax"}]),
    "conv1d_gap": ([32, 4], [
        {"type": "Conv1D", "filters": 8, "kernel_size": 5, "padding": "same", "activation": "relu"},
        {"type": "MaxPooling1D", "pool_size": 2},
        {"type": "Conv1D", "filters": 8, "kernel_size": 3, "activation": "elu"},
        {"type": "GlobalAveragePooling1D"}, {"type": "Dense", "units": 1, "activation": "sigmoid"}]),
    "bn_mlp": ([20], [{"type": "Dense", "units": 16}, {"type": "BatchNormalization"},
                      {"type": "Activation", "activation": "relu"},
                      {"type": "Dense", "units": 3, "activation": "softmax"}]),
    "lstm_cosine": ([12, 1], [{"type": "LSTM", "units": 16}, {"type": "Dense", "units": 1}]),
    "gru_stack": ([10, 3], [{"type": "GRU", "units": 8, "return_sequences": True}, {"type": "SimpleRNN", "units": 6},
                            {"type": "Dense", "units": 2, "activation": "softmax"}]),
    "embed_lstm": (([15], "int32"), [{"type": "Embedding", "input_dim": 50, "output_dim": 8},
                                     {"type": "LSTM", "units": 8, "return_sequences": True},
                                     {"type": "LSTM", "units": 4},
                                     {"type": "Dense", "units": 3, "activation": "softmax"}]),
    "functional_residual": ([12], [
        {"type": "Dense", "name": "h1", "units": 16, "activation": "relu", "inputs": ["x"]},
        {"type": "Dense", "name": "h2", "units": 16, "activation": "relu"},
        {"type": "Add", "name": "skip", "inputs": ["h1", "h2"]},
        {"type": "Concatenate", "name": "cat", "inputs": ["skip", "x"]},
        {"type": "Dense", "name": "probs", "units": 4, "activation": "softmax"}]),
}


def keras_weights(path):
    """{layer name: arrays in get_weights() order} from a legacy Keras 2 HDF5 file."""
    with h5py.File(path, "r") as f:
        group = f["model_weights"]
        return {name: [np.asarray(group[name][w]) for w in group[name].attrs["weight_names"]] for name in group
                if len(group[name].attrs.get("weight_names", []))}


def keras_model(name):
    shape, layers = KERAS_MODELS[name]
    config = json.loads((FIXTURES / f"{name}.k2.json").read_text())
    keras_layers = [l for l in config["config"]["layers"] if l["class_name"] != "InputLayer"]
    named = [{"name": k["config"]["name"], **l} for l, k in zip(layers, keras_layers)]
    return model_of(named, shape)


@pytest.mark.parametrize("name", sorted(KERAS_MODELS))
def test_keras_fixture_end_to_end(name):
    model = keras_model(name)
    proto = compiled(model, keras_weights(FIXTURES / f"{name}.k2.h5"))
    io = np.load(FIXTURES / f"{name}.k2.io.npz")
    assert_close(run_onnx(proto, [io["x0"]]), [io["y0"]])
    tf2onnx = onnx.load(str(FIXTURES / f"{name}.tf2onnx.onnx"))
    assert len(proto.graph.node) <= len(tf2onnx.graph.node), Counter(n.op_type for n in proto.graph.node)


def test_node_counts_of_the_classic_models():
    """784-128-10 is two Gemm + two Sigmoid; the CNN keeps NCHW from its first transpose to Flatten."""
    weights = keras_weights(FIXTURES / "mlp_sigmoid.k2.h5")
    ops = [n.op_type for n in compiled(keras_model("mlp_sigmoid"), weights).graph.node]
    assert ops == ["Gemm", "Sigmoid", "Gemm", "Sigmoid"]
    weights = keras_weights(FIXTURES / "cnn_mnist.k2.h5")
    ops = [n.op_type for n in compiled(keras_model("cnn_mnist"), weights).graph.node]
    assert ops == ["Transpose", "Conv", "Relu", "Conv", "Relu", "MaxPool", "Transpose", "Reshape",
                   "Gemm", "Relu", "Gemm", "Softmax"]


def test_transposes_only_where_the_layout_changes():
    layers = [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same"},
              {"type": "BatchNormalization"}, {"type": "Activation", "activation": "relu"},
              {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same", "name": "c2"},
              {"type": "Add", "inputs": ["c2", "activation"]}, {"type": "AveragePooling2D"},
              {"type": "GlobalMaxPooling2D"}, {"type": "Dense", "units": 3, "activation": "softmax"}]
    model = model_of(layers, (8, 8, 3))
    proto = compiled(model, random_weights(analysis_of(model), np.random.default_rng(0)))
    ops = Counter(n.op_type for n in proto.graph.node)
    assert ops["Transpose"] == 1  # in; the global pool reduces channels-first and leaves (batch, channels)
    assert ops["BatchNormalization"] == 0 and ops["Conv"] == 2  # folded into the conv before it


def test_names_batch_dimension_and_no_dead_nodes():
    model = keras_model("functional_residual")
    proto = compiled(model, keras_weights(FIXTURES / "functional_residual.k2.h5"))
    layer_names = {l.name for l in model.layers}
    for node in proto.graph.node:
        assert node.name.split("/")[0] in layer_names, node.name
        assert all(o.split("/")[0] in layer_names for o in node.output)
    for init in proto.graph.initializer:
        assert init.name.split("/")[0] in layer_names, init.name
    assert {i.name for i in proto.graph.initializer} >= {"h1/kernel", "h1/bias", "probs/kernel"}
    for value in [*proto.graph.input, *proto.graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [o.name for o in proto.graph.output] == ["probs"]
    consumed = {i for n in proto.graph.node for i in n.input} | {o.name for o in proto.graph.output}
    for node in proto.graph.node:
        assert any(o in consumed for o in node.output), f"dead node {node.name}"


def test_weights_are_taken_in_keras_order():
    model = model_of([{"type": "Dense", "units": 3, "name": "d"}], (4,))
    kernel, bias = np.arange(12, dtype=np.float32).reshape(4, 3), np.array([1, 2, 3], np.float32)
    proto = compile_model(model, {"d": [kernel, bias]})
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    assert np.array_equal(inits["d/kernel"], kernel) and np.array_equal(inits["d/bias"], bias)
    with pytest.raises(SpecError, match=r"layer 'd' takes 2 weight array\(s\) \(kernel \(4, 3\), bias \(3,\)\), got 1"):
        compile_model(model, {"d": [kernel]})
    with pytest.raises(SpecError, match=r"weight 'd/kernel' has shape \(3, 4\)"):
        compile_model(model, {"d": [kernel.T, bias]})
    with pytest.raises(SpecError, match="layer 'e', which the model does not have"):
        compile_model(model, {"d": [kernel, bias], "e": [bias]})


SPEC = """model tiny {
  input x: float32[6]
  dense(4, activation=relu)
  dense(2, activation=softmax)
}
"""


def test_metadata_recovers_the_spec():
    spec = loads(SPEC, "tiny.nn")
    proto = compile_spec(spec, initial_weights(spec.analysis, seed=0))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["nnspec.source"] == SPEC and props["nnspec.suffix"] == ".nn"
    assert props["nnspec.version"] == proto.producer_version and proto.producer_name == "nnspec"
    back = spec_from_onnx(proto)
    assert back.source == SPEC and dump_json(back.model) == dump_json(spec.model)
    # A model built in Python carries its resolved JSON.
    model = keras_model("conv1d_gap")
    back = spec_from_onnx(compile_model(model, initial_weights(analysis_of(model), seed=0)))
    assert dump_json(back.model) == dump_json(model)


def test_spec_from_foreign_onnx_is_refused():
    with pytest.raises(SpecError, match="not written by nnspec"):
        spec_from_onnx(FIXTURES / "mlp_sigmoid.tf2onnx.onnx")


@pytest.mark.parametrize("opset", range(MIN_OPSET, MAX_OPSET + 1))
def test_every_supported_opset(opset):
    """Reductions, LSTM, conv, norms at each opset onnxruntime loads; IR version as low as allowed."""
    layers = [{"type": "Conv1D", "filters": 4, "kernel_size": 3, "padding": "same"}, {"type": "LayerNormalization"},
              {"type": "LSTM", "units": 3, "return_sequences": True}, {"type": "GlobalAveragePooling1D"},
              {"type": "Dense", "units": 2, "activation": "softmax"}]
    model = model_of(layers, (6, 2))
    weights = random_weights(analysis_of(model), np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(3, 6, 2)).astype(np.float32)
    proto = compiled(model, weights, opset=opset)
    assert proto.opset_import[0].version == opset and 10 <= proto.ir_version <= 13
    assert_close(run_onnx(proto, [x]), run_onnx(compiled(model, weights), [x]), atol=1e-6)


def test_unsupported_opset():
    with pytest.raises(ValueError, match="opset 27 is not supported"):
        compile_model(model_of([{"type": "Flatten"}], (2, 2)), {}, opset=27)


def test_float64_input_is_cast_like_keras():
    model = model_of([{"type": "Dense", "units": 2}], ((3,), "float64"))
    weights = random_weights(analysis_of(model), np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(4, 3))
    (y,) = run_onnx(compiled(model, weights), [x])
    assert y.dtype == np.float32
    assert_close([y], [x @ weights["dense"][0] + weights["dense"][1]])
