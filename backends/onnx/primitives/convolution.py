"""Convolution and pooling (channels-first, as in ONNX) with their VJPs. `pads` None means ONNX
SAME_UPPER (Keras 'same' over a size known only at run time); the arithmetic is nnspec.ir.windows."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ....ir import windows
from ....ir.base import ShapeError
from ..graph import Aval, Primitive, Var
from .. import primitives as P  # the other families, looked up when a rule runs
from .core import defvjp, onnx_op, zeros_like


def _spatial(x: Aval, kernel, strides, pads, dilations) -> list[int | None]:
    n = len(kernel)
    if pads is None:
        return [windows.keras_output_size(s, k, st, "same", d) for s, k, st, d in zip(x.shape[2:], kernel, strides, dilations)]
    return [windows.output_size(s, k, st, d, b, a)
            for s, k, st, d, b, a in zip(x.shape[2:], kernel, strides, dilations, pads[:n], pads[n:])]


def _windowed(op_type: str, **fixed) -> Callable:
    def lower(ctx, *xs, pads, **attrs):
        where = {"auto_pad": "SAME_UPPER"} if pads is None else {"pads": list(pads)}
        return ctx.op(op_type, *xs, **where, **attrs, **fixed)
    return lower


def explicit_pads(x: Var, kernel, strides, dilations, pads) -> tuple[int, ...]:
    """ONNX SAME_UPPER (pads None) as explicit pads, from the static spatial sizes."""
    if pads is not None:
        return tuple(pads)
    if None in x.shape[2:]:
        raise ShapeError("training a 'same'-padded window over a dimension of unknown size is not supported")
    return windows.keras_pads("same", x.shape[2:], kernel, strides, dilations)


def _output_padding(x: Var, y: Var, kernel, strides, pads, dilations) -> tuple[int, ...]:
    """What a transposed convolution of y must add at the end to give back x's size."""
    n = x.rank - 2
    return tuple(x.shape[2 + i] - windows.transposed_output_size(y.shape[2 + i], kernel[i], strides[i], dilations[i],
                                                                 pads[i], pads[i + n]) for i in range(n))


# ---- convolution ------------------------------------------------------------------------------


def _conv_shape(x, w, b=None, *, strides, pads, dilations, group):
    if None not in (x.shape[1], w.shape[1]) and x.shape[1] != w.shape[1] * group:
        raise ShapeError(f"conv of {x.shape} with a kernel {w.shape} in {group} group(s)")
    return Aval((x.shape[0], w.shape[0], *_spatial(x, w.shape[2:], strides, pads, dilations)), x.dtype)


def _conv_rewrite(x, w, b=None, *, strides, pads, dilations, group):
    """A zero padding of the spatial axes just before is the conv's own padding (ZeroPadding2D then
    a conv, as in ResNet): one node, as tf2onnx writes it."""
    if pads is None or x.eqn is None or x.eqn.prim is not P.pad:
        return None
    before = x.eqn.params["pads"]
    n = x.rank
    if any(before[i] or before[i + n] for i in (0, 1)):
        return None
    spatial = n - 2
    combined = tuple(before[2 + i] + pads[i] for i in range(spatial)) + \
        tuple(before[n + 2 + i] + pads[spatial + i] for i in range(spatial))
    return conv(x.eqn.inputs[0], w, b, strides=strides, pads=combined, dilations=dilations, group=group)


# x (N, C, ...), w (F, C/group, ...), bias (F,)
conv = Primitive("conv", _conv_shape, _windowed("Conv"), rewrite=_conv_rewrite)


@defvjp(conv)
def _conv(cts, x, w, b=None, *, outputs, strides, pads, dilations, group):
    g = cts[0]
    kernel = w.shape[2:]
    pads = explicit_pads(x, kernel, strides, dilations, pads)
    out_pad = _output_padding(x, outputs[0], kernel, strides, pads, dilations)
    gx = conv_transpose(g, w, strides=tuple(strides), pads=pads, dilations=tuple(dilations), group=group,
                        output_padding=out_pad)
    return [gx, _kernel_cotangent(x, g, kernel, strides, pads, dilations, group), _bias_cotangent(g, b)]


def _kernel_cotangent(x: Var, g: Var, kernel, strides, pads, dilations, group: int) -> Var:
    """d w of sum(g * conv(x, w)) (and of sum(x * conv_transpose(g, w)), its adjoint)."""
    if group != 1 or None in g.shape[1:] or None in x.shape[1:]:
        return _kernel_cotangent_by_conv(x, g, kernel, strides, pads, dilations, group)
    return _kernel_cotangent_by_patches(x, g, kernel, strides, pads, dilations)


def _kernel_cotangent_by_patches(x: Var, g: Var, kernel, strides, pads, dilations) -> Var:
    """dL/dw as matrix products over patches: for each kernel offset, the input's window there (a
    strided slice, C x (N S) with the batch moved behind the channels) against the output
    cotangent (F x (N S)) gives that offset's (F, C), one GEMM whose inner dimension is the whole
    batch's positions. onnxruntime runs these on its MLAS GEMM, where a convolution with the batch
    as channels and a kernel the size of the image (the other way) runs on a slow path. One offset
    at a time, each slice dies after its product: memory stays that of the input, not K times it.
    Where the K patches stacked are no larger than the cotangent (few input channels: a first
    layer), they are stacked and one GEMM reads the cotangent once instead of K times."""
    spatial = x.rank - 2
    channels_first = (1, 0, *range(2, 2 + spatial))
    if any(pads):
        x = P.pad(x, pads=(0, 0, *pads[:spatial], 0, 0, *pads[spatial:]))
    x = P.transpose(x, perm=channels_first)  # (C, N, ...)
    sizes = g.shape[2:]
    channels, filters = x.shape[0], g.shape[1]
    flat_g = P.reshape(P.transpose(g, perm=channels_first), shape=(filters, -1))  # (F, N S)

    def patch(offset) -> Var:  # (N S, C); one Slice over every spatial axis, no intermediate copy
        starts = tuple(o * d for o, d in zip(offset, dilations))
        out = P.slice_(x, axis=tuple(range(2, 2 + spatial)), start=starts,
                       stop=tuple(b + (n - 1) * s + 1 for b, n, s in zip(starts, sizes, strides)), step=tuple(strides))
        return P.transpose(P.reshape(out, shape=(channels, -1)), perm=(1, 0))

    offsets = list(np.ndindex(*kernel))
    if len(offsets) * channels <= filters:
        gw = P.matmul(flat_g, P.concat(*[patch(o) for o in offsets], axis=1))  # (F, K*C)
    else:
        products = [P.matmul(flat_g, patch(o)) for o in offsets]  # (F, C) each, traced one after another
        gw = P.concat(*products, axis=1) if len(products) > 1 else products[0]  # (F, K*C)
    gw = P.reshape(gw, shape=(filters, *kernel, channels))
    return P.transpose(gw, perm=(0, spatial + 1, *range(1, spatial + 1)))


def _kernel_cotangent_by_conv(x: Var, g: Var, kernel, strides, pads, dilations, group: int) -> Var:
    """dL/dw where spatial sizes are known only at run time, or of a grouped conv: correlate the
    input with the output cotangent, the batch axis as channels."""
    spatial = x.rank - 2
    swap = (1, 0) + tuple(range(2, 2 + spatial))
    gw = conv(_batch_as_channels(x, group), P.transpose(g, perm=swap), strides=tuple(dilations), pads=tuple(pads),
              dilations=tuple(strides), group=group)
    for i, k in enumerate(kernel):  # strides that do not divide evenly overshoot the kernel: crop
        if gw.shape[2 + i] != k:
            gw = P.slice_(gw, axis=2 + i, start=0, stop=k)
    return P.transpose(gw, perm=swap)


def _bias_cotangent(g: Var, b: Var | None) -> Var | None:
    return None if b is None else P.reduce_sum(g, axes=(0, *range(2, g.rank)), keepdims=False)


def _batch_as_channels(x: Var, group: int) -> Var:
    """x (N, C, ...) as (C/group, group * N, ...): group k's channels see, as their own channels,
    the batch of group k's input channels, so a grouped conv with the cotangent (F, N, ...) as its
    kernel gives each group's kernel cotangent, and no other group's."""
    spatial = tuple(range(2, x.rank))
    if group == 1:
        return P.transpose(x, perm=(1, 0) + spatial)
    if None in x.shape[1:]:
        raise ShapeError("training a grouped convolution needs known sizes after the batch dimension")
    sizes = x.shape[2:]
    split = P.reshape(x, shape=(-1, group, x.shape[1] // group, *sizes))
    return P.reshape(P.transpose(split, perm=(2, 1, 0, *(a + 1 for a in spatial))), shape=(x.shape[1] // group, -1, *sizes))


def _conv_transpose_shape(g, w, b=None, *, strides, pads, dilations, group, output_padding):
    n = g.rank - 2
    spatial = [windows.transposed_output_size(s, w.shape[2 + i], strides[i], dilations[i], pads[i], pads[i + n],
                                              output_padding[i]) for i, s in enumerate(g.shape[2:])]
    return Aval((g.shape[0], w.shape[1] * group, *spatial), g.dtype)


# g (N, F, ...), w (F, C/group, ...), bias (C,): the adjoint of conv with the same parameters
conv_transpose = Primitive("conv_transpose", _conv_transpose_shape, onnx_op("ConvTranspose"))


@defvjp(conv_transpose)
def _conv_transpose(cts, g, w, b=None, *, outputs, strides, pads, dilations, group, output_padding):
    y_bar = cts[0]
    g_bar = conv(y_bar, w, strides=tuple(strides), pads=tuple(pads), dilations=tuple(dilations), group=group)
    return [g_bar, _kernel_cotangent(y_bar, g, w.shape[2:], strides, pads, dilations, group), _bias_cotangent(y_bar, b)]

# ---- pooling ----------------------------------------------------------------------------------


def _pool_shape(x, kernel_shape, strides, pads):
    return Aval((*x.shape[:2], *_spatial(x, kernel_shape, strides, pads, [1] * len(kernel_shape))), x.dtype)


max_pool = Primitive("max_pool", _pool_shape, _windowed("MaxPool"))


@defvjp(max_pool)
def _max_pool(cts, x, outputs, kernel_shape, strides, pads):
    """Each cotangent goes to the cell that won its window (MaxPool's indices output)."""
    indices = max_pool_indices(x, kernel_shape=kernel_shape, strides=strides, pads=pads)
    return [scatter_add_flat(x, indices, cts[0])]


# Keras averages over the cells inside the input only: ONNX's count_include_pad=0.
avg_pool = Primitive("avg_pool", _pool_shape, _windowed("AveragePool", count_include_pad=0))


@defvjp(avg_pool)
def _avg_pool(cts, x, outputs, kernel_shape, strides, pads):
    """Each cotangent spread evenly over its window: a depthwise transposed convolution of ones."""
    spatial = x.rank - 2
    pads = explicit_pads(x, kernel_shape, strides, [1] * spatial, pads)
    y = outputs[0]
    counts = np.ones([y.shape[2 + d] for d in range(spatial)], np.float32)
    for d in range(spatial):  # cells inside the input per window: padding does not count (Keras)
        starts = np.arange(y.shape[2 + d]) * strides[d] - pads[d]
        size = np.minimum(starts + kernel_shape[d], x.shape[2 + d]) - np.maximum(starts, 0)
        shape = [1] * spatial
        shape[d] = -1
        counts = counts * size.reshape(shape)
    channels = x.shape[1]
    ones = x.graph.const(np.ones([channels, 1, *kernel_shape], np.float32))
    out_pad = _output_padding(x, y, kernel_shape, strides, pads, [1] * spatial)
    return [conv_transpose(cts[0] / x.graph.const(counts, "float32"), ones, strides=tuple(strides), pads=pads,
                           dilations=(1,) * spatial, group=channels, output_padding=out_pad)]


# MaxPool's second output: where each window's maximum sits, counted over the whole tensor
max_pool_indices = Primitive("max_pool_indices", lambda x, kernel_shape, strides, pads: Aval(
    _pool_shape(x, kernel_shape, strides, pads).shape, "int64"))


def _max_pool_indices(ctx, x, kernel_shape, strides, pads):
    where = {"auto_pad": "SAME_UPPER"} if pads is None else {"pads": list(pads)}
    return ctx.op("MaxPool", x, outputs=2, kernel_shape=kernel_shape, strides=strides, **where)[1]


max_pool_indices.lower = _max_pool_indices

# x (N, ...), flat indices like max_pool_indices, values -> zeros like x with the values added
scatter_add_flat = Primitive("scatter_add_flat", lambda x, idx, values: x)


def _scatter_add_flat(ctx, x, idx, values):
    per_sample = ctx.op("Reshape", x, ctx.ints([0, -1]))
    size = ctx.op("Slice", ctx.op("Shape", per_sample), ctx.ints([1]), ctx.ints([2]))
    flat_idx = ctx.op("Mod", ctx.op("Reshape", idx, ctx.ints([0, -1])), size)  # per sample, not per tensor
    out = ctx.op("ScatterElements", zeros_like(ctx, per_sample), flat_idx,
                 ctx.op("Reshape", values, ctx.ints([0, -1])), axis=1, reduction="add")
    return ctx.op("Reshape", out, ctx.op("Shape", x))


scatter_add_flat.lower = _scatter_add_flat
