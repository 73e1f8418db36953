"""The safe Keras reader against real Keras 2/3 files (tests/fixtures/keras) and hostile ones."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

try:
    from nnspec.backends.keras import reader
except ImportError:
    from backends.keras import reader

KerasFormatError = reader.KerasFormatError
FIX = Path(__file__).parent / "fixtures" / "keras"
MODELS = ["bn_mlp", "cnn_mnist", "conv1d_gap", "embed_lstm", "functional_residual",
          "gru_stack", "lstm_cosine", "mlp_dropout_l2", "mlp_sigmoid"]
VERSIONS = ["k2", "k3"]


def fx(name: str) -> Path:
    return FIX / name


def formats(model: str, v: str) -> dict[str, reader.KerasModel]:
    """Every way the fixtures store one model, loaded."""
    out = {"h5": reader.load(fx(f"{model}.{v}.h5")),
           "json+weights": reader.load(fx(f"{model}.{v}.json"), weights_path=fx(f"{model}.{v}.weights.h5"))}
    if v == "k3":
        out["keras"] = reader.load(fx(f"{model}.{v}.keras"))
    return out


def test_fixture_set_is_complete():
    found = {p.name.split(".")[0] for p in FIX.glob("*.json") if ".train." not in p.name}
    assert found == set(MODELS)


# ---------------------------------------------------------------- every file loads

KERAS_FILES = sorted(p.name for p in FIX.iterdir()
                     if p.name.endswith((".json", ".h5", ".keras")) and ".train." not in p.name)


@pytest.mark.parametrize("name", KERAS_FILES)
def test_every_fixture_file_loads(name):
    path = fx(name)
    if name.endswith(".weights.h5"):
        # weights only: alone it is an error that says what to do; with its JSON it loads
        with pytest.raises(KerasFormatError, match="pass the architecture"):
            reader.load(path)
        model = reader.load(fx(name.replace(".weights.h5", ".json")), weights_path=path)
    else:
        model = reader.load(path)
    assert model.layers and model.layers[0].class_name == "InputLayer"
    assert model.keras_version == ("2.x" if ".k2." in name else "3.x")
    assert model.source
    with_weights = not name.endswith(".json")
    assert any(layer.weights for layer in model.layers) == with_weights
    for layer in model.layers:
        assert len(layer.weights) == len(layer.weight_names)
        assert all(isinstance(w, np.ndarray) for w in layer.weights)


# ---------------------------------------------------------------- formats agree

def _same_weights(a: reader.KerasLayer, b: reader.KerasLayer):
    assert a.weight_names == b.weight_names, a.name
    assert len(a.weights) == len(b.weights), a.name
    for x, y in zip(a.weights, b.weights):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes(), f"{a.name}: weights differ"


@pytest.mark.parametrize("v", VERSIONS)
@pytest.mark.parametrize("name", MODELS)
def test_formats_of_one_model_agree(name, v):
    loaded = formats(name, v)
    ref = loaded.pop("h5")
    assert any(layer.weights for layer in ref.layers)
    for fmt, model in loaded.items():
        assert [(l.name, l.class_name) for l in model.layers] == [(l.name, l.class_name) for l in ref.layers], fmt
        assert (model.inputs, model.outputs, model.sequential) == (ref.inputs, ref.outputs, ref.sequential)
        for a, b in zip(ref.layers, model.layers):
            _same_weights(a, b)
            assert a.inbound == b.inbound
            assert a.config == b.config, f"{fmt}: config of {a.name}"


# ---------------------------------------------------------------- Keras 2 and 3 agree

KEY_FIELDS = ["units", "filters", "kernel_size", "strides", "padding", "activation", "use_bias",
              "return_sequences", "rate", "pool_size", "input_dim", "output_dim", "axis", "epsilon",
              "momentum", "center", "scale", "reset_after", "data_format", "dtype", "batch_shape"]


def _walk(value):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


@pytest.mark.parametrize("name", MODELS)
def test_keras2_and_keras3_normalize_alike(name):
    k2, k3 = reader.load(fx(f"{name}.k2.h5")), reader.load(fx(f"{name}.k3.h5"))
    assert [l.class_name for l in k2.layers] == [l.class_name for l in k3.layers]
    assert k2.sequential == k3.sequential
    for a, b in zip(k2.layers, k3.layers):
        assert a.weight_names == b.weight_names
        assert [w.shape for w in a.weights] == [w.shape for w in b.weights]
        for key in KEY_FIELDS:
            assert (key in a.config) == (key in b.config), f"{a.class_name}.{key}"
            if key in a.config:
                assert a.config[key] == b.config[key], f"{a.class_name}.{key}"
        # shape of the inbound links, not the (version-specific) input layer names
        assert [len(n) for n in a.inbound] == [len(n) for n in b.inbound]
        for cfg in (a.config, b.config):
            assert isinstance(cfg.get("dtype", "float32"), str)
            for obj in _walk(cfg):
                if isinstance(obj, dict):
                    assert not {"module", "registered_name", "shared_object_id"} & set(obj)
            for key, value in cfg.items():
                if key.endswith(("_initializer", "_regularizer", "_constraint")) and value is not None:
                    assert set(value) == {"class_name", "config"} and value["class_name"][0].isupper()
            if a.class_name == "InputLayer":
                assert "batch_shape" in cfg and "batch_input_shape" not in cfg


def test_sequential_and_functional_look_alike():
    seq = reader.load(fx("mlp_sigmoid.k2.h5"))
    assert seq.sequential and seq.inputs == [(seq.layers[0].name, 0, 0)]
    assert seq.outputs == [(seq.layers[-1].name, 0, 0)]
    for prev, layer in zip(seq.layers, seq.layers[1:]):
        assert layer.inbound == [[(prev.name, 0, 0)]]
    for v in VERSIONS:
        fun = reader.load(fx(f"functional_residual.{v}.h5"))
        assert not fun.sequential
        assert fun.inputs == [("features", 0, 0)] and fun.outputs == [("probs", 0, 0)]
        assert fun.layer("skip").inbound == [[("h1", 0, 0), ("h2", 0, 0)]]
        assert fun.layer("cat").inbound == [[("skip", 0, 0), ("features", 0, 0)]]
        assert fun.layer("features").inbound == []


def test_known_normalized_values():
    for v in VERSIONS:
        m = reader.load(fx(f"mlp_dropout_l2.{v}.h5"))
        dense = m.layers[1]
        assert dense.config["kernel_regularizer"]["class_name"] == "L2"
        assert dense.config["kernel_regularizer"]["config"]["l2"] == pytest.approx(1e-3)
        assert dense.config["kernel_initializer"]["class_name"] == "GlorotUniform"
        assert m.layers[0].config["batch_shape"] == [None, 784]
        bn = reader.load(fx(f"bn_mlp.{v}.h5")).layer("batch_normalization")
        assert bn.config["axis"] == [-1]  # Keras 2 wrote [1], Keras 3 -1
        gru = reader.load(fx(f"gru_stack.{v}.h5")).layer("gru")
        assert [w.shape for w in gru.weights] == [(3, 24), (8, 24), (2, 24)]


# ---------------------------------------------------------------- weights mean what Keras meant

def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


ACT = {"linear": lambda x: x, "relu": lambda x: np.maximum(x, 0), "sigmoid": _sigmoid,
       "softmax": _softmax, "tanh": np.tanh}


def _lstm(x, layer):
    k, rk, b = (w.astype(np.float64) for w in layer.weights)
    u = layer.config["units"]
    h = np.zeros((x.shape[0], u))
    c = np.zeros_like(h)
    seq = []
    for t in range(x.shape[1]):
        z = x[:, t] @ k + h @ rk + b
        i, f, g, o = (z[:, j * u:(j + 1) * u] for j in range(4))  # Keras gate order i, f, c, o
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        seq.append(h)
    return np.stack(seq, 1) if layer.config["return_sequences"] else h


def _predict(model, xs):
    """Enough of Keras' forward pass to check weight order and meaning."""
    vals = {ref[0]: x.astype(np.float64) if x.dtype.kind == "f" else x for ref, x in zip(model.inputs, xs)}
    for layer in model.layers:
        if layer.class_name == "InputLayer":
            continue
        args = [vals[ref[0]] for ref in layer.inbound[0]]
        w = [a.astype(np.float64) for a in layer.weights]
        cls, cfg = layer.class_name, layer.config
        if cls == "Dense":
            y = ACT[cfg["activation"]](args[0] @ w[0] + w[1])
        elif cls == "Activation":
            y = ACT[cfg["activation"]](args[0])
        elif cls == "Dropout":
            y = args[0]
        elif cls == "BatchNormalization":
            gamma, beta, mean, var = w
            y = (args[0] - mean) / np.sqrt(var + cfg["epsilon"]) * gamma + beta
        elif cls == "Add":
            y = sum(args)
        elif cls == "Concatenate":
            y = np.concatenate(args, axis=cfg["axis"])
        elif cls == "Embedding":
            y = w[0][args[0]]
        elif cls == "LSTM":
            y = _lstm(args[0], layer)
        else:
            raise NotImplementedError(cls)
        vals[layer.name] = y
    return [vals[ref[0]] for ref in model.outputs]


@pytest.mark.parametrize("v", VERSIONS)
@pytest.mark.parametrize("name", ["mlp_sigmoid", "mlp_dropout_l2", "bn_mlp", "functional_residual",
                                  "lstm_cosine", "embed_lstm"])
def test_weights_reproduce_keras_predictions(name, v):
    io = np.load(fx(f"{name}.{v}.io.npz"))
    xs = [io[f"x{i}"] for i in range(sum(k.startswith("x") for k in io.files))]
    for model in formats(name, v).values():
        (y,) = _predict(model, xs)
        np.testing.assert_allclose(y, io["y0"], atol=2e-6, rtol=1e-5)


# ---------------------------------------------------------------- more layouts, built here

def test_keras2_legacy_save_weights_layout(tmp_path):
    # Keras 2 save_weights("x.h5"): the model_weights group's layout, at the file root
    src = fx("bn_mlp.k2.h5")
    dst = tmp_path / "bn_mlp.weights_legacy.h5"
    with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
        for key, value in f["model_weights"].attrs.items():
            g.attrs[key] = value
        for name in f["model_weights"]:
            f.copy(f["model_weights"][name], g, name=name)
    model = reader.load(fx("bn_mlp.k2.json"), weights_path=dst)
    ref = reader.load(src)
    for a, b in zip(ref.layers, model.layers):
        _same_weights(a, b)


def test_chunked_layer_names_attribute(tmp_path):
    # Keras splits attributes over 64 KiB into layer_names0, layer_names1, ...
    dst = tmp_path / "m.h5"
    shutil.copy(fx("mlp_sigmoid.k2.h5"), dst)
    with h5py.File(dst, "a") as f:
        g = f["model_weights"]
        names = g.attrs["layer_names"]
        del g.attrs["layer_names"]
        g.attrs["layer_names0"], g.attrs["layer_names1"] = names[:2], names[2:]
    assert reader.load(dst).layer("dense_1").weights[0].shape == (128, 10)


def _json_doc(name: str) -> dict:
    return json.loads(fx(name).read_text())


def _write_json(tmp_path, doc, name="model.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_old_keras2_sequential_without_input_layer(tmp_path):
    doc = _json_doc("mlp_sigmoid.k2.json")
    layers = doc["config"]["layers"]
    first = layers.pop(0)
    layers[0]["config"]["batch_input_shape"] = first["config"]["batch_input_shape"]
    for entry in layers:
        entry.pop("module", None)
        entry.pop("registered_name", None)
        entry.pop("build_config", None)
    model = reader.load(_write_json(tmp_path, doc), weights_path=fx("mlp_sigmoid.k2.weights.h5"))
    inp = model.layers[0]
    assert (inp.name, inp.class_name, inp.config["batch_shape"]) == ("dense_input", "InputLayer", [None, 784])
    assert model.layers[1].inbound == [[("dense_input", 0, 0)]]
    assert "batch_input_shape" not in model.layers[1].config
    assert model.inputs == [("dense_input", 0, 0)]
    _same_weights(model.layer("dense"), reader.load(fx("mlp_sigmoid.k2.h5")).layer("dense"))


def test_keras2_config_details_are_normalized(tmp_path):
    doc = _json_doc("gru_stack.k2.json")
    gru = doc["config"]["layers"][1]
    gru["config"]["kernel_initializer"] = "glorot_uniform"
    gru["config"]["dtype"] = {"class_name": "Policy", "config": {"name": "mixed_float16"}}
    dense = doc["config"]["layers"][-1]
    dense["config"]["activation"] = {"class_name": "LeakyReLU", "config": {"name": "lr", "alpha": 0.2}}
    bidi = {"class_name": "Bidirectional", "name": "bi",
            "config": {"name": "bi", "merge_mode": "concat", "layer": dict(gru)}}
    doc["config"]["layers"][1] = bidi
    model = reader.load(_write_json(tmp_path, doc))
    bi = model.layer("bi").config
    assert bi["layer"]["class_name"] == "GRU"
    assert bi["layer"]["config"]["kernel_initializer"] == {"class_name": "GlorotUniform", "config": {}}
    assert bi["layer"]["config"]["dtype"] == "mixed_float16"
    assert bi["backward_layer"]["config"]["go_backwards"] is True
    out = model.layers[-1].config
    assert out["activation"] == "leaky_relu" and out["activation_config"] == {"negative_slope": 0.2}


def test_nested_model_stays_nested(tmp_path):
    inner = _json_doc("mlp_sigmoid.k3.json")
    outer = _json_doc("functional_residual.k3.json")
    inner_entry = dict(inner, name="inner", inbound_nodes=outer["config"]["layers"][-1]["inbound_nodes"])
    inner_entry["config"]["layers"][0]["config"]["batch_shape"] = [None, 28]
    outer["config"]["layers"][-1] = inner_entry
    outer["config"]["output_layers"] = ["inner", 0, 0]
    model = reader.load(_write_json(tmp_path, outer))
    layer = model.layer("inner")
    assert layer.class_name == "Sequential" and layer.weights == []
    nested = layer.config["model"]
    assert isinstance(nested, reader.KerasModel) and nested.sequential
    assert [l.class_name for l in nested.layers][:2] == ["InputLayer", "Dense"]
    assert layer.inbound == [[("cat", 0, 0)]]


def test_training_config_and_optimizer_weights(tmp_path):
    dst = tmp_path / "trained.h5"
    shutil.copy(fx("mlp_sigmoid.k2.h5"), dst)
    with h5py.File(dst, "a") as f:
        f.attrs["training_config"] = json.dumps({
            "loss": "binary_crossentropy", "metrics": ["accuracy"], "weighted_metrics": None,
            "loss_weights": None,
            "optimizer_config": {"class_name": "Custom>RMSprop", "config": {"name": "RMSprop", "lr": 0.01}}})
        g = f.create_group("optimizer_weights")
        g.attrs["weight_names"] = [b"RMSprop/iter:0", b"RMSprop/dense/kernel/rms:0"]
        g.create_dataset("RMSprop/iter:0", data=np.int64(5))
        g.create_dataset("RMSprop/dense/kernel/rms:0", data=np.ones((784, 128), np.float32))
    model = reader.load(dst)
    assert model.training_config == {
        "loss": "binary_crossentropy", "metrics": ["accuracy"], "weighted_metrics": None,
        "loss_weights": None,
        "optimizer": {"class_name": "RMSprop", "config": {"name": "RMSprop", "learning_rate": 0.01}}}
    assert set(model.optimizer_weights) == {"RMSprop/iter:0", "RMSprop/dense/kernel/rms:0"}
    assert model.optimizer_weights["RMSprop/iter:0"] == 5
    assert reader.load(fx("mlp_sigmoid.k2.h5")).training_config is None


# ---------------------------------------------------------------- hostile and broken files

def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


FAKE_MARSHAL = "4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARQAUwApAk7pAgAAAKkA"


def _lambda_doc():
    doc = _json_doc("mlp_sigmoid.k2.json")
    doc["config"]["layers"].insert(1, {
        "class_name": "Lambda",
        "config": {"name": "double", "function": [FAKE_MARSHAL, None, None],
                   "function_type": "lambda", "output_shape": None, "arguments": {}}})
    return doc


def test_lambda_layer_is_refused_without_unmarshalling(tmp_path, monkeypatch):
    import marshal
    import pickle

    def boom(*a, **k):
        raise AssertionError("the reader must never unmarshal or unpickle")

    monkeypatch.setattr(marshal, "loads", boom)
    monkeypatch.setattr(pickle, "loads", boom)
    path = _write_json(tmp_path, _lambda_doc())
    with pytest.raises(KerasFormatError) as exc:
        reader.load(path)
    msg = _one_line(exc)
    assert "model.json" in msg and "'double'" in msg and "Lambda" in msg and "lambda(<expr>)" in msg
    # the same inside a full .h5
    dst = tmp_path / "lam.h5"
    shutil.copy(fx("mlp_sigmoid.k2.h5"), dst)
    with h5py.File(dst, "a") as f:
        f.attrs["model_config"] = json.dumps(_lambda_doc())
    with pytest.raises(KerasFormatError, match=r"lam\.h5: layer 'double': is a Lambda layer"):
        reader.load(dst)


def test_keras3_lambda_marker_is_refused(tmp_path):
    doc = _json_doc("mlp_sigmoid.k3.json")
    doc["config"]["layers"][2]["config"]["activation"] = {
        "class_name": "__lambda__", "config": {"code": FAKE_MARSHAL, "defaults": None, "closure": None}}
    with pytest.raises(KerasFormatError, match="marshalled Python lambda"):
        reader.load(_write_json(tmp_path, doc))


def test_unknown_layer_class_is_refused(tmp_path):
    doc = _json_doc("functional_residual.k3.json")
    doc["config"]["layers"][3]["class_name"] = "MyFancyAdd"
    with pytest.raises(KerasFormatError) as exc:
        reader.load(_write_json(tmp_path, doc, "fancy.json"))
    msg = _one_line(exc)
    assert "fancy.json" in msg and "'MyFancyAdd'" in msg and "layer 'skip'" in msg


def test_custom_registered_stock_name_is_refused(tmp_path):
    doc = _json_doc("mlp_sigmoid.k3.json")
    doc["config"]["layers"][1].update(module="my_pkg.layers", registered_name="my_pkg>Dense")
    with pytest.raises(KerasFormatError, match="custom layer class 'Dense'"):
        reader.load(_write_json(tmp_path, doc))


def test_custom_activation_is_refused(tmp_path):
    doc = _json_doc("mlp_sigmoid.k2.json")
    doc["config"]["layers"][2]["config"]["activation"] = "my_secret_activation"
    with pytest.raises(KerasFormatError, match="unknown activation 'my_secret_activation'"):
        reader.load(_write_json(tmp_path, doc))


def _replace_dataset(f: h5py.File, path: str, **kwargs) -> None:
    shape, dtype = f[path].shape, f[path].dtype
    del f[path]
    f.create_dataset(path, shape=shape, dtype=dtype, **kwargs)


def test_external_dataset_is_refused(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * (784 * 128 * 4))
    dst = tmp_path / "ext.h5"
    shutil.copy(fx("mlp_sigmoid.k2.h5"), dst)
    with h5py.File(dst, "a") as f:
        _replace_dataset(f, "model_weights/dense/dense/kernel:0", external=[(str(secret), 0, 784 * 128 * 4)])
    with pytest.raises(KerasFormatError) as exc:
        reader.load(dst)
    msg = _one_line(exc)
    assert "ext.h5" in msg and "/model_weights/dense/dense/kernel:0" in msg and "external dataset" in msg
    # and in a weights-only file given with a JSON
    wdst = tmp_path / "ext.weights.h5"
    shutil.copy(fx("mlp_sigmoid.k3.weights.h5"), wdst)
    with h5py.File(wdst, "a") as f:
        _replace_dataset(f, "layers/dense/vars/0", external=[(str(secret), 0, 784 * 128 * 4)])
    with pytest.raises(KerasFormatError, match=r"ext\.weights\.h5: /layers/dense/vars/0: external dataset"):
        reader.load(fx("mlp_sigmoid.k3.json"), weights_path=wdst)


def test_virtual_dataset_is_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("data", data=np.zeros(10, np.float32))
    dst = tmp_path / "virt.h5"
    shutil.copy(fx("mlp_sigmoid.k2.h5"), dst)
    with h5py.File(dst, "a") as f:
        layout = h5py.VirtualLayout(shape=(10,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(other), "data", shape=(10,))
        del f["model_weights/dense_1/dense_1/bias:0"]
        f["model_weights/dense_1/dense_1"].create_virtual_dataset("bias:0", layout)
    with pytest.raises(KerasFormatError, match=r"virt\.h5: /model_weights/dense_1/dense_1/bias:0: virtual dataset"):
        reader.load(dst)


@pytest.mark.parametrize("kind", ["external", "soft"])
def test_links_are_refused(tmp_path, kind):
    dst = tmp_path / "link.h5"
    shutil.copy(fx("mlp_sigmoid.k2.h5"), dst)
    with h5py.File(dst, "a") as f:
        f["model_weights/sneaky"] = (h5py.ExternalLink("/etc/passwd.h5", "/x") if kind == "external"
                                     else h5py.SoftLink("/model_weights/dense"))
    with pytest.raises(KerasFormatError, match=r"/model_weights/sneaky: (External|Soft)Link"):
        reader.load(dst)


def test_truncated_h5_is_refused(tmp_path):
    data = fx("mlp_sigmoid.k3.h5").read_bytes()
    dst = tmp_path / "cut.h5"
    dst.write_bytes(data[: len(data) // 2])
    with pytest.raises(KerasFormatError) as exc:
        reader.load(dst)
    assert "cut.h5" in _one_line(exc) and "not a readable HDF5 file" in str(exc.value)
    wdst = tmp_path / "cut.weights.h5"
    wdata = fx("mlp_sigmoid.k3.weights.h5").read_bytes()
    wdst.write_bytes(wdata[:4096])
    with pytest.raises(KerasFormatError, match="cut.weights.h5: not a readable HDF5 file"):
        reader.load(fx("mlp_sigmoid.k3.json"), weights_path=wdst)


def test_truncated_keras_archive_is_refused(tmp_path):
    data = fx("mlp_sigmoid.k3.keras").read_bytes()
    dst = tmp_path / "cut.keras"
    dst.write_bytes(data[: len(data) // 2])
    with pytest.raises(KerasFormatError, match=r"cut\.keras: not a readable \.keras \(zip\) archive"):
        reader.load(dst)


def test_weights_of_a_different_model_are_refused():
    # Keras 3 file: groups carry layer names
    with pytest.raises(KerasFormatError) as exc:
        reader.load(fx("mlp_sigmoid.k3.json"), weights_path=fx("cnn_mnist.k3.weights.h5"))
    msg = _one_line(exc)
    assert "cnn_mnist.k3.weights.h5" in msg and "layer 'dense'" in msg and "different model" in msg
    # tf_keras file of the same layout, no names: the shapes give it away
    with pytest.raises(KerasFormatError, match=r"mlp_dropout_l2\.k2\.weights\.h5: layer 'dense': "
                                               r"weight 'kernel' has shape \(784, 64\).*\(\?, 128\)"):
        reader.load(fx("mlp_sigmoid.k2.json"), weights_path=fx("mlp_dropout_l2.k2.weights.h5"))
    # legacy layout, matched by layer name
    with pytest.raises(KerasFormatError, match=r"bn_mlp\.k2\.h5: layer 'dense': no weights for this layer"):
        reader.load(fx("mlp_sigmoid.k2.json"), weights_path=fx("bn_mlp.k2.h5"))


def test_weights_with_a_layer_too_many_or_wrong_count(tmp_path):
    wdst = tmp_path / "extra.weights.h5"
    shutil.copy(fx("mlp_sigmoid.k2.weights.h5"), wdst)
    with h5py.File(wdst, "a") as f:
        f.create_dataset("layers/dense_7/vars/0", data=np.zeros(3, np.float32))
    with pytest.raises(KerasFormatError, match=r"/layers/dense_7/vars/0: weights for something the model does not have"):
        reader.load(fx("mlp_sigmoid.k2.json"), weights_path=wdst)
    with h5py.File(wdst, "a") as f:
        del f["layers/dense_7"]
        del f["layers/dense_1/vars/1"]
    with pytest.raises(KerasFormatError, match=r"layer 'dense_1': the file has 1 weights .* has 2"):
        reader.load(fx("mlp_sigmoid.k2.json"), weights_path=wdst)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.mark.parametrize("evil", ["../evil", "assets/../../evil", "/etc/evil", "C:/evil", "..\\evil"])
def test_keras_archive_with_path_traversal_is_refused(tmp_path, evil):
    with zipfile.ZipFile(fx("mlp_sigmoid.k3.keras")) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members[evil] = b"owned"
    path = _zip(tmp_path / "evil.keras", members)
    with pytest.raises(KerasFormatError) as exc:
        reader.load(path)
    msg = _one_line(exc)
    assert "evil.keras" in msg and "path traversal" in msg and evil in msg


def test_keras_archive_without_weights_is_refused(tmp_path):
    with zipfile.ZipFile(fx("mlp_sigmoid.k3.keras")) as z:
        members = {n: z.read(n) for n in ("config.json", "metadata.json")}
    with pytest.raises(KerasFormatError, match="no model.weights.h5"):
        reader.load(_zip(tmp_path / "bare.keras", members))


@pytest.mark.parametrize("text,fragment", [
    ('{"hello": "world", "numbers": [1, 2, 3]}', "not a Keras model"),
    ("[1, 2, 3]", "not a Keras model"),
    ('{"class_name": "Dense", "config": {"units": 3}}', "not a Keras model config"),
    ("{not json at all", "not valid JSON"),
    ("[" * 100000, "not valid JSON"),
])
def test_random_json_is_refused(tmp_path, text, fragment):
    path = tmp_path / "random.json"
    path.write_text(text)
    with pytest.raises(KerasFormatError) as exc:
        reader.load(path)
    assert "random.json" in _one_line(exc) and fragment in str(exc.value)


def test_other_refusals(tmp_path):
    doc = _json_doc("mlp_sigmoid.k2.json")
    doc["keras_version"] = "1.2.2"
    with pytest.raises(KerasFormatError, match="written by Keras 1.2.2"):
        reader.load(_write_json(tmp_path, doc))
    with pytest.raises(KerasFormatError, match="unknown file type"):
        reader.load(fx("mlp_sigmoid.k3.io.npz"))
    not_keras = tmp_path / "plain.h5"
    with h5py.File(not_keras, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(KerasFormatError, match="not a Keras model file"):
        reader.load(not_keras)
    with pytest.raises(KerasFormatError, match="only for a .json architecture"):
        reader.load(fx("mlp_sigmoid.k3.h5"), weights_path=fx("mlp_sigmoid.k3.weights.h5"))
    with pytest.raises(FileNotFoundError):
        reader.load(tmp_path / "missing.h5")


def test_mangled_configs_fail_cleanly(tmp_path):
    """Values of the wrong type anywhere in a config give KerasFormatError, never a crash."""
    import random

    rng = random.Random(1234)
    junk = [None, 0, -1, 1.5, "x", [], {}, [1, 2], {"class_name": "X"}, True, [None, 3]]
    docs = [_json_doc(f"{m}.{v}.json") for m in ("functional_residual", "gru_stack", "bn_mlp") for v in VERSIONS]

    def spots(value, path=()):
        yield path
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, sub in items:
            yield from spots(sub, path + (key,))

    path = tmp_path / "mangled.json"
    for _ in range(300):
        doc = json.loads(json.dumps(rng.choice(docs)))
        where = rng.choice(list(spots(doc))[1:])
        parent = doc
        for key in where[:-1]:
            parent = parent[key]
        parent[where[-1]] = rng.choice(junk)
        path.write_text(json.dumps(doc))
        try:
            reader.load(path)
        except KerasFormatError as exc:
            assert "mangled.json" in str(exc) and "\n" not in str(exc)


# Layouts seen in files from Keras 3.15 (Bidirectional, TimeDistributed, a nested Sequential),
# rebuilt here with h5py since the fixtures have no such model.

def _k3(cls, name, inbound=None, **config):
    entry = {"module": "keras.layers", "class_name": cls, "registered_name": None,
             "config": {"name": name, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                                "config": {"name": "float32"}, "registered_name": None},
                        **config}}
    if inbound is not None:
        entry["name"] = name
        entry["inbound_nodes"] = [{"args": [{"class_name": "__keras_tensor__",
                                             "config": {"keras_history": [inbound, 0, 0]}}], "kwargs": {}}]
    return entry


def _wrapped_model_config():
    lstm = dict(units=6, return_sequences=True, activation="tanh", recurrent_activation="sigmoid", use_bias=True)
    fwd = _k3("LSTM", "forward_lstm", go_backwards=False, **lstm)
    bwd = _k3("LSTM", "backward_lstm", go_backwards=True, **lstm)
    leaky = {"module": "keras.layers", "class_name": "LeakyReLU", "registered_name": None,
             "config": {"name": "leaky_re_lu", "negative_slope": 0.3}}
    inner = {"module": "keras", "class_name": "Sequential", "registered_name": None, "name": "inner",
             "config": {"name": "inner", "layers": [
                 {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                  "config": {"name": "input_layer", "batch_shape": [None, 4], "dtype": "float32"}},
                 _k3("Dense", "in_d1", units=5, activation="linear"),
                 _k3("BatchNormalization", "in_bn", axis=-1, epsilon=1e-3),
                 _k3("Dense", "in_d2", units=3, activation="linear")]},
             "inbound_nodes": _k3("Add", "-", inbound="gap")["inbound_nodes"]}
    entries = [
        {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": "x",
         "config": {"name": "x", "batch_shape": [None, 7, 4], "dtype": "float32"}, "inbound_nodes": []},
        _k3("Bidirectional", "bi", inbound="x", merge_mode="concat", layer=fwd, backward_layer=bwd),
        _k3("TimeDistributed", "td", inbound="bi", layer=_k3("Dense", "dense", units=4, activation=leaky)),
        _k3("GlobalAveragePooling1D", "gap", inbound="td"),
        inner,
    ]
    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": "outer", "layers": entries, "input_layers": ["x", 0, 0],
                       "output_layers": ["inner", 0, 0]}}


def _wrapped_weights():
    rng = np.random.default_rng(0)
    shapes = {"fk": (4, 24), "frk": (6, 24), "fb": (24,), "bk": (4, 24), "brk": (6, 24), "bb": (24,),
              "tk": (12, 4), "tb": (4,), "d1k": (4, 5), "d1b": (5,), "g": (5,), "b": (5,), "mm": (5,),
              "mv": (5,), "d2k": (5, 3), "d2b": (3,)}
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


def _check_wrapped(model, w):
    def same(layer, keys):
        assert len(layer.weights) == len(keys)
        for got, key in zip(layer.weights, keys):
            assert got.tobytes() == w[key].tobytes(), (layer.name, key)

    bi = model.layer("bi")
    assert bi.weight_names == ["forward/kernel", "forward/recurrent_kernel", "forward/bias",
                               "backward/kernel", "backward/recurrent_kernel", "backward/bias"]
    same(bi, ["fk", "frk", "fb", "bk", "brk", "bb"])
    td = model.layer("td")
    assert td.config["layer"]["config"]["activation"] == "leaky_relu"
    assert td.config["layer"]["config"]["activation_config"] == {"negative_slope": 0.3}
    same(td, ["tk", "tb"])
    inner = model.layer("inner").config["model"]
    same(inner.layer("in_d1"), ["d1k", "d1b"])
    same(inner.layer("in_bn"), ["g", "b", "mm", "mv"])
    same(inner.layer("in_d2"), ["d2k", "d2b"])
    assert inner.layer("in_d1").inbound == [[("input_layer", 0, 0)]]


def test_keras3_layout_of_wrappers_and_nested_models(tmp_path):
    w = _wrapped_weights()
    config = _wrapped_model_config()
    wpath = tmp_path / "wrapped.weights.h5"
    with h5py.File(wpath, "w") as f:
        def put(group, *arrays, name=None):
            g = f.require_group(group + "/vars")
            if name:
                g.attrs["name"] = name
            for i, key in enumerate(arrays):
                g.create_dataset(str(i), data=w[key])
        put("layers/input_layer", name="x")
        put("layers/bidirectional", name="bi")
        put("layers/bidirectional/forward_layer/cell", "fk", "frk", "fb", name="lstm_cell")
        put("layers/bidirectional/backward_layer/cell", "bk", "brk", "bb", name="lstm_cell")
        put("layers/time_distributed", name="td")
        put("layers/time_distributed/layer", "tk", "tb", name="dense")
        put("layers/time_distributed/layer/activation", name="leaky_re_lu")
        put("layers/global_average_pooling1d", name="gap")
        put("layers/sequential", name="inner")
        put("layers/sequential/layers/dense", "d1k", "d1b", name="in_d1")
        put("layers/sequential/layers/batch_normalization", "g", "b", "mm", "mv", name="in_bn")
        put("layers/sequential/layers/dense_1", "d2k", "d2b", name="in_d2")
        put("optimizer", name="adam")
        f["optimizer/vars"].create_dataset("0", data=np.int64(3))
    model = reader.load(_write_json(tmp_path, config, "wrapped.json"), weights_path=wpath)
    _check_wrapped(model, w)
    assert model.optimizer_weights == {"optimizer/vars/0": 3}


def test_legacy_layout_of_wrappers_and_nested_models(tmp_path):
    w = _wrapped_weights()
    path = tmp_path / "wrapped.h5"
    legacy = {  # a nested model lists all trainable weights first, then the non-trainable ones
        "x": [], "gap": [],
        "bi": [("bi/forward_lstm/lstm_cell/kernel", "fk"), ("bi/forward_lstm/lstm_cell/recurrent_kernel", "frk"),
               ("bi/forward_lstm/lstm_cell/bias", "fb"), ("bi/backward_lstm/lstm_cell/kernel", "bk"),
               ("bi/backward_lstm/lstm_cell/recurrent_kernel", "brk"), ("bi/backward_lstm/lstm_cell/bias", "bb")],
        "td": [("td/dense/kernel", "tk"), ("td/dense/bias", "tb")],
        "inner": [("inner/in_d1/kernel", "d1k"), ("inner/in_d1/bias", "d1b"), ("inner/in_bn/gamma", "g"),
                  ("inner/in_bn/beta", "b"), ("inner/in_d2/kernel", "d2k"), ("inner/in_d2/bias", "d2b"),
                  ("inner/in_bn/moving_mean", "mm"), ("inner/in_bn/moving_variance", "mv")],
    }
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "3.15.1"
        f.attrs["model_config"] = json.dumps(_wrapped_model_config())
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [n.encode() for n in legacy]
        for layer, weights in legacy.items():
            g = mw.create_group(layer)
            g.attrs["weight_names"] = [n.encode() for n, _ in weights]
            for name, key in weights:
                g.create_dataset(name, data=w[key])
    _check_wrapped(reader.load(path), w)
