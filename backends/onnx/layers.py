"""Each IR layer type expands into primitives, in one table; a layer may also register a fused
inference lowering (one Gemm, one BatchNormalization, an ONNX LSTM) that gives the same numbers
and returns None where it does not apply, falling back to the primitive expansion.

Tensors are Keras's: batch first, channels last. Layers on channels-first ONNX ops (conv,
pooling) transpose in and out; the transposes between two such layers cancel as they are traced.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable, Protocol

import numpy as np

from ...errors import SpecError
from ...ir import windows
from ...ir.base import TensorType, Weight
from ...ir.expr import BinOp, Func, Neg, Num, Var as ExprVar, parse_expression
from ...ir.layers import Layer
from . import primitives as P
from .activations import activation
from .graph import Var
from .noise import Draw


@dataclass
class LayerCall:
    """A layer applied to traced tensors; `weights` follow `specs`, Keras get_weights() order."""

    layer: Layer
    inputs: list[Var]
    in_types: list[TensorType]
    out_types: list[TensorType]
    specs: list[Weight]
    weights: list[Var]
    masks: list[Var | None]  # the inputs' Keras masks: bool (batch, time)
    fused: bool
    train: "TrainContext | None" = None  # set when tracing a training step

    @property
    def x(self) -> Var:
        return self.inputs[0]

    @property
    def mask(self) -> Var | None:
        return self.masks[0]

    def w(self, name: str) -> Var | None:
        return next((v for s, v in zip(self.specs, self.weights) if s.name == name), None)

    def fail(self, message: str) -> SpecError:
        return SpecError(f"cannot compile layer '{self.layer.name}' ({self.layer.type}): {message}")


class TrainContext(Protocol):
    """What layers need from a training step: random draws, state updates, penalties."""

    def noise(self, layer: Layer, x: Var, draw: Draw) -> Var: ...

    def update(self, layer: Layer, weight: str, value: Var) -> None: ...

    def recurrent_state(self, key: str, index: int, units: int) -> Var: ...

    def carry_state(self, key: str, index: int, value: Var) -> None: ...

    def layer_outputs(self, layer: Layer, outputs: list[Var]) -> None: ...


Expansion = Callable[[LayerCall], "Var | list[Var] | None"]
LAYERS: dict[str, Expansion] = {}  # layer type -> expansion in primitives
FUSED: dict[str, Expansion] = {}  # layer type -> fused inference lowering (None: does not apply)
MASKS: dict[str, Callable[[LayerCall], Var | None]] = {}  # layer type -> the mask it creates


def expands(*types: str, table: dict = LAYERS) -> Callable:
    def register(fn):
        for t in types:
            table[t] = fn
        return fn
    return register


def expand(call: LayerCall) -> list[Var]:
    kind = call.layer.type
    out = FUSED[kind](call) if call.fused and kind in FUSED else None
    if out is None:
        out = LAYERS[kind](call)
    return out if isinstance(out, list) else [out]


def output_mask(call: LayerCall) -> Var | None:
    """Keras's mask on the layer's output: made here, passed on (AND of the inputs'), or none."""
    if call.layer.type in MASKS:
        return MASKS[call.layer.type](call)
    present = [m for m in call.masks if m is not None]
    if not call.out_types[0].masked or not present:
        return None
    return functools.reduce(P.logical_and, present)


def _axis(axis: int, rank: int) -> int:
    """A Keras axis (batch is 0) as a non-negative index."""
    return axis % rank


def _along(v: Var, axis: int, rank: int) -> Var:
    """Reshape a per-axis parameter (C,) to broadcast against a rank-`rank` tensor on `axis`."""
    return P.reshape(v, shape=(-1,) + (1,) * (rank - 1 - axis))


# ---- core -----------------------------------------------------------------------------------


@expands("Dense")
def _dense(c):
    y = c.x @ c.w("kernel")
    bias = c.w("bias")
    return activation(c.layer.activation, y if bias is None else y + bias)


@expands("Dense", table=FUSED)
def _dense_gemm(c):
    if c.x.rank != 2:
        return None
    return activation(c.layer.activation, P.gemm(c.x, c.w("kernel"), c.w("bias")))


@expands("Activation")
def _activation(c):
    return activation(c.layer.activation, c.x)


# Identities at inference; in training the dropouts multiply by a mask of 0 or 1 / (1 - rate).
@expands("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "StochasticDepth")
def _dropout(c):
    if c.train is None or c.layer.rate == 0:
        return c.x
    return c.x * c.train.noise(c.layer, c.x, Draw("bernoulli", rate=c.layer.rate, value=1.0 / (1.0 - c.layer.rate)))


@expands("ActivityRegularization")  # its penalty is the training step's (TrainContext.layer_outputs)
def _identity(c):
    return c.x


# Keras's noise layers, identities at inference, with Keras's formulas in training
@expands("GaussianNoise")
def _gaussian_noise(c):
    if c.train is None or c.layer.stddev == 0:
        return c.x
    return c.x + c.train.noise(c.layer, c.x, Draw("normal", stddev=c.layer.stddev))


@expands("GaussianDropout")
def _gaussian_dropout(c):
    rate = c.layer.rate
    if c.train is None or rate == 0:
        return c.x
    return c.x * c.train.noise(c.layer, c.x, Draw("normal", mean=1.0, stddev=float(np.sqrt(rate / (1.0 - rate)))))


SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


@expands("AlphaDropout")
def _alpha_dropout(c):
    """Keras: dropped units take SELU's saturation value alpha' = -alpha * scale, then a * x + b restores
    the mean and variance; a * (x * keep + alpha' * (1 - keep)) + b is (x - alpha') * (a * keep) + a * alpha' + b."""
    rate = c.layer.rate
    if c.train is None or rate == 0:
        return c.x
    saturation = -SELU_ALPHA * SELU_SCALE
    a = ((1.0 - rate) * (1.0 + rate * saturation ** 2)) ** -0.5
    b = -a * saturation * rate
    kept_times_a = c.train.noise(c.layer, c.x, Draw("bernoulli", rate=rate, value=a))
    return (c.x - saturation) * kept_times_a + (a * saturation + b)


@expands("NotEqual")
def _not_equal(c):
    return P.ne(c.x, c.x.graph.const(np.asarray(c.layer.value, c.in_types[0].dtype)))


@expands("Cast")
def _cast(c):
    return c.x if c.in_types[0].dtype == c.layer.dtype else P.cast(c.x, dtype=c.layer.dtype)


@expands("Flatten")
def _flatten(c):
    return P.reshape(c.x, shape=(0, c.out_types[0].shape[0]))


@expands("Reshape")
def _reshape(c):
    return P.reshape(c.x, shape=(0, *c.layer.target_shape))


@expands("Permute")
def _permute(c):
    return P.transpose(c.x, perm=(0, *c.layer.dims))


@expands("RepeatVector")
def _repeat_vector(c):
    return P.tile(P.reshape(c.x, shape=(0, 1, -1)), reps=(1, c.layer.n, 1))


def _unmasked(c: LayerCall) -> Var:
    """(batch, time, 1) float: 1 where some feature differs from mask_value."""
    differs = P.cast(P.ne(c.x, c.layer.mask_value), dtype=c.x.dtype)
    return P.reduce_max(differs, axes=(c.x.rank - 1,), keepdims=True)


@expands("Masking")
def _masking(c):
    return c.x * _unmasked(c)


@expands("Masking", table=MASKS)
def _masking_mask(c):
    return P.cast(P.reshape(_unmasked(c), shape=(0, 0)), dtype="bool")


_EXPR_FUNCTIONS = {
    "abs": P.abs, "exp": P.exp, "log": P.log, "sqrt": P.sqrt, "square": lambda x: x * x, "sin": P.sin,
    "cos": P.cos, "tanh": P.tanh, "sigmoid": P.sigmoid, "relu": P.relu, "softplus": P.softplus, "erf": P.erf,
    "floor": P.floor, "ceil": P.ceil, "sign": P.sign, "neg": P.neg, "reciprocal": P.reciprocal,
    "clip": lambda x, lo, hi: P.minimum(P.maximum(x, lo), hi), "minimum": P.minimum, "maximum": P.maximum,
    "pow": P.pow,
}
_EXPR_OPERATORS = {"+": P.add, "-": P.sub, "*": P.mul, "/": P.div, "**": P.pow}


def _evaluate(e, x: Var) -> Var:
    if isinstance(e, Num):
        return x.graph.const(e.value, x.dtype)
    if isinstance(e, ExprVar):
        return x
    if isinstance(e, Neg):
        return P.neg(_evaluate(e.operand, x))
    if isinstance(e, BinOp):
        return _EXPR_OPERATORS[e.op](_evaluate(e.left, x), _evaluate(e.right, x))
    if isinstance(e, Func):
        return _EXPR_FUNCTIONS[e.name](*[_evaluate(a, x) for a in e.args])
    raise AssertionError(f"unknown expression node {e!r}")


@expands("Lambda")
def _lambda(c):
    return _evaluate(parse_expression(c.layer.expression), c.x)


@expands("Embedding")
def _embedding(c):
    idx = c.x if c.x.dtype in ("int32", "int64") else P.cast(c.x, dtype="int64")
    return P.gather(c.w("embeddings"), idx)


@expands("Embedding", table=MASKS)
def _embedding_mask(c):
    return P.ne(c.x, 0) if c.layer.mask_zero else None


# ---- convolution and pooling (any number of spatial dimensions) ----------------------------------


def channels_first(x: Var) -> Var:
    return P.transpose(x, perm=(0, x.rank - 1, *range(1, x.rank - 1)))


def channels_last(x: Var) -> Var:
    return P.transpose(x, perm=(0, *range(2, x.rank), 1))


def _onnx_kernel(kernel: Var, rank: int) -> Var:
    """Keras's (*k, C/g, F) as ONNX's (F, C/g, *k): the last two axes swapped and put first."""
    return P.transpose(kernel, perm=(rank + 1, rank, *range(rank)))


def _window_conv(c: LayerCall, x: Var, kernel: Var, bias: Var | None, group: int) -> Var:
    """The layer's strided, padded, dilated conv of a channels-first x."""
    layer = c.layer
    return P.conv(x, kernel, bias, strides=tuple(layer.strides),
                  pads=windows.keras_pads(layer.padding, c.x.shape[1:-1], layer.kernel_size, layer.strides,
                                          layer.dilation_rate),
                  dilations=tuple(layer.dilation_rate), group=group)


@expands("Conv1D", "Conv2D", "Conv3D")
def _conv(c):
    y = _window_conv(c, channels_first(c.x), _onnx_kernel(c.w("kernel"), c.layer.rank), c.w("bias"), c.layer.groups)
    return activation(c.layer.activation, channels_last(y))


@expands("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
def _conv_transpose(c):
    layer, rank = c.layer, c.layer.rank
    triples = [windows.keras_transposed_pads(k, s, layer.padding, d, op) for k, s, d, op in
               zip(layer.kernel_size, layer.strides, layer.dilation_rate, layer.output_paddings())]
    # Keras's kernel (*k, F, C) is ONNX's (C, F, *k), the same transpose as a conv's
    y = P.conv_transpose(channels_first(c.x), _onnx_kernel(c.w("kernel"), rank), c.w("bias"),
                         strides=tuple(layer.strides), pads=tuple(t[0] for t in triples) + tuple(t[1] for t in triples),
                         dilations=tuple(layer.dilation_rate), group=1, output_padding=tuple(t[2] for t in triples))
    return activation(layer.activation, channels_last(y))


def _depthwise(c: LayerCall, kernel: Var, bias: Var | None) -> Var:
    """One group per input channel; Keras's kernel (*k, C, multiplier) gives output channel c * multiplier + m."""
    rank = c.layer.rank
    onnx_kernel = P.reshape(P.transpose(kernel, perm=(rank, rank + 1, *range(rank))), shape=(-1, 1, *kernel.shape[:rank]))
    return _window_conv(c, channels_first(c.x), onnx_kernel, bias, c.x.shape[-1])


@expands("DepthwiseConv1D", "DepthwiseConv2D")
def _depthwise_conv(c):
    return activation(c.layer.activation, channels_last(_depthwise(c, c.w("kernel"), c.w("bias"))))


@expands("SeparableConv1D", "SeparableConv2D")
def _separable_conv(c):
    rank = c.layer.rank
    y = P.conv(_depthwise(c, c.w("depthwise_kernel"), None), _onnx_kernel(c.w("pointwise_kernel"), rank), c.w("bias"),
               strides=(1,) * rank, pads=(0,) * (2 * rank), dilations=(1,) * rank, group=1)
    return activation(c.layer.activation, channels_last(y))


def _margin_pads(c: LayerCall) -> tuple[int, ...]:
    """The layer's (before, after) per spatial axis as ONNX pads of the whole tensor."""
    pairs = [(0, 0), *c.layer.pairs(), (0, 0)]
    return tuple(b for b, _ in pairs) + tuple(a for _, a in pairs)


@expands("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
def _zero_padding(c):
    return P.pad(c.x, pads=_margin_pads(c))


@expands("Cropping1D", "Cropping2D", "Cropping3D")
def _cropping(c):
    return P.crop(c.x, pads=_margin_pads(c))


@expands("UpSampling1D", "UpSampling2D", "UpSampling3D")
def _upsampling(c):
    mode = "linear" if getattr(c.layer, "interpolation", "nearest") == "bilinear" else "nearest"
    return P.resize(c.x, sizes=tuple(c.out_types[0].shape[:-1]), axes=tuple(range(1, c.x.rank - 1)), mode=mode)


def _image(c: LayerCall, x: Var, crop: tuple[int, int, int, int] | None, mode: str) -> Var:
    """x cut to crop = (top, left, height, width), then resized to the layer's height x width."""
    if crop is not None:
        top, left, h, w = crop
        x = P.crop(x, pads=(0, top, left, 0, 0, x.shape[1] - top - h, x.shape[2] - left - w, 0))
    if x.shape[1:3] == (c.layer.height, c.layer.width):
        return x
    return P.resize(x, sizes=(c.layer.height, c.layer.width), axes=(1, 2), mode=mode)


@expands("Resizing")
def _resizing(c):
    crop = c.layer.aspect_crop(c.in_types[0]) if c.layer.crop_to_aspect_ratio else None
    return _image(c, c.x, crop, "linear" if c.layer.interpolation == "bilinear" else "nearest")


@expands("CenterCrop")
def _center_crop(c):
    h, w = c.x.shape[1:3]
    if h >= c.layer.height and w >= c.layer.width:
        return _image(c, c.x, ((h - c.layer.height) // 2, (w - c.layer.width) // 2, c.layer.height, c.layer.width),
                      "linear")
    return _image(c, c.x, c.layer.aspect_crop(c.in_types[0]), "linear")


def _pool(prim: P.Primitive) -> Expansion:
    def expansion(c):
        layer = c.layer
        strides = tuple(layer.strides or layer.pool_size)
        pads = windows.keras_pads(layer.padding, c.x.shape[1:-1], layer.pool_size, strides, [1] * layer.rank)
        return channels_last(prim(channels_first(c.x), kernel_shape=tuple(layer.pool_size), strides=strides,
                                  pads=pads))
    return expansion


expands("MaxPooling1D", "MaxPooling2D")(_pool(P.max_pool))
expands("AveragePooling1D", "AveragePooling2D")(_pool(P.avg_pool))


def _global_pool(reduce: P.Primitive) -> Expansion:
    def expansion(c):
        axes, keep = tuple(range(1, c.x.rank - 1)), c.layer.keepdims
        if reduce is P.reduce_mean and c.mask is not None:  # the mean of the unmasked steps
            m = P.reshape(P.cast(c.mask, dtype=c.x.dtype), shape=(0, 0, 1))
            return P.reduce_sum(c.x * m, axes=axes, keepdims=keep) / P.reduce_sum(m, axes=axes, keepdims=keep)
        return reduce(c.x, axes=axes, keepdims=keep)
    return expansion


expands("GlobalMaxPooling1D", "GlobalMaxPooling2D")(_global_pool(P.reduce_max))
expands("GlobalAveragePooling1D", "GlobalAveragePooling2D")(_global_pool(P.reduce_mean))

# ---- normalization ----------------------------------------------------------------------------


def _gamma_beta(c: LayerCall, size: int) -> tuple[Var, Var]:
    """gamma and beta, or the ones and zeros they stand for when scale or center is off."""
    gamma, beta = c.w("gamma"), c.w("beta")
    graph = c.x.graph
    return (gamma if gamma is not None else graph.const(np.ones(size, np.float32)),
            beta if beta is not None else graph.const(np.zeros(size, np.float32)))


@expands("BatchNormalization")
def _batch_norm(c):
    axis, rank = _axis(c.layer.axis, c.x.rank), c.x.rank
    gamma, beta = _gamma_beta(c, c.x.shape[axis])
    if c.train is not None and c.layer.trainable:  # Keras: a frozen BatchNormalization runs in inference mode
        return _batch_norm_training(c, axis, gamma, beta)
    scale = gamma / P.sqrt(c.w("moving_variance") + c.layer.epsilon)  # weights only: folded
    shift = beta - c.w("moving_mean") * scale
    return c.x * _along(scale, axis, rank) + _along(shift, axis, rank)


def _batch_norm_training(c: LayerCall, axis: int, gamma: Var, beta: Var) -> Var:
    """Normalize with the batch's statistics; move the moving ones towards them (Keras 3: the
    biased batch variance). Channels go to axis 1 (a conv's output is already so: the transposes
    cancel)."""
    m = c.layer.momentum
    perm = (0, axis, *[i for i in range(1, c.x.rank) if i != axis])
    y, mean, variance, _ = P.batch_norm_train(P.transpose(c.x, perm=perm), gamma, beta, epsilon=c.layer.epsilon)
    c.train.update(c.layer, "moving_mean", c.w("moving_mean") * m + mean * (1.0 - m))
    c.train.update(c.layer, "moving_variance", c.w("moving_variance") * m + variance * (1.0 - m))
    return P.transpose(y, perm=P.inverse(perm))


@expands("BatchNormalization", table=FUSED)
def _batch_norm_fused(c):
    """ONNX BatchNormalization wants channels on axis 1: where the tensor is already laid out so
    (a 2-D tensor, or the output of a conv), one node; elsewhere the multiply-add above."""
    axis = _axis(c.layer.axis, c.x.rank)
    perm = (0, axis, *[i for i in range(1, c.x.rank) if i != axis])
    x = P.free_transpose(c.x, perm)
    if x is None:
        return None
    gamma, beta = _gamma_beta(c, c.x.shape[axis])
    scale = gamma / P.sqrt(c.w("moving_variance") + c.layer.epsilon)
    y = _fold_into_producer(x, scale, beta - c.w("moving_mean") * scale)
    if y is None:
        y = P.batch_norm(x, gamma, beta, c.w("moving_mean"), c.w("moving_variance"), epsilon=c.layer.epsilon)
    return P.transpose(y, perm=P.inverse(perm))


def _fold_into_producer(y: Var, scale: Var, shift: Var) -> Var | None:
    """y * scale + shift, per channel (axis 1), folded into the constant weights of the Conv or Gemm
    that made y, as tf2onnx does: the same function in one node fewer. The folded node keeps the
    conv's layer name, so the ONNX lift gives it back as that layer with the folded weights."""
    eqn = y.eqn
    if eqn is None or eqn.prim not in (P.conv, P.gemm) or not all(v is None or v.is_const for v in eqn.inputs[1:]):
        return None
    x, kernel, bias = (*eqn.inputs, None)[:3]
    per_output = P.reshape(scale, shape=(-1, *[1] * (kernel.rank - 1))) if eqn.prim is P.conv else scale
    with y.graph.scope(eqn.scope):
        return eqn.prim(x, kernel * per_output, shift if bias is None else bias * scale + shift, **eqn.params)


@expands("LayerNormalization")
def _layer_norm(c):
    axes = tuple(a + 1 for a in c.layer.axes(c.x.rank - 1))
    gamma, beta = c.w("gamma"), c.w("beta")
    centered = c.x - P.reduce_mean(c.x, axes=axes, keepdims=True)
    variance = P.reduce_mean(centered * centered, axes=axes, keepdims=True)
    y = centered / P.sqrt(variance + c.layer.epsilon)
    spread = tuple(c.x.shape[i] if i in axes else 1 for i in range(1, c.x.rank))  # gamma on its axes
    along = (lambda v: v) if axes == tuple(range(c.x.rank - len(axes), c.x.rank)) else (
        lambda v: P.reshape(v, shape=spread))
    if gamma is not None:
        y = y * along(gamma)
    return y if beta is None else y + along(beta)


@expands("LayerNormalization", table=FUSED)
def _layer_norm_fused(c):
    if c.layer.axes(c.x.rank - 1) != [c.x.rank - 2]:
        return None
    gamma, beta = _gamma_beta(c, c.x.shape[-1])
    return P.layer_norm(c.x, gamma, beta, axis=-1, epsilon=c.layer.epsilon)


@expands("GroupNormalization")
def _group_norm(c):
    """Statistics per sample and group of channels, over every other non-batch axis."""
    rank, channels, groups = c.x.rank, c.x.shape[-1], c.layer.groups
    gamma, beta = _gamma_beta(c, channels)
    grouped = P.reshape(c.x, shape=(0,) * (rank - 1) + (groups, channels // groups))
    axes = tuple(range(1, rank - 1)) + (rank,)
    centered = grouped - P.reduce_mean(grouped, axes=axes, keepdims=True)
    variance = P.reduce_mean(centered * centered, axes=axes, keepdims=True)
    normalized = P.reshape(centered / P.sqrt(variance + c.layer.epsilon), shape=(0,) * (rank - 1) + (channels,))
    return normalized * gamma + beta


@expands("UnitNormalization")
def _unit_norm(c):
    axes = tuple(a + 1 for a in c.layer.axes(c.x.rank - 1))
    squares = P.reduce_sum(c.x * c.x, axes=axes, keepdims=True)
    return c.x / P.sqrt(P.maximum(squares, c.x.graph.const(1e-12, "float32")))


@expands("Rescaling")
def _rescaling(c):
    x = c.x if c.in_types[0].dtype == "float32" else P.cast(c.x, dtype="float32")
    scale, offset = (np.asarray(v, np.float32) for v in (c.layer.scale, c.layer.offset))
    y = x if np.all(scale == 1) else x * x.graph.const(scale)  # op layers (x + 3, x / 6) have one of them
    return y if not np.any(offset) else y + x.graph.const(offset)


@expands("Normalization")
def _normalization(c):
    x = c.x if c.in_types[0].dtype == "float32" else P.cast(c.x, dtype="float32")
    layer, axis = c.layer, _axis(c.layer.axis, c.x.rank)
    if layer.mean is None:
        mean, variance = _along(c.w("mean"), axis, x.rank), _along(c.w("variance"), axis, x.rank)
    else:
        shape = (-1,) + (1,) * (x.rank - 1 - axis)
        mean, variance = (x.graph.const(np.reshape(np.asarray(v, np.float32), shape)) for v in (layer.mean, layer.variance))
    std = P.maximum(P.sqrt(variance), x.graph.const(1e-7, "float32"))  # Keras's backend epsilon
    return mean + x * std if layer.invert else (x - mean) / std


@expands("LayerScale")
def _layer_scale(c):
    return c.x * c.w("gamma")


# ---- wrappers and merges ----------------------------------------------------------------------


class _WrapperTraining:
    """The training context a layer inside TimeDistributed sees: the weights it updates (batch
    normalization's moving statistics) are its wrapper's, which holds them; its noise is drawn per
    sample and step for the wrapper's input, then merged like that input."""

    def __init__(self, train: TrainContext, wrapper: Layer, outer_x: Var):
        self.train, self.wrapper, self.outer_x = train, wrapper, outer_x

    def update(self, layer: Layer, weight: str, value: Var) -> None:
        self.train.update(self.wrapper, weight, value)

    def noise(self, layer: Layer, x: Var, draw: Draw) -> Var:
        shape = getattr(layer, "noise_shape", None)
        stepwise = SimpleNamespace(name=self.wrapper.name,
                                   noise_shape=None if shape is None else [shape[0], shape[0], *shape[1:]])
        drawn = self.train.noise(stepwise, self.outer_x, draw)
        return P.reshape(drawn, shape=(-1, *drawn.shape[2:]))

    def __getattr__(self, name: str):
        return getattr(self.train, name)


@expands("TimeDistributed")
def _time_distributed(c):
    """The wrapped layer sees (batch * time, ...) and its output is split back."""
    steps = c.x.shape[1]
    if steps is None or None in c.x.shape[2:]:
        raise c.fail("TimeDistributed needs known sizes after the batch dimension")
    inner = c.layer.layer
    flat = P.reshape(c.x, shape=(-1, *c.x.shape[2:]))
    out_type = c.out_types[0]
    train = None if c.train is None else _WrapperTraining(c.train, c.layer, c.x)
    call = LayerCall(inner, [flat], [TensorType(c.in_types[0].dtype, c.in_types[0].shape[1:])],
                     [TensorType(out_type.dtype, out_type.shape[1:])], c.specs, c.weights, [None], c.fused, train)
    (y,) = expand(call)
    return P.reshape(y, shape=(-1, steps, *y.shape[1:]))


_MERGES: dict[str, Callable[[list[Var]], Var]] = {
    "Add": lambda xs: functools.reduce(P.add, xs),
    "Subtract": lambda xs: xs[0] - xs[1],
    "Multiply": lambda xs: functools.reduce(P.mul, xs),
    "Average": lambda xs: functools.reduce(P.add, xs) / float(len(xs)),
    "Maximum": lambda xs: functools.reduce(P.maximum, xs),
    "Minimum": lambda xs: functools.reduce(P.minimum, xs),
}


@expands(*_MERGES)
def _merge(c):
    return _MERGES[c.layer.type](c.inputs)


@expands("Dot")
def _dot(c):
    """Keras's batch_dot: vectors as a product summed; otherwise each contracted axis moved next to
    the batch (transposes and reshapes only where the layout needs them) and one batched MatMul."""
    x, y = c.inputs
    ax, ay = (a + 1 for a in c.layer.pair((x.rank - 1, y.rank - 1)))
    if c.layer.normalize:
        x, y = (v / P.sqrt(P.maximum(P.reduce_sum(v * v, axes=(a,), keepdims=True), v.graph.const(1e-12, "float32")))
                for v, a in ((x, ax), (y, ay)))
    if x.rank == y.rank == 2:
        return P.reduce_sum(x * y, axes=(1,), keepdims=True)
    rows = _moved(x, [i for i in range(1, x.rank) if i != ax] + [ax], (0, -1, x.shape[ax]))
    cols = _moved(y, [ay] + [i for i in range(1, y.rank) if i != ay], (0, y.shape[ay], -1))
    out = c.out_types[0].shape
    product = rows @ cols
    if product.rank == len(out) + 1 and None not in product.shape[1:] and product.shape[1:] == tuple(out):
        return product
    if out.count(None) > 1:
        raise c.fail("Dot needs the sizes of its inputs' other axes known")
    return P.reshape(product, shape=(0, *[-1 if d is None else d for d in out]))


def _moved(v: Var, order: list[int], shape3: tuple) -> Var:
    """v with its non-batch axes in `order`, as a rank-3 (batch, rows, cols) tensor."""
    if order != list(range(1, v.rank)):
        v = P.transpose(v, perm=(0, *order))
    return v if v.rank == 3 else P.reshape(v, shape=shape3)


@expands("Concatenate")
def _concatenate(c):
    return P.concat(*c.inputs, axis=_axis(c.layer.axis, c.x.rank))
