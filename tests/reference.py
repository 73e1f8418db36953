"""Float64 numpy reference of Keras layer semantics at inference time. Tests only.

    run_layer(class_name, config, weights, inputs, mask=None, keras_version=3)

`config` is the layer's Keras `get_config()` dict (Keras 2 or Keras 3 spelling), `weights` are in
`layer.get_weights()` order, `inputs` is a list of batch-first, channels-last arrays. Returns an
array, or a list of arrays for layers with several outputs (RNN `return_state`, Bidirectional with
merge_mode None). `output_mask(...)` gives the Keras mask a layer passes on.

The one activation whose definition depends on the Keras major version is `hard_sigmoid`
(and `hard_silu`/`hard_swish`, built on it): Keras 2 is clip(0.2*x + 0.5, 0, 1), Keras 3 is
relu6(x + 3) / 6 = clip(x/6 + 0.5, 0, 1). Select it with `keras_version` (default 3).
"""
import functools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# --------------------------------------------------------------------------------------------
# activations


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow


def _hard_sigmoid(x, keras_version=3):
    return np.clip(x / 6.0 + 0.5 if keras_version >= 3 else 0.2 * x + 0.5, 0.0, 1.0)


def _relu(x, negative_slope=0.0, max_value=None, threshold=0.0, alpha=None):
    """Keras relu: x above threshold (clipped at max_value), negative_slope*(x-threshold) below."""
    slope = negative_slope if alpha is None else alpha
    y = np.where(x > threshold, x, 0.0)
    if max_value is not None:
        y = np.clip(y, 0.0, max_value)
    return y - slope * np.maximum(threshold - x, 0.0)


def _leaky_relu(x, negative_slope=0.2, alpha=None):
    return np.where(x >= 0, x, (negative_slope if alpha is None else alpha) * x)


def _elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def _gelu(x, approximate=False):
    if approximate:
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def _softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": _relu,
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "selu": lambda x: _SELU_SCALE * _elu(x, _SELU_ALPHA),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "hard_sigmoid": _hard_sigmoid,
    "hard_silu": lambda x, keras_version=3: x * _hard_sigmoid(x, keras_version),
    "exponential": np.exp,
    "swish": lambda x: x * _sigmoid(x),
    "silu": lambda x: x * _sigmoid(x),
    "mish": lambda x: x * np.tanh(np.logaddexp(0.0, x)),
    "gelu": _gelu,
    "softmax": _softmax,
    "log_softmax": lambda x, axis=-1: np.log(_softmax(x, axis)),
    "celu": lambda x, alpha=1.0: np.maximum(x, 0.0) + alpha * np.expm1(np.minimum(x, 0.0) / alpha),
    "hard_tanh": lambda x: np.clip(x, -1.0, 1.0),
    "log_sigmoid": lambda x: -np.logaddexp(0.0, -x),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "hard_shrink": lambda x, threshold=0.5: np.where(np.abs(x) > threshold, x, 0.0),
    "soft_shrink": lambda x, threshold=0.5: np.where(x > threshold, x - threshold,
                                                     np.where(x < -threshold, x + threshold, 0.0)),
    "squareplus": lambda x, b=4.0: (x + np.sqrt(x * x + b)) / 2.0,
    "sparse_plus": lambda x: np.where(x <= -1.0, 0.0, np.where(x >= 1.0, x, (x + 1.0) ** 2 / 4.0)),
}
ACTIVATIONS["hard_swish"] = ACTIVATIONS["hard_silu"]
_VERSIONED = {"hard_sigmoid", "hard_silu", "hard_swish"}


def activation(name, x, keras_version=3, **kwargs):
    """Keras activation `name` on x. `keras_version` only matters for hard_sigmoid/hard_silu."""
    if name in _VERSIONED:
        kwargs["keras_version"] = keras_version
    return ACTIVATIONS[name](np.asarray(x, np.float64), **kwargs)


# --------------------------------------------------------------------------------------------
# helpers


def _tuple(v, n):
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


def _axes(axis, ndim):
    return sorted(a % ndim for a in _tuple(axis, 1))


def _along(v, axes, shape):
    """Broadcast a parameter that lives on `axes` of an array of `shape`."""
    if np.ndim(v) == 0:
        return v
    return np.reshape(v, [shape[a] if a in axes else 1 for a in range(len(shape))])


def _act(c, y, kv, key="activation", default="linear"):
    return activation(c.get(key) or default, y, kv)


def _same_pads(size, k, s, d):
    """TF 'same': out = ceil(size/s); the odd padded cell goes after (pad_before = total // 2)."""
    total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _pad(x, kernel, strides, dilation, padding, value=0.0):
    if padding == "valid":
        return x
    if padding == "causal":
        pads = [((k - 1) * d, 0) for k, d in zip(kernel, dilation)]
    else:
        pads = [_same_pads(*a) for a in zip(x.shape[1:-1], kernel, strides, dilation)]
    return np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=value)


def _windows(x, kernel, strides, dilation):
    """(B, *spatial, C) -> (B, *out, C, *kernel): strided, dilated sliding windows."""
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    v = sliding_window_view(x, eff, axis=tuple(range(1, len(kernel) + 1)))
    return v[(slice(None), *(slice(None, None, s) for s in strides), slice(None),
              *(slice(None, None, d) for d in dilation))]


# --------------------------------------------------------------------------------------------
# core layers


def _dense(c, w, x, mask, kv):
    return _act(c, x @ w[0] + (w[1] if len(w) > 1 else 0.0), kv)


def _activation(c, w, x, mask, kv):
    return _act(c, x, kv)


def _relu_layer(c, w, x, mask, kv):
    return _relu(x, c.get("negative_slope", 0.0), c.get("max_value"), c.get("threshold", 0.0))


def _leaky_relu_layer(c, w, x, mask, kv):  # layer default slope is 0.3 (activation's is 0.2)
    return _leaky_relu(x, c.get("negative_slope", c.get("alpha", 0.3)))


def _softmax_layer(c, w, x, mask, kv):
    return _softmax(x, tuple(_tuple(c.get("axis", -1), 1)))


def _identity(c, w, x, mask, kv):
    return x


def _flatten(c, w, x, mask, kv):
    return x.reshape(len(x), -1)


def _reshape(c, w, x, mask, kv):
    return x.reshape(len(x), *c["target_shape"])


def _permute(c, w, x, mask, kv):
    return np.transpose(x, (0, *c["dims"]))


def _repeat_vector(c, w, x, mask, kv):
    return np.repeat(x[:, None], c["n"], axis=1)


def _masking(c, w, x, mask, kv):
    return x * _masking_mask(c, x)


def _masking_mask(c, x):
    return np.any(x != c.get("mask_value", 0.0), axis=-1, keepdims=True)


def _embedding(c, w, x, mask, kv):
    return w[0][np.asarray(x).astype(np.int64)]


# --------------------------------------------------------------------------------------------
# convolution and pooling (N-d, channels_last; 1D is 2D with one spatial axis fewer)


def _conv(c, w, x, mask, kv):
    n = x.ndim - 2
    k, s, d = (_tuple(c.get(key, 1), n) for key in ("kernel_size", "strides", "dilation_rate"))
    g, (cin, f) = c.get("groups", 1), w[0].shape[-2:]
    win = np.moveaxis(_windows(_pad(x, k, s, d, c["padding"]), k, s, d), n + 1, -1)
    out = win.shape[: n + 1]  # (B, *out_spatial)
    y = np.einsum("...kgc,kcgf->...gf", win.reshape(*out, -1, g, cin),
                  w[0].reshape(-1, cin, g, f // g)).reshape(*out, f)
    return _act(c, y + (w[1] if len(w) > 1 else 0.0), kv)


def _conv_transpose(c, w, x, mask, kv):
    """Every input cell adds its kernel-weighted values at stride spacing (the full transposed conv);
    Keras keeps the window TF's 'same'/'valid' conv of the output size would read."""
    n = x.ndim - 2
    k, s, d = (_tuple(c.get(key, 1), n) for key in ("kernel_size", "strides", "dilation_rate"))
    op = _tuple(c["output_padding"], n) if c.get("output_padding") is not None else (None,) * n
    eff = [(ki - 1) * di + 1 for ki, di in zip(k, d)]
    sizes, before = [], []
    for size, e, st, o in zip(x.shape[1:-1], eff, s, op):
        if o is None:
            out = size * st + max(e - st, 0) if c["padding"] == "valid" else size * st
        else:
            out = (size - 1) * st + e - 2 * (e // 2 if c["padding"] == "same" else 0) + o
        sizes.append(out)
        before.append(_same_pads(out, e, st, 1)[0] if c["padding"] == "same" else 0)
    full = np.zeros((x.shape[0], *[max((size - 1) * st + e, b + out) for size, st, e, b, out in
                                   zip(x.shape[1:-1], s, eff, before, sizes)], w[0].shape[-2]))
    for offset in np.ndindex(*k):  # kernel (*k, F, C)
        contribution = x @ w[0][offset].T
        where = tuple(slice(o * di, o * di + (size - 1) * st + 1, st)
                      for o, di, size, st in zip(offset, d, x.shape[1:-1], s))
        full[(slice(None), *where)] += contribution
    y = full[(slice(None), *(slice(b, b + out) for b, out in zip(before, sizes)))]
    return _act(c, y + (w[1] if len(w) > 1 else 0.0), kv)


def _depthwise_conv(c, w, x, mask, kv):
    """A grouped conv with one group per channel: kernel (*k, C, m) is (*k, 1, C * m)."""
    k = w[0]
    return _conv({**c, "groups": x.shape[-1]}, [k.reshape(*k.shape[:-2], 1, -1), *w[1:]], x, mask, kv)


def _separable_conv(c, w, x, mask, kv):
    y = _depthwise_conv({**c, "activation": "linear"}, w[:1], x, mask, kv)
    return _conv({"padding": "valid", "activation": c.get("activation")}, w[1:], y, mask, kv)


def _margins(v, n):
    """Keras's padding/cropping argument as (before, after) per spatial axis: an int, (before, after)
    in 1-D, one int per axis, or one pair per axis."""
    if isinstance(v, int):
        return [(v, v)] * n
    if n == 1:
        return [tuple(v[0]) if isinstance(v[0], (list, tuple)) else tuple(v)]
    return [tuple(p) if isinstance(p, (list, tuple)) else (p, p) for p in v]


def _zero_padding(c, w, x, mask, kv):
    return np.pad(x, [(0, 0), *_margins(c.get("padding", 1), x.ndim - 2), (0, 0)])


def _cropping(c, w, x, mask, kv):
    n = x.ndim - 2
    cuts = _margins(c.get("cropping", 1 if n == 1 else 0), n)
    return x[(slice(None), *(slice(b, x.shape[1 + i] - a) for i, (b, a) in enumerate(cuts)))]


def _resize_axis(x, axis, size, method):
    """TF 2's tf.image.resize along one axis (half-pixel centres, no antialiasing)."""
    n = x.shape[axis]
    scale = n / size
    centres = (np.arange(size) + 0.5) * scale
    if method == "nearest":
        return np.take(x, np.minimum(np.floor(centres).astype(int), n - 1), axis=axis)
    src = centres - 0.5
    low = np.floor(src).astype(int)
    frac = _along(src - low, [axis], [size if a == axis else 1 for a in range(x.ndim)])
    lo, hi = np.take(x, np.clip(low, 0, n - 1), axis=axis), np.take(x, np.clip(low + 1, 0, n - 1), axis=axis)
    return lo + (hi - lo) * frac


def _upsampling(c, w, x, mask, kv):
    n = x.ndim - 2
    size = _tuple(c.get("size", 2), n)
    if c.get("interpolation", "nearest") == "bilinear":
        return _resize_axis(_resize_axis(x, 1, x.shape[1] * size[0], "bilinear"), 2, x.shape[2] * size[1], "bilinear")
    for axis, s in enumerate(size, start=1):
        x = np.repeat(x, s, axis=axis)
    return x


def _aspect_crop(x, height, width):
    h, w = x.shape[1:3]
    ch = max(min(h, int(float(w * height) / width)), 1)
    cw = max(min(w, int(float(h * width) / height)), 1)
    top, left = int(float(h - ch) / 2), int(float(w - cw) / 2)
    return x[:, top:top + ch, left:left + cw]


def _resizing(c, w, x, mask, kv):
    if c.get("crop_to_aspect_ratio"):
        x = _aspect_crop(x, c["height"], c["width"])
    method = c.get("interpolation", "bilinear")
    return _resize_axis(_resize_axis(x, 1, c["height"], method), 2, c["width"], method)


def _center_crop(c, w, x, mask, kv):
    h, w_ = x.shape[1:3]
    if h >= c["height"] and w_ >= c["width"]:
        top, left = (h - c["height"]) // 2, (w_ - c["width"]) // 2
        return x[:, top:top + c["height"], left:left + c["width"]]
    return _resizing({**c, "crop_to_aspect_ratio": True}, w, x, mask, kv)


def _pool(reduce):
    def pool(c, w, x, mask, kv):
        n = x.ndim - 2
        k = _tuple(c["pool_size"], n)
        s, one = _tuple(c.get("strides") or k, n), (1,) * n
        # NaN padding: padded cells take no part in max or in the average's count (as in TF)
        win = _windows(_pad(x, k, s, one, c.get("padding", "valid"), np.nan), k, s, one)
        return reduce(win, axis=tuple(range(-n, 0)))
    return pool


def _global_pool(reduce):
    def pool(c, w, x, mask, kv):
        axes, keep = tuple(range(1, x.ndim - 1)), c.get("keepdims", False)
        if reduce is np.mean and mask is not None:  # GlobalAveragePooling1D averages unmasked steps
            m = mask.astype(np.float64)[..., None]
            return np.sum(x * m, axes, keepdims=keep) / np.sum(m, axes, keepdims=keep)
        return reduce(x, axis=axes, keepdims=keep)
    return pool


# --------------------------------------------------------------------------------------------
# normalization


def _batch_norm(c, w, x, mask, kv):
    axes, w = _axes(c.get("axis", -1), x.ndim), list(w)
    gamma = w.pop(0) if c.get("scale", True) else 1.0
    beta = w.pop(0) if c.get("center", True) else 0.0
    mean, var = (_along(v, axes, x.shape) for v in w)
    return ((x - mean) / np.sqrt(var + c.get("epsilon", 1e-3)) * _along(gamma, axes, x.shape)
            + _along(beta, axes, x.shape))


def _layer_norm(c, w, x, mask, kv):
    if c.get("rms_scaling"):
        raise NotImplementedError("LayerNormalization(rms_scaling=True)")
    axes, w = _axes(c.get("axis", -1), x.ndim), list(w)
    gamma = w.pop(0) if c.get("scale", True) else 1.0
    beta = w.pop(0) if c.get("center", True) else 0.0
    mean = x.mean(tuple(axes), keepdims=True)
    var = ((x - mean) ** 2).mean(tuple(axes), keepdims=True)
    return ((x - mean) / np.sqrt(var + c.get("epsilon", 1e-3)) * _along(gamma, axes, x.shape)
            + _along(beta, axes, x.shape))


def _group_norm(c, w, x, mask, kv):
    groups, w = c.get("groups", 32), list(w)
    gamma = w.pop(0) if c.get("scale", True) else 1.0
    beta = w.pop(0) if c.get("center", True) else 0.0
    g = x.reshape(*x.shape[:-1], groups, x.shape[-1] // groups)
    axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)
    mean = g.mean(axes, keepdims=True)
    var = ((g - mean) ** 2).mean(axes, keepdims=True)
    return ((g - mean) / np.sqrt(var + c.get("epsilon", 1e-3))).reshape(x.shape) * gamma + beta


def _normalization(c, w, x, mask, kv):
    axis = c.get("axis", -1)
    axis = (axis[0] if isinstance(axis, (list, tuple)) else axis) % x.ndim
    mean, var = (w[0], w[1]) if w else (np.asarray(c["mean"], np.float64), np.asarray(c["variance"], np.float64))
    shape = [1] * x.ndim
    shape[axis] = -1
    mean, var = np.reshape(mean, shape) if np.size(mean) > 1 else mean, np.reshape(var, shape) if np.size(var) > 1 else var
    std = np.maximum(np.sqrt(var), 1e-7)
    return mean + x * std if c.get("invert") else (x - mean) / std


def _unit_norm(c, w, x, mask, kv):
    axis = c.get("axis", -1)
    axes = tuple(a % x.ndim for a in (axis if isinstance(axis, (list, tuple)) else [axis]))
    return x / np.sqrt(np.maximum((x * x).sum(axes, keepdims=True), 1e-12))


def _rescaling(c, w, x, mask, kv):
    return x * np.asarray(c["scale"], np.float64) + np.asarray(c.get("offset", 0.0), np.float64)


def _dot(c, w, xs, mask, kv):
    """Keras's batch_dot, one sample at a time with np.tensordot."""
    x, y = xs
    axes = c["axes"] if isinstance(c["axes"], (list, tuple)) else [c["axes"]] * 2
    ax, ay = axes[0] % x.ndim, axes[1] % y.ndim
    if c.get("normalize"):
        x = x / np.sqrt(np.maximum((x * x).sum(ax, keepdims=True), 1e-12))
        y = y / np.sqrt(np.maximum((y * y).sum(ay, keepdims=True), 1e-12))
    out = np.stack([np.tensordot(a, b, axes=(ax - 1, ay - 1)) for a, b in zip(x, y)])
    return out.reshape(len(x), 1) if out.ndim == 1 else out



# --------------------------------------------------------------------------------------------
# attention (masks: [query's, value's, key's] Keras masks)


def _allowed(tq, tk, c, masks, mask_input=None, query_too=False):
    """Which keys each query may attend to, (B or 1, Tq, Tk)."""
    allowed = np.ones((1, tq, tk), bool)
    masks = list(masks or []) + [None] * 3
    if query_too and masks[0] is not None:
        allowed = allowed & masks[0][:, :, None]
    for m in masks[1:3] if query_too else masks[1:2]:  # Attention reads the value's mask only
        if m is not None:
            allowed = allowed & m[:, None, :]
    if c.get("use_causal_mask"):
        allowed = allowed & (np.arange(tq)[:, None] >= np.arange(tk)[None, :])
    if mask_input is not None:
        allowed = allowed & (mask_input != 0)
    return allowed


def _attention(c, w, xs, mask, kv):
    q, v = xs[0], xs[1]
    k = xs[2] if len(xs) > 2 else v
    weights = list(w)
    scale = weights.pop(0) if c.get("use_scale") else None
    if c.get("score_mode", "dot") == "dot":
        scores = np.einsum("bqd,bkd->bqk", q, k) * (1.0 if scale is None else scale)
    else:
        pairs = q[:, :, None, :] + k[:, None, :, :]
        scores = weights.pop(0) * np.tanh(pairs * (1.0 if scale is None else scale)).sum(-1)
    return _attend(c, scores, v, mask)


def _additive_attention(c, w, xs, mask, kv):
    q, v = xs[0], xs[1]
    k = xs[2] if len(xs) > 2 else v
    scale = w[0] if c.get("use_scale", True) else 1.0
    return _attend(c, (scale * np.tanh(q[:, :, None, :] + k[:, None, :, :])).sum(-1), v, mask)


def _attend(c, scores, v, mask):
    """Attention and AdditiveAttention from their scores: masked keys get scores - 1e9, masked
    queries zero outputs."""
    probs = _softmax(scores - 1e9 * ~_allowed(*scores.shape[1:], c, mask))
    out = probs @ v
    if mask and mask[0] is not None:
        out = out * mask[0][:, :, None]
    return [out, probs] if c.get("return_attention_scores") else out


def _multi_head_attention(c, w, xs, mask, kv):
    """Keras's einsum form; a query with no key left gets uniform weights or (empty_rows zero) none."""
    q, v = xs[0], xs[1]
    k = xs[2] if len(xs) > 2 else v
    weights = list(w)

    def project(x):
        return np.einsum("btf,fhd->bthd", x, weights.pop(0)) + (weights.pop(0) if c.get("use_bias", True) else 0)

    pq, pk, pv = project(q), project(k), project(v)
    pq = pq / math.sqrt(c["key_dim"])
    scores = np.einsum("bshd,bthd->bhts", pk, pq)
    allowed = _allowed(q.shape[1], k.shape[1], c, mask, xs[3] if len(xs) > 3 else None, query_too=True)[:, None]
    probs = np.where(allowed, _softmax(np.where(allowed, scores, -1e9)), 0.0)
    if c.get("empty_rows", "mean") == "mean":  # float32 Keras: scores - 1e9 all round to -1e9
        probs = np.where(allowed.any(-1, keepdims=True), probs, 1.0 / k.shape[1])
    attended = np.einsum("bhts,bshd->bthd", probs, pv)
    out = np.einsum("bthd,hdo->bto", attended, weights.pop(0)) + (weights.pop(0) if c.get("use_bias", True) else 0)
    return [out, probs] if c.get("return_attention_scores") else out


# --------------------------------------------------------------------------------------------
# recurrent layers


def _rnn(c, x, step, states, mask):
    """Keras RNN loop. Masked steps keep the states; their output is the previous step's output
    (zeros before the first unmasked step), or zeros when zero_output_for_mask (set by
    Bidirectional when returning sequences). go_backwards yields outputs in processing order."""
    steps = range(x.shape[1])[::-1] if c.get("go_backwards") else range(x.shape[1])
    prev, outs = np.zeros_like(states[0]), []
    for t in steps:
        y, new = step(x[:, t], states)
        if mask is not None:
            m = np.asarray(mask[:, t, None], bool)
            new = [np.where(m, a, b) for a, b in zip(new, states)]
            y = np.where(m, y, 0.0 if c.get("zero_output_for_mask") else prev)
        states, prev = new, y
        outs.append(y)
    y = np.stack(outs, 1) if c.get("return_sequences") else prev
    return [y, *states] if c.get("return_state") else y


def _rnn_layer(n_states, cell):
    """Recurrent layer from cell(c, w, kv) -> step(x_t, states) -> (output, states).
    Extra inputs after the sequence are the initial states (zeros otherwise)."""
    def layer(c, w, x, mask, kv):
        x, *init = x if isinstance(x, list) else [x]
        mask = mask[0] if isinstance(mask, list) else mask  # the sequence's; states have none
        units = w[1].shape[0]
        states = init or [np.zeros((len(x), units))] * n_states
        return _rnn(c, x, cell(c, w, kv), list(states), mask)
    return layer


def _simple_rnn_cell(c, w, kv):
    W, U, b = w[0], w[1], (w[2] if len(w) > 2 else 0.0)

    def step(xt, st):
        h = _act(c, xt @ W + b + st[0] @ U, kv, default="tanh")
        return h, [h]
    return step


def _gru_cell(c, w, kv):
    """Columns of kernel/recurrent_kernel/bias are [z | r | h]. reset_after=True (the Keras 2/3
    default): bias is (2, 3u) = [input bias; recurrent bias], candidate = act(x Wh + bh_in +
    r * (h Uh + bh_rec)). reset_after=False: bias (3u,), candidate = act(x Wh + bh + (r*h) Uh)."""
    W, U = w[0], w[1]
    u, reset_after = U.shape[0], c.get("reset_after", True)
    b = np.reshape(w[2], (-1, 3 * u)) if len(w) > 2 else np.zeros((1, 3 * u))
    b_in, b_rec = b[0], (b[1] if len(b) > 1 else 0.0)

    def step(xt, st):
        h = st[0]
        xz, xr, xh = np.split(xt @ W + b_in, 3, -1)
        hz, hr, hh = np.split(h @ U + b_rec if reset_after else h @ U, 3, -1)
        z = _act(c, xz + hz, kv, "recurrent_activation", "sigmoid")
        r = _act(c, xr + hr, kv, "recurrent_activation", "sigmoid")
        cand = xh + (r * hh if reset_after else (r * h) @ U[:, 2 * u:])
        h = z * h + (1.0 - z) * _act(c, cand, kv, default="tanh")
        return h, [h]
    return step


def _lstm_cell(c, w, kv):
    """Gate order in kernel/recurrent_kernel/bias columns: [i | f | c | o]; states [h, c]."""
    W, U, b = w[0], w[1], (w[2] if len(w) > 2 else 0.0)

    def step(xt, st):
        i, f, g, o = np.split(xt @ W + st[0] @ U + b, 4, -1)
        rec = functools.partial(_act, c, kv=kv, key="recurrent_activation", default="sigmoid")
        cell = rec(f) * st[1] + rec(i) * _act(c, g, kv, default="tanh")
        h = rec(o) * _act(c, cell, kv, default="tanh")
        return h, [h, cell]
    return step


_MERGE_MODES = {
    "concat": lambda a, b: np.concatenate([a, b], -1),
    "sum": np.add,
    "mul": np.multiply,
    "ave": lambda a, b: (a + b) / 2.0,
    None: lambda a, b: [a, b],
}


def _bidirectional(c, w, x, mask, kv):
    """Weights: forward layer's, then backward layer's. The backward layer is the forward config
    with go_backwards flipped (unless `backward_layer` is given); its sequence output is reversed
    back to input order before merging. Returned states: forward's then backward's."""
    fwd = c["layer"]
    bwd = c.get("backward_layer") or {
        "class_name": fwd["class_name"],
        "config": {**fwd["config"], "go_backwards": not fwd["config"].get("go_backwards", False)}}
    seq, half = fwd["config"].get("return_sequences", False), len(w) // 2
    x, *init = x if isinstance(x, list) else [x]  # initial states: forward's, then backward's
    mask = mask[0] if isinstance(mask, list) else mask
    yf, yb = (run_layer(l["class_name"], {**l["config"], "zero_output_for_mask": seq}, ws, [x, *states],
                        mask, kv) for l, ws, states in ((fwd, w[:half], init[:len(init) // 2]),
                                                        (bwd, w[half:], init[len(init) // 2:])))
    states = []
    if fwd["config"].get("return_state"):
        (yf, *sf), (yb, *sb) = yf, yb
        states = sf + sb
    if seq:
        yb = yb[:, ::-1]
    y = _MERGE_MODES[c.get("merge_mode", "concat")](yf, yb)
    return (y if isinstance(y, list) else [y]) + states if states else y


def _time_distributed(c, w, x, mask, kv):
    inner = c["layer"]
    y = run_layer(inner["class_name"], inner["config"], w, [x.reshape(-1, *x.shape[2:])],
                  keras_version=kv)
    return y.reshape(*x.shape[:2], *y.shape[1:])


# --------------------------------------------------------------------------------------------
# merge layers (inputs as a list; numpy broadcasting)


def _merge(op):
    return lambda c, w, xs, mask, kv: functools.reduce(op, xs)


def _average(c, w, xs, mask, kv):
    return functools.reduce(np.add, xs) / len(xs)


def _concatenate(c, w, xs, mask, kv):
    return np.concatenate(xs, axis=c.get("axis", -1))


# --------------------------------------------------------------------------------------------

MERGE_LAYERS = {
    "Dot": _dot,
    "Attention": _attention,
    "AdditiveAttention": _additive_attention,
    "MultiHeadAttention": _multi_head_attention,
    "Add": _merge(np.add),
    "Subtract": _merge(np.subtract),
    "Multiply": _merge(np.multiply),
    "Average": _average,
    "Maximum": _merge(np.maximum),
    "Minimum": _merge(np.minimum),
    "Concatenate": _concatenate,
}

RECURRENT_LAYERS = {
    "SimpleRNN": _rnn_layer(1, _simple_rnn_cell),
    "GRU": _rnn_layer(1, _gru_cell),
    "LSTM": _rnn_layer(2, _lstm_cell),
}

LAYERS = {
    "Dense": _dense,
    "Activation": _activation,
    "ReLU": _relu_layer,
    "LeakyReLU": _leaky_relu_layer,
    "Softmax": _softmax_layer,
    **{name: _identity for name in (
        "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
        "GaussianDropout", "AlphaDropout", "ActivityRegularization", "StochasticDepth")},
    "Rescaling": _rescaling,
    "UnitNormalization": _unit_norm,
    "Normalization": _normalization,
    "NotEqual": lambda c, w, x, mask, kv: x != c.get("value", 0.0),
    "Cast": lambda c, w, x, mask, kv: x.astype(c["dtype"]),
    "LayerScale": lambda c, w, x, mask, kv: x * w[0],
    "GroupNormalization": _group_norm,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Permute": _permute,
    "RepeatVector": _repeat_vector,
    "Masking": _masking,
    "Embedding": _embedding,
    "Conv1D": _conv,
    "Conv2D": _conv,
    "Conv3D": _conv,
    **{f"Conv{n}DTranspose": _conv_transpose for n in (1, 2, 3)},
    **{f"DepthwiseConv{n}D": _depthwise_conv for n in (1, 2)},
    **{f"SeparableConv{n}D": _separable_conv for n in (1, 2)},
    **{f"ZeroPadding{n}D": _zero_padding for n in (1, 2, 3)},
    **{f"Cropping{n}D": _cropping for n in (1, 2, 3)},
    **{f"UpSampling{n}D": _upsampling for n in (1, 2, 3)},
    "Resizing": _resizing,
    "CenterCrop": _center_crop,
    **{f"MaxPooling{n}D": _pool(np.nanmax) for n in (1, 2, 3)},
    **{f"AveragePooling{n}D": _pool(np.nanmean) for n in (1, 2, 3)},
    **{f"GlobalMaxPooling{n}D": _global_pool(np.max) for n in (1, 2, 3)},
    **{f"GlobalAveragePooling{n}D": _global_pool(np.mean) for n in (1, 2, 3)},
    "BatchNormalization": _batch_norm,
    "LayerNormalization": _layer_norm,
    **RECURRENT_LAYERS,
    "Bidirectional": _bidirectional,
    "TimeDistributed": _time_distributed,
    **MERGE_LAYERS,
}


def _as_array(x):
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.integer) else x.astype(np.float64)


def run_layer(class_name, config, weights, inputs, mask=None, keras_version=3):
    """Run one Keras layer. `mask`: the Keras mask of the (first) input, shape (B, T), for
    recurrent layers and GlobalAveragePooling1D (a list of masks for merge layers; unused)."""
    config = config or {}
    if config.get("data_format", "channels_last") != "channels_last":
        raise NotImplementedError(f"{class_name}: data_format {config['data_format']}")
    weights = [np.asarray(v, np.float64) for v in weights]
    xs = [_as_array(x) for x in inputs]
    x = xs if class_name in MERGE_LAYERS or len(xs) > 1 else xs[0]
    return LAYERS[class_name](config, weights, x, mask, keras_version)


_MASK_KEEPERS = {"Dense", "Activation", "ReLU", "LeakyReLU", "Softmax", "Dropout",
                 "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
                 "BatchNormalization", "LayerNormalization", "TimeDistributed"}


def output_mask(class_name, config, inputs, mask=None):
    """The Keras mask the layer's output carries (None if none); `mask` as for run_layer."""
    if class_name == "Embedding":
        return np.asarray(inputs[0]) != 0 if config.get("mask_zero") else None
    if class_name == "Masking":
        return _masking_mask(config, _as_array(inputs[0]))[..., 0]
    if class_name in RECURRENT_LAYERS or class_name == "Bidirectional":
        seq = (config["layer"]["config"] if class_name == "Bidirectional" else config).get(
            "return_sequences", False)
        return mask if seq else None
    if class_name in ("Attention", "AdditiveAttention", "MultiHeadAttention"):  # the query's
        return (mask or [None])[0]
    if class_name in MERGE_LAYERS:  # logical AND of the inputs' masks
        masks = [m for m in (mask or []) if m is not None]
        return functools.reduce(np.logical_and, masks) if masks else None
    return mask if class_name in _MASK_KEEPERS else None
