"""Checks tests/reference.py against real Keras outputs (tests/fixtures/keras) and small cases."""
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from reference import activation, output_mask, run_layer

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
MODELS = sorted(p for p in FIXTURES.glob("*.h5") if not p.name.endswith(".weights.h5"))


# --------------------------------------------------------------------------------------------
# a minimal Keras legacy-HDF5 model runner on top of run_layer


def _str(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def load_h5(path):
    """(model config, {layer name: weights in get_weights() order}, keras major version).
    Weights of layer L are datasets model_weights/L/<name> for <name> in L's 'weight_names'
    attribute (Keras 2 names end in ':0'; Keras 3 names are prefixed by the model name)."""
    with h5py.File(path, "r") as f:
        config = json.loads(_str(f.attrs["model_config"]))
        version = int(_str(f.attrs["keras_version"]).split(".")[0])
        group = f["model_weights"]
        weights = {name: [np.asarray(group[name][_str(w)]) for w in group[name].attrs["weight_names"]]
                   for name in group}
    return config, weights, version


def _refs(node):
    """[(layer name, tensor index)] a functional node reads. Keras 2: [[name, node, tensor,
    kwargs], ...]; Keras 3: {'args': [...], 'kwargs': {...}} holding '__keras_tensor__' dicts
    (possibly in nested lists) whose config.keras_history is [name, node, tensor]."""
    if isinstance(node, list):
        return [(r[0], r[2]) for r in node]
    found = []

    def walk(v):
        if isinstance(v, dict) and v.get("class_name") == "__keras_tensor__":
            found.append((v["config"]["keras_history"][0], v["config"]["keras_history"][2]))
        elif isinstance(v, (list, tuple)):
            for item in v:
                walk(item)
    walk(node["args"])
    return found


def _endpoints(refs):  # Keras 3 writes a single input/output as a flat [name, node, tensor]
    return [tuple(refs)] if isinstance(refs[0], str) else [tuple(r) for r in refs]


def run_model(config, weights, inputs, version):
    """Outputs of a Sequential or Functional model config on `inputs`, layer by layer."""
    layers = config["config"]["layers"]
    tensors = {}  # layer name -> ([outputs], [masks])

    def apply(layer, xs, masks):
        cls, cfg = layer["class_name"], layer["config"]
        mask = masks if cls in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
                                "Concatenate") else masks[0]
        y = run_layer(cls, cfg, weights.get(cfg["name"], []), xs, mask, version)
        tensors[cfg["name"]] = (y if isinstance(y, list) else [y],
                                [output_mask(cls, cfg, xs, mask)])
        return tensors[cfg["name"]]

    if config["class_name"] == "Sequential":
        ys, masks = list(inputs), [None]
        for layer in layers:
            if layer["class_name"] != "InputLayer":
                ys, masks = apply(layer, ys[:1], masks)
        return ys
    for (name, _, _), x in zip(_endpoints(config["config"]["input_layers"]), inputs):
        tensors[name] = ([x], [None])
    for layer in layers:  # Keras writes layers in topological order
        if layer["class_name"] != "InputLayer":
            (node,) = layer["inbound_nodes"]
            refs = _refs(node)
            apply(layer, [tensors[n][0][t] for n, t in refs],
                  [tensors[n][1][t] if t < len(tensors[n][1]) else None for n, t in refs])
    return [tensors[n][0][t] for n, _, t in _endpoints(config["config"]["output_layers"])]


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_matches_keras_predict(path):
    config, weights, version = load_h5(path)
    io = np.load(str(path)[: -len(".h5")] + ".io.npz")
    xs = [io[f"x{i}"] for i in range(sum(k.startswith("x") for k in io.files))]
    ys = run_model(config, weights, xs, version)
    assert len(ys) == sum(k.startswith("y") for k in io.files)
    for i, y in enumerate(ys):
        np.testing.assert_allclose(y, io[f"y{i}"], rtol=0, atol=1e-5)


def test_fixture_count():
    assert len(MODELS) == 18


# --------------------------------------------------------------------------------------------
# unit tests against hand-checkable cases and direct loops

rng = np.random.default_rng(0)


def _conv2d_loops(x, k, b, stride, pads, dilation):
    """Direct convolution with explicit (top, bottom, left, right) zero padding."""
    xp = np.pad(x, [(0, 0), pads[:2], pads[2:], (0, 0)])
    kh, kw, _, f = k.shape
    oh = (xp.shape[1] - (kh - 1) * dilation - 1) // stride + 1
    ow = (xp.shape[2] - (kw - 1) * dilation - 1) // stride + 1
    y = np.zeros((x.shape[0], oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for c in range(kw):
                    y[:, i, j] += xp[:, i * stride + a * dilation, j * stride + c * dilation] @ k[a, c]
    return y + b


def _conv_cfg(kernel, stride=1, padding="valid", dilation=1, groups=1):
    return {"kernel_size": [kernel] * 2, "strides": [stride] * 2, "padding": padding,
            "dilation_rate": [dilation] * 2, "groups": groups, "activation": "linear"}


@pytest.mark.parametrize("size,kernel,stride,dilation,pads", [
    (5, 3, 2, 1, (1, 1, 1, 1)),  # odd input, stride 2: out 3, total pad 2 -> 1 / 1
    (6, 3, 2, 1, (0, 1, 0, 1)),  # even input, stride 2: total pad 1 -> 0 before, 1 after
    (4, 2, 1, 1, (0, 1, 0, 1)),  # even kernel: the odd padded cell goes after
    (7, 3, 1, 2, (2, 2, 2, 2)),  # dilation 2: effective kernel 5
])
def test_conv2d_same_padding(size, kernel, stride, dilation, pads):
    x, b = rng.normal(size=(2, size, size, 3)), rng.normal(size=4)
    k = rng.normal(size=(kernel, kernel, 3, 4))
    y = run_layer("Conv2D", _conv_cfg(kernel, stride, "same", dilation), [k, b], [x])
    assert y.shape[1] == math.ceil(size / stride)
    np.testing.assert_allclose(y, _conv2d_loops(x, k, b, stride, pads, dilation), atol=1e-12)


def test_conv2d_same_by_hand():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # [[1,2,3],[4,5,6],[7,8,9]], 2x2 ones kernel
    y = run_layer("Conv2D", _conv_cfg(2, 1, "same"), [np.ones((2, 2, 1, 1))], [x])[0, ..., 0]
    np.testing.assert_array_equal(y, [[12, 16, 9], [24, 28, 15], [15, 17, 9]])


def test_conv_groups_and_conv1d():
    x, k = rng.normal(size=(2, 6, 6, 4)), rng.normal(size=(3, 3, 2, 6))
    y = run_layer("Conv2D", _conv_cfg(3, groups=2), [k, np.zeros(6)], [x])
    for g in range(2):
        np.testing.assert_allclose(y[..., 3 * g:3 * g + 3], _conv2d_loops(
            x[..., 2 * g:2 * g + 2], k[..., 3 * g:3 * g + 3], 0.0, 1, (0, 0, 0, 0), 1), atol=1e-12)
    x1, k1 = rng.normal(size=(2, 9, 3)), rng.normal(size=(4, 3, 5))
    cfg1 = {"kernel_size": [4], "strides": [2], "padding": "same", "activation": "linear"}
    for cfg, stride, pads in [(cfg1, 2, (1, 2, 0, 0)),  # same, total pad 3 -> 1 / 2
                              ({**cfg1, "strides": [1], "padding": "causal"}, 1, (3, 0, 0, 0))]:
        want = _conv2d_loops(x1[:, :, None], k1[:, None], 0.0, stride, pads, 1)[:, :, 0]
        np.testing.assert_allclose(run_layer("Conv1D", cfg, [k1], [x1]), want, atol=1e-12)


def test_pooling_same_excludes_padding():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    cfg = {"pool_size": [2, 2], "strides": [2, 2], "padding": "same"}
    avg = run_layer("AveragePooling2D", cfg, [], [x])[0, ..., 0]
    np.testing.assert_array_equal(avg, [[3, 4.5], [7.5, 9]])  # corner: 9 alone, not 9/4
    np.testing.assert_array_equal(run_layer("MaxPooling2D", cfg, [], [-x])[0, ..., 0], [[-1, -3], [-7, -9]])
    x1 = np.array([1.0, 2.0, 3.0, 4.0, 5.0]).reshape(1, 5, 1)
    cfg1 = {"pool_size": [2], "strides": [2], "padding": "same"}
    np.testing.assert_array_equal(run_layer("AveragePooling1D", cfg1, [], [x1])[0, :, 0], [1.5, 3.5, 5])
    valid = run_layer("MaxPooling1D", {**cfg1, "padding": "valid"}, [], [x1])
    np.testing.assert_array_equal(valid[0, :, 0], [2, 4])


def test_global_pooling_keepdims_and_mask():
    x = rng.normal(size=(2, 4, 3))
    np.testing.assert_allclose(run_layer("GlobalAveragePooling1D", {"keepdims": True}, [], [x]),
                               x.mean(1, keepdims=True))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    y = run_layer("GlobalAveragePooling1D", {}, [], [x], mask)
    np.testing.assert_allclose(y, [x[0, :2].mean(0), x[1].mean(0)])
    np.testing.assert_allclose(run_layer("GlobalMaxPooling2D", {}, [], [x[..., None]]),
                               x.max((1, 2))[:, None])


def _sig(v):
    return 1.0 / (1.0 + math.exp(-v))


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_one_unit_by_hand(reset_after):
    wz, wr, wh, uz, ur, uh = 0.5, -0.3, 0.8, 0.2, 0.7, -0.6
    bias = [0.1, -0.2, 0.3]
    rbias = [0.05, 0.15, -0.25]
    weights = [np.array([[wz, wr, wh]]), np.array([[uz, ur, uh]]),
               np.array([bias, rbias]) if reset_after else np.array(bias)]
    xs = [1.0, -2.0, 0.5]
    h = 0.0
    for x in xs:
        if reset_after:
            z = _sig(wz * x + bias[0] + uz * h + rbias[0])
            r = _sig(wr * x + bias[1] + ur * h + rbias[1])
            cand = math.tanh(wh * x + bias[2] + r * (uh * h + rbias[2]))
        else:
            z = _sig(wz * x + bias[0] + uz * h)
            r = _sig(wr * x + bias[1] + ur * h)
            cand = math.tanh(wh * x + bias[2] + uh * (r * h))
        h = z * h + (1 - z) * cand
    cfg = {"units": 1, "reset_after": reset_after}
    y = run_layer("GRU", cfg, weights, [np.array(xs).reshape(1, 3, 1)])
    assert y.shape == (1, 1) and abs(y[0, 0] - h) < 1e-14


def test_lstm_one_unit_by_hand():
    W, U, b = [0.3, -0.4, 0.9, 0.2], [0.1, 0.5, -0.7, 0.6], [0.0, 1.0, 0.2, -0.1]
    h = c = 0.0
    hs = []
    for x in [0.5, -1.0]:
        i, f, g, o = (W[k] * x + U[k] * h + b[k] for k in range(4))
        c = _sig(f) * c + _sig(i) * math.tanh(g)
        h = _sig(o) * math.tanh(c)
        hs.append(h)
    cfg = {"units": 1, "return_sequences": True, "return_state": True}
    seq, hN, cN = run_layer("LSTM", cfg, [np.array([W]), np.array([U]), np.array(b)],
                            [np.array([0.5, -1.0]).reshape(1, 2, 1)])
    np.testing.assert_allclose(seq[0, :, 0], hs, atol=1e-14)
    np.testing.assert_allclose([hN[0, 0], cN[0, 0]], [h, c], atol=1e-14)


def _rnn_weights(cls, n_in, units):
    gates = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}[cls]
    bias = rng.normal(size=(2, 3 * units)) if cls == "GRU" else rng.normal(size=gates * units)
    return [rng.normal(size=(n_in, gates * units)), rng.normal(size=(units, gates * units)), bias]


@pytest.mark.parametrize("cls", ["SimpleRNN", "GRU", "LSTM"])
def test_rnn_mask_and_go_backwards(cls):
    w, x = _rnn_weights(cls, 3, 4), rng.normal(size=(2, 5, 3))
    lengths = [5, 3]
    mask = np.arange(5)[None] < np.array(lengths)[:, None]
    seq_cfg = {"units": 4, "return_sequences": True}
    y = run_layer(cls, seq_cfg, w, [x], mask)
    last = run_layer(cls, {"units": 4}, w, [x], mask)
    for i, n in enumerate(lengths):  # masked run == run on the unpadded sequence
        alone = run_layer(cls, seq_cfg, w, [x[i:i + 1, :n]])[0]
        np.testing.assert_allclose(y[i, :n], alone, atol=1e-12)
        np.testing.assert_allclose(y[i, n:], np.repeat(alone[-1:], 5 - n, 0), atol=1e-12)  # previous output
        np.testing.assert_allclose(last[i], alone[-1], atol=1e-12)
    zero = run_layer(cls, {**seq_cfg, "zero_output_for_mask": True}, w, [x], mask)
    np.testing.assert_array_equal(zero[1, 3:], 0.0)
    np.testing.assert_array_equal(output_mask(cls, seq_cfg, [x], mask), mask)
    back = run_layer(cls, {**seq_cfg, "go_backwards": True}, w, [x])
    np.testing.assert_allclose(back, run_layer(cls, seq_cfg, w, [x[:, ::-1]]), atol=1e-12)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional(merge_mode):
    wf, wb, x = _rnn_weights("LSTM", 3, 2), _rnn_weights("LSTM", 3, 2), rng.normal(size=(2, 4, 3))
    inner = {"units": 2, "return_sequences": True, "return_state": True}
    cfg = {"layer": {"class_name": "LSTM", "config": inner}, "merge_mode": merge_mode}
    out = run_layer("Bidirectional", cfg, wf + wb, [x])
    f, fh, fc = run_layer("LSTM", inner, wf, [x])
    b, bh, bc = run_layer("LSTM", inner, wb, [x[:, ::-1]])
    b = b[:, ::-1]
    expect = {"concat": [np.concatenate([f, b], -1)], "sum": [f + b], "mul": [f * b],
              "ave": [(f + b) / 2], None: [f, b]}[merge_mode]
    for got, want in zip(out, expect + [fh, fc, bh, bc]):
        np.testing.assert_allclose(got, want, atol=1e-12)
    assert len(out) == len(expect) + 4


def test_bidirectional_masked_sequences_zero_padded_steps():
    wf, wb, x = _rnn_weights("GRU", 3, 2), _rnn_weights("GRU", 3, 2), rng.normal(size=(1, 4, 3))
    cfg = {"layer": {"class_name": "GRU", "config": {"units": 2, "return_sequences": True}}}
    y = run_layer("Bidirectional", cfg, wf + wb, [x], np.array([[1, 1, 0, 0]], bool))
    np.testing.assert_array_equal(y[0, 2:], 0.0)
    alone = run_layer("Bidirectional", cfg, wf + wb, [x[:, :2]])
    np.testing.assert_allclose(y[:, :2], alone, atol=1e-12)


def test_batch_norm_switches():
    x = rng.normal(size=(3, 2, 5))
    (gamma, beta, mean), var = rng.normal(size=(3, 5)), rng.uniform(1, 2, 5)
    norm = (x - mean) / np.sqrt(var + 1e-3)
    for center, scale, w, want in [(True, True, [gamma, beta], norm * gamma + beta),
                                   (True, False, [beta], norm + beta),
                                   (False, True, [gamma], norm * gamma),
                                   (False, False, [], norm)]:
        cfg = {"axis": -1, "epsilon": 1e-3, "center": center, "scale": scale}
        np.testing.assert_allclose(run_layer("BatchNormalization", cfg, w + [mean, var], [x]), want)
    g1, cfg = rng.normal(size=2), {"axis": [1], "center": False}  # Keras 2 writes axis as a list
    np.testing.assert_allclose(run_layer("BatchNormalization", cfg, [g1, mean[:2], var[:2]], [x]),
                               (x - mean[:2, None]) / np.sqrt(var[:2, None] + 1e-3) * g1[:, None])


def test_layer_norm():
    x = rng.normal(size=(3, 4, 5))
    gamma, beta = rng.normal(size=5), rng.normal(size=5)
    norm = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(run_layer("LayerNormalization", {"axis": -1}, [gamma, beta], [x]),
                               norm * gamma + beta)
    gamma2 = rng.normal(size=(4, 5))
    norm2 = (x - x.mean((1, 2), keepdims=True)) / np.sqrt(x.var((1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(
        run_layer("LayerNormalization", {"axis": [1, 2], "epsilon": 1e-5, "center": False}, [gamma2], [x]),
        norm2 * gamma2)


def test_shape_layers_embedding_masking_merge():
    x = rng.normal(size=(2, 3, 4))
    assert run_layer("Flatten", {}, [], [x]).shape == (2, 12)
    np.testing.assert_array_equal(run_layer("Reshape", {"target_shape": [4, -1]}, [], [x]),
                                  x.reshape(2, 4, 3))
    np.testing.assert_array_equal(run_layer("Permute", {"dims": [2, 1]}, [], [x]), x.transpose(0, 2, 1))
    v = x[:, 0]
    np.testing.assert_array_equal(run_layer("RepeatVector", {"n": 3}, [], [v]), np.stack([v] * 3, 1))
    np.testing.assert_array_equal(run_layer("TimeDistributed", {"layer": {"class_name": "Dense", "config": {
        "units": 2, "activation": "relu"}}}, [np.eye(4)[:, :2], np.zeros(2)], [x]), np.maximum(x[..., :2], 0))
    emb, ids = rng.normal(size=(5, 2)), np.array([[3, 1, 0], [0, 0, 4]])
    np.testing.assert_array_equal(run_layer("Embedding", {"mask_zero": True}, [emb], [ids]), emb[ids])
    np.testing.assert_array_equal(output_mask("Embedding", {"mask_zero": True}, [ids]), ids != 0)
    xm = x.copy()
    xm[0, 1] = 0.0
    xm[1, 2, 0] = 0.0  # only one feature zero: not masked
    np.testing.assert_array_equal(output_mask("Masking", {"mask_value": 0.0}, [xm]), [[1, 0, 1], [1, 1, 1]])
    np.testing.assert_array_equal(run_layer("Masking", {"mask_value": 0.0}, [], [xm]), xm)
    a, b, c = x, x[::-1], x * 2
    for cls, want in [("Add", a + b + c), ("Subtract", a - b), ("Multiply", a * b * c),
                      ("Average", (a + b + c) / 3), ("Maximum", np.maximum(np.maximum(a, b), c)),
                      ("Minimum", np.minimum(np.minimum(a, b), c))]:
        ins = [a, b] if cls == "Subtract" else [a, b, c]
        np.testing.assert_allclose(run_layer(cls, {}, [], ins), want)
    np.testing.assert_array_equal(run_layer("Concatenate", {"axis": 1}, [], [a, b]),
                                  np.concatenate([a, b], 1))
    for cls in ("Dropout", "ActivityRegularization"):
        np.testing.assert_array_equal(run_layer(cls, {"rate": 0.5}, [], [x]), x)


def test_activations():
    x = np.array([-4.0, -2.5, -1.0, 0.0, 1.0, 2.5, 4.0])
    np.testing.assert_allclose(activation("hard_sigmoid", x, keras_version=2), [0, 0, 0.3, 0.5, 0.7, 1, 1])
    np.testing.assert_allclose(activation("hard_sigmoid", x), np.clip(x + 3, 0, 6) / 6)  # Keras 3
    np.testing.assert_allclose(activation("sigmoid", x), 1 / (1 + np.exp(-x)), atol=1e-15)
    np.testing.assert_allclose(activation("swish", x), x / (1 + np.exp(-x)), atol=1e-15)
    np.testing.assert_allclose(activation("leaky_relu", x), np.where(x > 0, x, 0.2 * x))
    np.testing.assert_allclose(activation("leaky_relu", x, alpha=0.1), np.where(x > 0, x, 0.1 * x))
    np.testing.assert_allclose(activation("relu6", x * 2), np.clip(2 * x, 0, 6))
    np.testing.assert_allclose(activation("elu", x), np.where(x > 0, x, np.exp(x) - 1))
    scale, alpha = 1.0507009873554805, 1.6732632423543772
    np.testing.assert_allclose(activation("selu", [1.0, -1.0]), [scale, scale * alpha * (math.exp(-1) - 1)])
    np.testing.assert_allclose(activation("gelu", [1.0]), [0.8413447460685429])
    np.testing.assert_allclose(activation("gelu", [1.0], approximate=True), [0.8411919906082768])
    np.testing.assert_allclose(activation("softplus", x), np.log1p(np.exp(x)))
    np.testing.assert_allclose(activation("softsign", x), x / (1 + abs(x)))
    s = activation("softmax", np.stack([x, -x]), axis=0)
    np.testing.assert_allclose(s.sum(0), 1.0)
    relu_cfg = {"max_value": 6.0, "negative_slope": 0.1, "threshold": 1.0}
    np.testing.assert_allclose(run_layer("ReLU", relu_cfg, [], [x]),
                               [-0.5, -0.35, -0.2, -0.1, 0.0, 2.5, 4.0])
