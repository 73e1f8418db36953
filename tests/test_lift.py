"""ONNX -> nnspec layers: tf2onnx's exports of the Keras fixtures and nnspec's own files lift to
models that compute the same; nnspec's files give back their weights; what has no layer, and
external data outside the model's folder, is refused."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from convert_support import CATALOG, MODELS, NOT_LIFTED, assert_same_weights, catalog_inputs, catalog_model, \
    catalog_weights, fixture, io
from nnspec.backends.onnx.lift import LiftError, unfold
from nnspec.onnx_file import lift
from nnspec.errors import SpecError
from nnspec.ir.layers import BatchNormalization
from onnx_support import assert_close, compiled, run_onnx

TF2ONNX_LAYERS = {
    "mlp_sigmoid": ["Dense:dense", "Dense:dense_1"],
    "mlp_dropout_l2": ["Dense:dense_2", "Dense:dense_3", "Dense:dense_4"],
    "cnn_mnist": ["Conv2D:conv2d", "Conv2D:conv2d_1", "MaxPooling2D:max_pooling2d", "Flatten:flatten", "Dense:dense_5",
                  "Dense:dense_6"],
    "conv1d_gap": ["Conv1D:conv1d", "MaxPooling1D:max_pooling1d", "Conv1D:conv1d_1",
                   "GlobalAveragePooling1D:global_average_pooling1d", "Dense:dense_11"],
    "bn_mlp": ["Dense:dense_9", "BatchNormalization:batch_normalization", "Activation:activation_2",
               "Dense:dense_10"],
    "lstm_cosine": ["LSTM:lstm", "Dense:dense_7"],
    "gru_stack": ["GRU:gru", "SimpleRNN:simple_rnn", "Dense:dense_8"],  # tf2onnx's SimpleRNN is a Loop
    "embed_lstm": ["Embedding:embedding", "LSTM:lstm_1", "LSTM:lstm_2", "Dense:dense_12"],
    "functional_residual": ["Dense:h1", "Dense:h2", "Add:skip", "Concatenate:cat", "Dense:probs"],
}


@pytest.mark.parametrize("name", MODELS)
def test_tf2onnx_exports_lift_to_keras_layers(name):
    lifted = lift(fixture(f"{name}.tf2onnx.onnx"))
    assert [f"{l.type}:{l.name}" for l in lifted.model.layers] == TF2ONNX_LAYERS[name]
    xs, ys = io(name, "k2")
    assert_close(run_onnx(compiled(lifted.model, lifted.weights), xs), ys)


LIFTED = sorted(set(CATALOG) - NOT_LIFTED)


def _without_spec(proto: onnx.ModelProto) -> onnx.ModelProto:
    foreign = onnx.ModelProto()
    foreign.CopyFrom(proto)
    del foreign.metadata_props[:]
    return foreign


@pytest.mark.parametrize("name", LIFTED)
def test_nnspec_files_give_back_their_spec_and_weights(name):
    model, weights = catalog_model(name), catalog_weights(catalog_model(name))
    proto = compiled(model, weights)
    lifted = lift(proto)
    assert lifted.model == model
    if name in ("bn_rank3", "conv2d_bn"):  # a folded batch normalization: other numbers, the same function
        assert set(lifted.weights) == set(weights)
        x = catalog_inputs(model)
        assert_close(run_onnx(compiled(model, lifted.weights), x), run_onnx(proto, x))
    else:
        assert_same_weights(lifted.weights, weights)


@pytest.mark.parametrize("name", LIFTED)
def test_graphs_without_a_spec_lift_to_the_same_function(name):
    model, weights = catalog_model(name), catalog_weights(catalog_model(name))
    proto = compiled(model, weights)
    lifted = lift(_without_spec(proto))
    x = catalog_inputs(model)
    assert_close(run_onnx(compiled(lifted.model, lifted.weights), x), run_onnx(proto, x))


@pytest.mark.parametrize("name,message", [
    ("wrappers", r"node 'bidirectional/LSTM_1' \(LSTM\): the sequence of a reversed recurrent op"),
    ("masking", r"node 'masking/Equal' \(Equal\)")])
def test_graphs_with_no_layer_for_an_op_are_refused(name, message):
    model = catalog_model(name)
    with pytest.raises(LiftError, match=message) as exc:
        lift(_without_spec(compiled(model, catalog_weights(model))))
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("scale,center", [(True, True), (True, False), (False, True), (False, False)])
def test_folded_batch_norm_recovers_the_function(scale, center):
    bn = BatchNormalization(scale=scale, center=center, epsilon=0.01)
    rng = np.random.default_rng(0)
    s, t = rng.uniform(0.5, 2.0, 3).astype(np.float32), rng.normal(size=3).astype(np.float32)
    w = unfold(bn, s, t)
    x = rng.normal(size=(4, 3))
    y = (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + bn.epsilon) * w.get("gamma", 1) + w.get("beta", 0)
    np.testing.assert_allclose(y, x * s + t, atol=1e-5)


def _graph(nodes, initializers=(), x_shape=(None, 4), name="g"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", *x_shape[1:]])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return helper.make_model(helper.make_graph(nodes, name, [x], [y], list(initializers)),
                             opset_imports=[helper.make_opsetid("", 18)])


def test_unknown_ops_are_refused_naming_the_node():
    proto = _graph([helper.make_node("Sin", ["x"], ["y"], name="wave")])
    with pytest.raises(LiftError, match=r"cannot lift node 'wave' \(Sin\): Sin of a tensor has no nnspec layer"):
        lift(proto)
    custom = _graph([helper.make_node("Fancy", ["x"], ["y"], name="f", domain="com.example")])
    with pytest.raises(LiftError, match=r"node 'f' \(Fancy\): op com.example.Fancy has no nnspec layer"):
        lift(custom)


def _external(tmp_path, location: str) -> str:
    kernel = numpy_helper.from_array(np.ones((4, 2), np.float32), "kernel")
    kernel.data_location = TensorProto.EXTERNAL
    del kernel.external_data[:]
    for key, value in {"location": location, "offset": "0", "length": "32"}.items():
        kernel.external_data.add(key=key, value=value)
    kernel.ClearField("raw_data")
    proto = _graph([helper.make_node("MatMul", ["x", "kernel"], ["y"], name="d/MatMul")], [kernel])
    path = tmp_path / "model" / "m.onnx"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(proto.SerializeToString())
    return str(path)


def test_external_data_is_read_only_from_the_models_folder(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.bin").write_bytes(np.full((4, 2), 0.5, np.float32).tobytes())
    lifted = lift(_external(tmp_path, "w.bin"))
    assert (lifted.weights["d"][0] == 0.5).all()
    (tmp_path / "secret.bin").write_bytes(bytes(32))
    for location in ("../secret.bin", str(tmp_path / "secret.bin")):
        with pytest.raises(SpecError, match="outside the model's folder; refused"):
            lift(_external(tmp_path, location))
    with pytest.raises(SpecError, match="external data file 'gone.bin' is missing"):
        lift(_external(tmp_path, "gone.bin"))
