"""Reductions and normalizing ops over axes (sum, mean, max, softmax, argmax) with their VJPs,
and `sum_to`, which undoes broadcasting in every VJP."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..graph import Aval, Primitive, Var
from .. import primitives as P  # the other families, looked up when a rule runs
from .core import defvjp, onnx_op, positive_axes, same
from .layout import sink_axis, sink_reduce


def _reduce_shape(x, axes, keepdims):
    axes = positive_axes(axes, x.rank)
    return Aval(tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keepdims or i not in axes), x.dtype)


def reduction(name: str, op_type: str, impl: Callable) -> Primitive:
    def lower(ctx, x, axes, keepdims):
        if ctx.opset >= 18 or op_type == "ReduceSum":  # axes became an input in opset 18 (ReduceSum: 13)
            return ctx.op(op_type, x, ctx.ints(axes), keepdims=int(keepdims))
        return ctx.op(op_type, x, axes=list(axes), keepdims=int(keepdims))

    prim = Primitive(name, _reduce_shape, lower, lambda x, axes, keepdims: impl(x, tuple(axes), keepdims=keepdims))
    prim.rewrite = sink_reduce(prim)
    return prim


def sum_to(g: Var, shape: tuple) -> Var:
    """Undo broadcasting: sum a cotangent down to an operand's shape."""
    lead = g.rank - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    if not axes:
        return g
    out = reduce_sum(g, axes=axes, keepdims=True)
    return P.reshape(out, shape=tuple(d if d is not None else 0 for d in shape)) if lead else out


def _unreduce(g: Var, x: Var, axes, keepdims: bool) -> Var:
    axes = positive_axes(axes, x.rank)
    if not keepdims:
        g = P.reshape(g, shape=_kept_shape(g, x, axes))
    return P.expand_like(g, x)


def _kept_shape(g: Var, x: Var, axes) -> tuple:
    """The reduced shape with the reduced axes put back as 1 (0 copies a kept dimension)."""
    out, j = [], 0
    for i in range(x.rank):
        if i in axes:
            out.append(1)
        else:
            out.append(0 if j == i else (g.shape[j] if g.shape[j] is not None else -1))
            j += 1
    return tuple(out)


reduce_sum = reduction("reduce_sum", "ReduceSum", np.sum)
reduce_mean = reduction("reduce_mean", "ReduceMean", np.mean)
reduce_max = reduction("reduce_max", "ReduceMax", np.max)


@defvjp(reduce_sum)
def _reduce_sum(cts, x, outputs, axes, keepdims):
    return [_unreduce(cts[0], x, axes, keepdims)]


@defvjp(reduce_mean)
def _reduce_mean(cts, x, outputs, axes, keepdims):
    sizes = [x.shape[a] for a in positive_axes(axes, x.rank)]
    if None in sizes:  # the batch axis: divide by its run-time size
        count = reduce_sum(P.reshape(x, shape=(0, -1)) * 0.0 + 1.0, axes=(0,), keepdims=False)
        count = reduce_max(count, axes=(0,), keepdims=False) * float(np.prod([s for s in sizes if s is not None]))
        return [_unreduce(cts[0], x, axes, keepdims) / count]
    return [_unreduce(cts[0], x, axes, keepdims) / float(np.prod(sizes))]


@defvjp(reduce_max)
def _reduce_max(cts, x, outputs, axes, keepdims):
    y = outputs[0] if keepdims else P.reshape(outputs[0], shape=_kept_shape(outputs[0], x, positive_axes(axes, x.rank)))
    hit = P.as_float(P.equal(x, y))
    ties = reduce_sum(hit, axes=axes, keepdims=True)  # ties share the cotangent, as TensorFlow does
    return [_unreduce(cts[0], x, axes, keepdims) * (hit / ties)]


softmax = Primitive("softmax", same, onnx_op("Softmax"))
softmax.rewrite = sink_axis(softmax)


@defvjp(softmax)
def _softmax(cts, x, outputs, axis):
    y, g = outputs[0], cts[0]
    return [y * (g - reduce_sum(g * y, axes=(axis,), keepdims=True))]


log_softmax = Primitive("log_softmax", same, onnx_op("LogSoftmax"))
log_softmax.rewrite = sink_axis(log_softmax)


@defvjp(log_softmax)
def _log_softmax(cts, x, outputs, axis):
    g = cts[0]
    return [g - P.exp(outputs[0]) * reduce_sum(g, axes=(axis,), keepdims=True)]


def _argmax_shape(x, axis, keepdims):
    return Aval(_reduce_shape(x, (axis,), keepdims).shape, "int64")


argmax = Primitive("argmax", _argmax_shape, lambda ctx, x, axis, keepdims: ctx.op(
    "ArgMax", x, axis=axis, keepdims=int(keepdims)))


# The number of elements of x, as a float scalar: a mean's count where the batch size is known
# only at run time.
size = Primitive("size", lambda x: Aval((), "float32"),
                 lambda ctx, x: ctx.op("Cast", ctx.op("Size", x), to=ctx.dtype("float32")))


def _batch_norm_train_shape(x, gamma, beta, epsilon):
    stats = Aval((x.shape[1],), x.dtype)
    return [x, stats, stats, x]


def _batch_norm_train_lower(ctx, x, gamma, beta, epsilon):
    """Over a (N, C, S) view of x (free in onnxruntime), whatever its rank: the statistics by
    ReduceSum over (0, 2) (onnxruntime's ReduceMean over (0, 2, 3) of NCHW is twice as slow, its
    ReduceSumSquare three times Mul + ReduceSum), then one inference-mode BatchNormalization with
    the batch's statistics."""
    flat = ctx.op("Reshape", x, ctx.ints([0, 0, -1]))
    axes = ctx.ints([0, 2])
    per_channel = ctx.op("Div", ctx.op("Size", x), ctx.op("Shape", x, start=1, end=2))
    count = ctx.op("Cast", per_channel, to=ctx.dtype("float32"))
    mean = ctx.op("Div", ctx.op("ReduceSum", flat, axes, keepdims=1), count)  # (1, C, 1)
    centered = ctx.op("Sub", flat, mean)
    variance = ctx.op("Div", ctx.op("ReduceSum", ctx.op("Mul", centered, centered), axes, keepdims=1), count)
    # returned names feed no other node (a graph output renames its node): own Reshapes for the node
    vector = lambda v: ctx.op("Reshape", v, ctx.ints([-1]))  # noqa: E731
    y = ctx.op("BatchNormalization", flat, gamma, beta, vector(mean), vector(variance), epsilon=epsilon)
    shape = ctx.op("Shape", x)
    return [ctx.op("Reshape", y, shape), vector(mean), vector(variance), ctx.op("Reshape", centered, shape)]


# x (N, C, ...), gamma, beta (C,) -> y normalized with the batch's statistics (Keras 3: the biased
# variance), mean, variance (C,), and x - mean (kept for the VJP).
batch_norm_train = Primitive("batch_norm_train", _batch_norm_train_shape, _batch_norm_train_lower,
                             multiple_results=True)


@defvjp(batch_norm_train)
def _batch_norm_train(cts, x, gamma, beta, outputs, epsilon):
    """The closed form dx = k (g - sum(g)/M - xhat sum(g xhat)/M), k = gamma/std, written as
    a g + b (x - mean) + c with a, b, c per channel: three passes over the tensor beside the two
    sums, where autograd through the expanded formula made about twenty. a g + c is one
    inference-mode BatchNormalization (mean 0, variance 1, epsilon 0: exact), half the time of
    onnxruntime's Mul and Add broadcasting over the inner axes."""
    g, mean_bar, variance_bar = cts[:3]
    centered = outputs[3]
    axes = (0, *range(2, x.rank))
    along = lambda v: P.reshape(v, shape=(-1, *[1] * (x.rank - 2)))  # noqa: E731
    inv_std = 1.0 / P.sqrt(outputs[2] + epsilon)
    count = size(g) / float(x.shape[1])  # not of x: x would live until the backward pass
    beta_bar = reduce_sum(g, axes=axes, keepdims=False)
    gamma_bar = reduce_sum(g * centered, axes=axes, keepdims=False) * inv_std
    k = gamma * inv_std
    a, b, c = k, -(k * inv_std * gamma_bar) / count, -(k * beta_bar) / count
    if mean_bar is not None:  # the statistics' own cotangents (the moving averages take none)
        c = c + mean_bar / count
    if variance_bar is not None:
        b = b + 2.0 * variance_bar / count
    zeros, ones = (x.graph.const(np.full(x.shape[1], v, np.float32)) for v in (0.0, 1.0))
    return [P.batch_norm(g, a, c, zeros, ones, epsilon=0.0) + centered * along(b), gamma_bar, beta_bar]
