"""The vector-Jacobian product of every differentiable primitive, written in primitives.

`prim.vjp(cts, *inputs, outputs=..., **params)` gets the cotangents of the primitive's outputs
and returns one cotangent per input (None where an input takes none: integer indices, shapes).
Because the rules are primitives too, the backward pass is traced, folded and lowered exactly
like the forward pass, and runs on any onnxruntime provider.
"""
from __future__ import annotations

import numpy as np

from ...ir.base import ShapeError
from . import primitives as P
from .graph import Var


def defvjp(prim: P.Primitive):
    def register(fn):
        prim.vjp = fn
        return fn
    return register


def sum_to(g: Var, shape: tuple) -> Var:
    """Undo broadcasting: sum a cotangent down to an operand's shape."""
    lead = g.rank - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    if not axes:
        return g
    out = P.reduce_sum(g, axes=axes, keepdims=True)
    return P.reshape(out, shape=tuple(d if d is not None else 0 for d in shape)) if lead else out


def _float(v: Var) -> Var:
    return P.cast(v, dtype="float32")


def _select(cond: Var, a, b) -> Var:
    """where(cond, a, b) with numbers taken as float32 (not the condition's bool)."""
    const = lambda v: v if isinstance(v, Var) else cond.graph.const(v, "float32")  # noqa: E731
    return P.where(cond, const(a), const(b))


# ---- elementwise ----------------------------------------------------------------------------------

def _unary(prim, derivative):
    """d prim(x) / dx as a function of x and y = prim(x)."""
    defvjp(prim)(lambda cts, x, outputs, **params: [cts[0] * derivative(x, outputs[0], **params)])


_unary(P.neg, lambda x, y: -1.0)
_unary(P.exp, lambda x, y: y)
_unary(P.log, lambda x, y: P.reciprocal(x))
_unary(P.sqrt, lambda x, y: 0.5 / y)
_unary(P.abs, lambda x, y: P.sign(x))
_unary(P.sin, lambda x, y: P.cos(x))
_unary(P.cos, lambda x, y: -P.sin(x))
_unary(P.tanh, lambda x, y: 1.0 - y * y)
_unary(P.erf, lambda x, y: float(2.0 / np.sqrt(np.pi)) * P.exp(-(x * x)))
_unary(P.reciprocal, lambda x, y: -(y * y))
_unary(P.sigmoid, lambda x, y: y * (1.0 - y))
_unary(P.relu, lambda x, y: _float(P.greater(x, 0.0)))
_unary(P.softplus, lambda x, y: P.sigmoid(x))
_unary(P.softsign, lambda x, y: 1.0 / ((1.0 + P.abs(x)) * (1.0 + P.abs(x))))
_unary(P.elu, lambda x, y, alpha=1.0: _select(P.greater(x, 0.0), 1.0, y + alpha))
_unary(P.leaky_relu, lambda x, y, alpha=0.01: _select(P.greater(x, 0.0), 1.0, alpha))
_unary(P.selu, lambda x, y, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875:
       _select(P.greater(x, 0.0), gamma, alpha * gamma * P.exp(x)))
_unary(P.hard_sigmoid, lambda x, y, alpha=0.2, beta=0.5:
       alpha * _float(P.logical_and(P.greater(y, 0.0), P.less(y, 1.0))))
_unary(P.clip, lambda x, y, min, max: _float(P.logical_and(P.greater_equal(x, min), P.greater_equal(max, x))))


@defvjp(P.cast)
def _cast(cts, x, outputs, dtype):
    return [cts[0] if x.dtype.startswith("float") else None]


def _binary(prim, dx, dy):
    @defvjp(prim)
    def rule(cts, x, y, outputs):
        g, out = cts[0], outputs[0]
        return [sum_to(dx(g, x, y, out), x.shape), sum_to(dy(g, x, y, out), y.shape)]


_binary(P.add, lambda g, x, y, o: g, lambda g, x, y, o: g)
_binary(P.sub, lambda g, x, y, o: g, lambda g, x, y, o: -g)
_binary(P.mul, lambda g, x, y, o: g * y, lambda g, x, y, o: g * x)
_binary(P.div, lambda g, x, y, o: g / y, lambda g, x, y, o: -(g * o / y))
_binary(P.pow, lambda g, x, y, o: g * y * P.pow(x, y - 1.0),
        lambda g, x, y, o: g * o * P.log(P.maximum(x, 1e-30)))
# the winner takes the cotangent (the first operand on ties)
_binary(P.maximum, lambda g, x, y, o: g * _float(P.greater_equal(x, y)), lambda g, x, y, o: g * _float(P.less(x, y)))
_binary(P.minimum, lambda g, x, y, o: g * _float(P.greater_equal(y, x)), lambda g, x, y, o: g * _float(P.greater(x, y)))


@defvjp(P.where)
def _where(cts, c, x, y, outputs):
    g = cts[0]
    return [None, sum_to(_select(c, g, 0.0), x.shape), sum_to(_select(c, 0.0, g), y.shape)]


# ---- structure -------------------------------------------------------------------------------------

@defvjp(P.transpose)
def _transpose(cts, x, outputs, perm):
    return [P.transpose(cts[0], perm=P.inverse(perm))]


@defvjp(P.reshape)
def _reshape(cts, x, outputs, shape):
    if sum(d is None for d in x.shape) <= 1 and x.shape[1:].count(None) == 0:
        return [P.reshape(cts[0], shape=(-1, *x.shape[1:]))]  # static but for the batch
    return [P.reshape_like(cts[0], x)]


@defvjp(P.reshape_like)
def _reshape_like(cts, x, like, outputs):
    return [P.reshape_like(cts[0], x), None]


@defvjp(P.concat)
def _concat(cts, *xs, outputs, axis):
    axis %= outputs[0].rank
    out, start = [], 0
    for x in xs:
        size = x.shape[axis]
        if size is None:
            raise ShapeError("the gradient of a concatenation needs known sizes along its axis")
        out.append(P.slice_(cts[0], axis=axis, start=start, stop=start + size))
        start += size
    return out


@defvjp(P.slice_)
def _slice(cts, x, outputs, axis, start, stop, step=1):
    size = x.shape[axis]
    if size is None or step != 1:
        raise ShapeError("the gradient of a slice needs a known size and a step of 1")
    first, last, _ = slice(start, stop, step).indices(size)
    pads = [0] * (2 * x.rank)
    pads[axis], pads[x.rank + axis] = first, size - max(last, first)
    return [P.pad(cts[0], pads=tuple(pads))]


@defvjp(P.rev)
def _rev(cts, x, outputs, axis):
    return [P.rev(cts[0], axis=axis)]


@defvjp(P.tile)
def _tile(cts, x, outputs, reps):
    g = cts[0]
    # (r0*d0, r1*d1, ...) -> (r0, d0, r1, d1, ...) summed over the r axes
    split = []
    for r, d in zip(reps, x.shape):
        split += [r, 0 if d is None else d]
    if None in x.shape and any(r != 1 for r, d in zip(reps, x.shape) if d is None):
        raise ShapeError("the gradient of tiling an unknown dimension is not supported")
    g = P.reshape(g, shape=tuple(split))
    g = P.reduce_sum(g, axes=tuple(range(0, 2 * x.rank, 2)), keepdims=False)
    return [g]


@defvjp(P.pad)
def _pad(cts, x, outputs, pads):
    g = cts[0]
    for axis in range(x.rank):
        if pads[axis] or pads[axis + x.rank]:
            stop = g.shape[axis] - pads[axis + x.rank] if g.shape[axis] is not None else -pads[axis + x.rank]
            g = P.slice_(g, axis=axis, start=pads[axis], stop=stop)
    return [g]


@defvjp(P.expand_like)
def _expand_like(cts, x, like, outputs):
    return [sum_to(cts[0], x.shape), None]


@defvjp(P.gather)
def _gather(cts, table, indices, outputs):
    return [P.scatter_add_rows(table, indices, cts[0]), None]


# ---- reductions -----------------------------------------------------------------------------------

def _unreduce(g: Var, x: Var, axes, keepdims: bool) -> Var:
    axes = P._axes(axes, x.rank)
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


@defvjp(P.reduce_sum)
def _reduce_sum(cts, x, outputs, axes, keepdims):
    return [_unreduce(cts[0], x, axes, keepdims)]


@defvjp(P.reduce_mean)
def _reduce_mean(cts, x, outputs, axes, keepdims):
    sizes = [x.shape[a] for a in P._axes(axes, x.rank)]
    if None in sizes:  # the batch axis: divide by its run-time size
        count = P.reduce_sum(P.reshape(x, shape=(0, -1)) * 0.0 + 1.0, axes=(0,), keepdims=False)
        count = P.reduce_max(count, axes=(0,), keepdims=False) * float(np.prod([s for s in sizes if s is not None]))
        return [_unreduce(cts[0], x, axes, keepdims) / count]
    return [_unreduce(cts[0], x, axes, keepdims) / float(np.prod(sizes))]


@defvjp(P.reduce_max)
def _reduce_max(cts, x, outputs, axes, keepdims):
    y = outputs[0] if keepdims else P.reshape(outputs[0], shape=_kept_shape(outputs[0], x, P._axes(axes, x.rank)))
    hit = _float(P.equal(x, y))
    ties = P.reduce_sum(hit, axes=axes, keepdims=True)  # ties share the cotangent, as TensorFlow does
    return [_unreduce(cts[0], x, axes, keepdims) * (hit / ties)]


@defvjp(P.softmax)
def _softmax(cts, x, outputs, axis):
    y, g = outputs[0], cts[0]
    return [y * (g - P.reduce_sum(g * y, axes=(axis,), keepdims=True))]


@defvjp(P.log_softmax)
def _log_softmax(cts, x, outputs, axis):
    g = cts[0]
    return [g - P.exp(outputs[0]) * P.reduce_sum(g, axes=(axis,), keepdims=True)]


# ---- linear algebra and windows ------------------------------------------------------------------

def _swap_last(v: Var) -> Var:
    return P.transpose(v, perm=tuple(range(v.rank - 2)) + (v.rank - 1, v.rank - 2))


@defvjp(P.matmul)
def _matmul(cts, a, b, outputs):
    g = cts[0]
    ga, gb = g @ _swap_last(b), _swap_last(a) @ g
    return [sum_to(ga, a.shape), sum_to(gb, b.shape)]


@defvjp(P.gemm)
def _gemm(cts, a, b, c=None, outputs=None):
    g = cts[0]
    return [g @ P.transpose(b, perm=(1, 0)), P.transpose(a, perm=(1, 0)) @ g,
            None if c is None else sum_to(g, c.shape)]


def explicit_pads(x: Var, kernel, strides, dilations, pads) -> tuple[int, ...]:
    """ONNX SAME_UPPER (pads None) as explicit pads, from the static spatial sizes."""
    if pads is not None:
        return tuple(pads)
    before, after = [], []
    for size, k, s, d in zip(x.shape[2:], kernel, strides, dilations):
        if size is None:
            raise ShapeError("training a 'same'-padded window over a dimension of unknown size is not supported")
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return tuple(before + after)


@defvjp(P.conv)
def _conv(cts, x, w, b=None, *, outputs, strides, pads, dilations, group):
    g = cts[0]
    spatial = x.rank - 2
    kernel = w.shape[2:]
    pads = explicit_pads(x, kernel, strides, dilations, pads)
    y = outputs[0]
    out_pad = tuple(x.shape[2 + i] - ((y.shape[2 + i] - 1) * strides[i] - pads[i] - pads[i + spatial]
                                      + dilations[i] * (kernel[i] - 1) + 1) for i in range(spatial))
    gx = P.conv_transpose(g, w, strides=tuple(strides), pads=pads, dilations=tuple(dilations), group=group,
                          output_padding=out_pad)
    if group != 1:
        raise ShapeError("training grouped convolutions is not supported")
    # kernel cotangent: correlate the input with the output cotangent, the batch axis as channels
    swap = (1, 0) + tuple(range(2, 2 + spatial))
    gw = P.conv(P.transpose(x, perm=swap), P.transpose(g, perm=swap), strides=tuple(dilations), pads=pads,
                dilations=tuple(strides), group=1)
    for i, k in enumerate(kernel):  # strides that do not divide evenly overshoot the kernel: crop
        if gw.shape[2 + i] != k:
            gw = P.slice_(gw, axis=2 + i, start=0, stop=k)
    gw = P.transpose(gw, perm=swap)
    gb = None if b is None else P.reduce_sum(g, axes=(0,) + tuple(range(2, 2 + spatial)), keepdims=False)
    return [gx, gw, gb]


@defvjp(P.max_pool)
def _max_pool(cts, x, outputs, kernel_shape, strides, pads):
    """Each cotangent goes to the cell that won its window (MaxPool's indices output)."""
    indices = P.max_pool_indices(x, kernel_shape=kernel_shape, strides=strides, pads=pads)
    return [P.scatter_add_flat(x, indices, cts[0])]


@defvjp(P.avg_pool)
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
    out_pad = tuple(x.shape[2 + i] - ((y.shape[2 + i] - 1) * strides[i] - pads[i] - pads[i + spatial]
                                      + kernel_shape[i]) for i in range(spatial))
    return [P.conv_transpose(cts[0] / x.graph.const(counts, "float32"), ones, strides=tuple(strides), pads=pads,
                             dilations=(1,) * spatial, group=channels, output_padding=out_pad)]
