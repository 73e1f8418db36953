"""Keras models -> nnspec IR: every fixture file reproduces Keras's predictions; layers, activations,
nested models and compile settings map as Keras means them; what nnspec cannot honour is refused
with the layer and the setting named."""
import json
import shutil
import zipfile
from collections import Counter

import h5py
import numpy as np
import onnx
import pytest

from convert_support import MODELS, VERSIONS, fixture, io
from nnspec.backends.keras.errors import KerasFormatError
from nnspec.backends.keras.importer import load
from nnspec.errors import SpecError
from onnx_support import assert_close, compiled, run_onnx


def _formats(version):
    return ["h5", "json"] + (["keras"] if version == "k3" else [])


CASES = [(n, v, f) for n in MODELS for v in VERSIONS for f in _formats(v)]


def _load(name, version, fmt):
    if fmt == "json":
        return load(fixture(f"{name}.{version}.json"), fixture(f"{name}.{version}.weights.h5"))
    return load(fixture(f"{name}.{version}.{fmt}"))


@pytest.mark.parametrize("name,version,fmt", CASES)
def test_every_fixture_reproduces_keras(name, version, fmt):
    imported = _load(name, version, fmt)
    assert imported.keras_version == ("2.x" if version == "k2" else "3.x")
    xs, ys = io(name, version)
    assert_close(run_onnx(compiled(imported.model, imported.weights), xs), ys)


@pytest.mark.parametrize("name", MODELS)
def test_compiled_fixtures_have_no_more_nodes_than_tf2onnx(name):
    imported = load(fixture(f"{name}.k2.h5"))
    ours = compiled(imported.model, imported.weights).graph.node
    theirs = onnx.load(str(fixture(f"{name}.tf2onnx.onnx"))).graph.node
    assert len(ours) <= len(theirs), Counter(n.op_type for n in ours)


def test_layers_keep_keras_names_wiring_and_settings():
    model = load(fixture("functional_residual.k3.keras")).model
    assert [(i.name, i.dtype, i.shape) for i in model.inputs] == [("features", "float32", [12])]
    assert [(l.type, l.name, l.inputs) for l in model.layers] == [
        ("Dense", "h1", ["features"]), ("Dense", "h2", ["h1"]), ("Add", "skip", ["h1", "h2"]),
        ("Concatenate", "cat", ["skip", "features"]), ("Dense", "probs", ["cat"])]
    assert model.outputs == ["probs"] and model.layers[-1].activation.name == "softmax"
    k2 = load(fixture("mlp_dropout_l2.k2.h5")).model  # Keras 2 wrote the regularizer's float32 value
    assert k2.layers[0].kernel_regularizer.l2 == pytest.approx(1e-3)
    bn = load(fixture("bn_mlp.k2.h5")).model.layers[1]
    assert (bn.type, bn.axis, bn.epsilon, bn.momentum) == ("BatchNormalization", -1, 1e-3, 0.99)
    pool = load(fixture("cnn_mnist.k3.h5")).model.layers[2]
    assert pool.pool_size == [2, 2] and pool.strides is None  # Keras writes the default out; the IR implies it
    assert load(fixture("embed_lstm.k2.h5")).model.inputs[0].dtype == "int32"


# ---- small models written as model.to_json() ------------------------------------------------


def keras_json(tmp_path, layers, version=3, shape=(4,), name="m.json"):
    """A Sequential model.to_json() as Keras 2 or 3 writes it, architecture only."""
    key = "batch_shape" if version == 3 else "batch_input_shape"
    doc = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {key: [None, *shape], "dtype": "float32", "name": "x"}},
        *[{"class_name": cls, "config": {"name": f"l{i}", **cfg}} for i, (cls, cfg) in enumerate(layers)]]},
        "keras_version": f"{version}.15.0"}
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _activations(tmp_path, layers, version=3):
    return [l.activation for l in load(keras_json(tmp_path, layers, version)).model.layers]


def test_activation_layers_become_activations(tmp_path):
    fns = _activations(tmp_path, [
        ("ReLU", {}), ("ReLU", {"max_value": 6.0}), ("ReLU", {"negative_slope": 0.1}),
        ("LeakyReLU", {"alpha": 0.3}), ("ELU", {"alpha": 0.5}), ("Softmax", {"axis": -1}),
        ("Dense", {"units": 3, "activation": {"class_name": "LeakyReLU", "config": {"negative_slope": 0.25}}}),
        ("ReLU", {"max_value": 2.0, "threshold": 0.5}), ("ThresholdedReLU", {"theta": 0.7})], 2)
    assert [{"name": f.name, **f.model_dump(exclude_defaults=True)} for f in fns] == [
        {"name": "relu"}, {"name": "relu6"}, {"name": "leaky_relu", "alpha": 0.1},
        {"name": "leaky_relu", "alpha": 0.3},  # Keras 2's default, kept from the file (the IR's is 0.2)
        {"name": "elu", "alpha": 0.5}, {"name": "softmax"}, {"name": "leaky_relu", "alpha": 0.25},
        {"name": "relu", "max_value": 2.0, "threshold": 0.5}, {"name": "relu", "threshold": 0.7}]


def test_hard_sigmoid_follows_the_keras_version(tmp_path):
    layer = [("Dense", {"units": 2, "activation": "hard_sigmoid"})]
    assert _activations(tmp_path, layer, 2)[0].slope == 0.2  # Keras 2: clip(0.2 x + 0.5)
    assert _activations(tmp_path, layer, 3)[0].slope == pytest.approx(1 / 6)  # Keras 3: relu6(x + 3) / 6


def test_harmless_settings_are_dropped(tmp_path):
    model = load(keras_json(tmp_path, [
        ("Dense", {"units": 3, "dtype": "mixed_float16", "quantization_config": None, "lora_rank": None}),
        ("Dropout", {"rate": 0.5, "seed": 7}),
        ("BatchNormalization", {"axis": [1], "synchronized": True, "renorm": False, "fused": None})])).model
    assert model.layers[1].seed == 7
    assert model.layers[2].axis == -1  # Keras 2 writes [1]; the reader counts from the end


REFUSED = [
    ([("Conv1D", {"filters": 2, "kernel_size": 2, "data_format": "channels_first"})], (4, 3),
     r"layer 'l0' \(Conv1D\): data_format='channels_first' is not supported"),
    ([("Dense", {"units": 3, "lora_rank": 4})], (4,), r"layer 'l0' \(Dense\): option lora_rank=4 of Dense is not supported"),
    ([("LSTM", {"units": 3, "time_major": True})], (4, 3), r"layer 'l0' \(LSTM\): time_major=True is not supported"),
    ([("BatchNormalization", {"renorm": True})], (4,), r"layer 'l0' \(BatchNormalization\): renorm=True is not supported"),
    ([("Dense", {"units": 3, "activation": "sparsemax"})], (4,),
     r"layer 'l0' \(Dense\): activation: activation 'sparsemax' has no nnspec equivalent"),
    ([("ConvLSTM1D", {"filters": 2, "kernel_size": 2})], (4, 3, 3),
     r"layer 'l0' \(ConvLSTM1D\): layer class 'ConvLSTM1D' has no nnspec equivalent"),
    ([("Dense", {"units": 3, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"input_axes": [0]}}})],
     (4,), r"kernel_initializer: initializer 'GlorotUniform' option input_axes=\[0\] is not supported"),
]


@pytest.mark.parametrize("layers,shape,message", REFUSED)
def test_settings_nnspec_cannot_honour_are_refused(tmp_path, layers, shape, message):
    with pytest.raises(KerasFormatError, match=message) as exc:
        load(keras_json(tmp_path, layers, 3, shape))
    assert "\n" not in str(exc.value) and str(exc.value).startswith(str(tmp_path))


def _functional(tmp_path, layers, inputs, outputs, name="f.json"):
    doc = {"class_name": "Functional", "keras_version": "2.15.0", "config": {
        "name": "f", "layers": layers, "input_layers": inputs, "output_layers": outputs}}
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _node(*refs):
    return [[[r, 0, 0, {}] for r in refs]]


def _input(name, shape):
    return {"class_name": "InputLayer", "name": name, "inbound_nodes": [],
            "config": {"batch_input_shape": [None, *shape], "dtype": "float32", "name": name}}


def test_shared_layers_are_refused(tmp_path):
    dense = {"class_name": "Dense", "name": "shared", "config": {"name": "shared", "units": 4},
             "inbound_nodes": _node("a") + _node("b")}
    path = _functional(tmp_path, [_input("a", [4]), _input("b", [4]), dense,
                                  {"class_name": "Add", "name": "add", "config": {"name": "add"},
                                   "inbound_nodes": [[["shared", 0, 0, {}], ["shared", 1, 0, {}]]]}],
                       [["a", 0, 0], ["b", 0, 0]], [["add", 0, 0]])
    with pytest.raises(KerasFormatError, match=r"layer 'shared' \(Dense\): called 2 times"):
        load(path)


def test_nested_models_are_flattened(tmp_path):
    inner = {"class_name": "Sequential", "name": "block", "inbound_nodes": _node("x"), "config": {
        "name": "block", "trainable": False, "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "name": "block_in"}},
            {"class_name": "Dense", "config": {"name": "dense", "units": 5}},
            {"class_name": "Dense", "config": {"name": "out", "units": 3}}]}}
    outer = {"class_name": "Dense", "name": "dense", "config": {"name": "dense", "units": 2},
             "inbound_nodes": _node("block")}
    model = load(_functional(tmp_path, [_input("x", [4]), inner, outer], [["x", 0, 0]], [["dense", 0, 0]])).model
    assert [(l.name, l.inputs, l.trainable) for l in model.layers] == [
        ("dense", ["x"], False), ("out", ["dense"], False), ("dense_1", ["out"], True)]
    assert model.outputs == ["dense_1"]


# ---- compile settings and optimizer state ---------------------------------------------------


def test_training_config_and_optimizer_state_of_a_keras2_file(tmp_path):
    path = tmp_path / "t.h5"
    shutil.copy(fixture("mlp_sigmoid.k2.h5"), path)
    with h5py.File(path, "a") as f:
        f.attrs["training_config"] = json.dumps({
            "loss": "categorical_crossentropy", "metrics": [["accuracy", "AUC"]], "weighted_metrics": None,
            "loss_weights": None, "optimizer_config": {"class_name": "Custom>Adam", "config": {
                "name": "Adam", "learning_rate": 0.01, "beta_1": 0.8, "epsilon": 1e-07, "amsgrad": False,
                "jit_compile": True, "is_legacy_optimizer": False, "use_ema": False, "ema_momentum": 0.99}}})
        g = f.create_group("optimizer_weights")
        g.attrs["weight_names"] = [b"Adam/iter:0"]
        g.create_dataset("Adam/iter:0", data=np.int64(12))
    imported = load(path)
    train = imported.model.train
    assert train.loss.name == "categorical_crossentropy" and [m.name for m in train.metrics] == ["accuracy", "auc"]
    assert (train.optimizer.name, train.optimizer.learning_rate, train.optimizer.beta_1) == ("adam", 0.01, 0.8)
    assert imported.optimizer_weights == {"Adam/iter:0": 12} and not imported.notes


def test_compile_config_of_a_keras3_archive(tmp_path):
    src = zipfile.ZipFile(fixture("bn_mlp.k3.keras"))
    config = json.loads(src.read("config.json"))
    config["compile_config"] = {
        "optimizer": {"module": "keras.optimizers", "class_name": "SGD", "config": {
            "name": "SGD", "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
                                             "config": {"initial_learning_rate": 0.1, "decay_steps": 100,
                                                        "decay_rate": 0.5, "staircase": False, "name": None}},
            "momentum": 0.9, "nesterov": True, "weight_decay": None, "clipnorm": None}, "registered_name": None},
        "loss": {"module": "keras.losses", "class_name": "CategoricalCrossentropy", "config": {
            "name": "cce", "reduction": "sum_over_batch_size", "from_logits": True, "label_smoothing": 0.1,
            "axis": -1}, "registered_name": None},
        "metrics": ["accuracy"], "loss_weights": None, "weighted_metrics": None}
    path = tmp_path / "t.keras"
    with zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, json.dumps(config) if item.filename == "config.json" else src.read(item))
    train = load(path).model.train
    assert train.loss.model_dump() == {"name": "categorical_crossentropy", "from_logits": True,
                                       "label_smoothing": 0.1, "axis": -1}
    assert train.optimizer.name == "sgd" and train.optimizer.nesterov and train.optimizer.momentum == 0.9
    assert train.optimizer.learning_rate.name == "exponential_decay"


def test_settings_the_ir_cannot_say_are_noted_not_kept(tmp_path):
    path = tmp_path / "t.h5"
    shutil.copy(fixture("mlp_sigmoid.k2.h5"), path)
    with h5py.File(path, "a") as f:
        f.attrs["training_config"] = json.dumps({"loss": "mse", "loss_weights": [0.5], "optimizer_config": None})
    imported = load(path)
    assert imported.model.train is None and "loss_weights" in imported.notes[0]


def test_refusals_are_spec_errors(tmp_path):
    assert issubclass(KerasFormatError, SpecError)
    with pytest.raises(SpecError, match="no such file"):
        load(tmp_path / "missing.h5")
