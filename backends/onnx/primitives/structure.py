"""Shape and layout primitives (transpose, reshape, concat, slice, pad, tile, gather and their
cotangent helpers) with their VJPs."""
from __future__ import annotations

import math

import numpy as np

from ....ir.base import ShapeError
from ..graph import Aval, Primitive
from .. import primitives as P  # the other families, looked up when a rule runs
from .core import broadcast_shapes, defvjp, onnx_op, onnx_tensor, same, zeros_like
from .layout import compose_transposes, inverse, sink_axis, transposed

INT64_MIN = np.iinfo(np.int64).min
INT64_MAX = np.iinfo(np.int64).max


def _transpose_shape(x, perm):
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"{perm} is not a permutation of {x.rank} axes")
    return Aval(tuple(x.shape[p] for p in perm), x.dtype)


transpose = Primitive("transpose", _transpose_shape, onnx_op("Transpose"), lambda x, perm: np.transpose(x, perm),
                      compose_transposes)


@defvjp(transpose)
def _transpose(cts, x, outputs, perm):
    return [transpose(cts[0], perm=inverse(perm))]


def _reshape_shape(x, shape):
    """ONNX Reshape: 0 copies the input's dimension at that index, one -1 takes what is left."""
    out = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    if -1 in out:
        copied = {i for i, d in enumerate(shape) if d == 0}
        rest = [d for i, d in enumerate(x.shape) if i not in copied]  # what -1 and the given sizes share
        given = [d for i, d in enumerate(shape) if i not in copied and d != -1]
        out[out.index(-1)] = None if None in rest else math.prod(rest) // math.prod(given)
    return Aval(tuple(out), x.dtype)


def _reshape_impl(x, shape):
    return np.reshape(x, [x.shape[i] if d == 0 else d for i, d in enumerate(shape)])


def _reshape_rewrite(x, shape):
    """Peephole: a reshape to the shape its operand has, or back to the shape the reshape before
    it started from, is no reshape (whichever layers the two came from: TimeDistributed's split
    then the next TimeDistributed's merge). Only where at most one size is unknown until run
    time, so that equal static shapes mean equal run-time shapes."""
    out = _reshape_shape(x.aval, shape).shape
    if out.count(None) > 1:
        return None
    for source in (x, x.eqn.inputs[0] if x.eqn is not None and x.eqn.prim is reshape else None):
        if source is not None and source.shape == out:
            return source
    return None


reshape = Primitive("reshape", _reshape_shape, impl=_reshape_impl, rewrite=_reshape_rewrite)
reshape.lower = lambda ctx, x, shape: ctx.op("Reshape", x, ctx.ints(shape))


@defvjp(reshape)
def _reshape(cts, x, outputs, shape):
    if sum(d is None for d in x.shape) <= 1 and x.shape[1:].count(None) == 0:
        return [reshape(cts[0], shape=(-1, *x.shape[1:]))]  # static but for the batch
    return [reshape_like(cts[0], x)]


# A new axis of size 1 at `axis` (a non-negative index into the result), whatever sizes are unknown.
unsqueeze = Primitive("unsqueeze", lambda x, axis: Aval((*x.shape[:axis], 1, *x.shape[axis:]), x.dtype),
                      impl=lambda x, axis: np.expand_dims(x, axis))
unsqueeze.lower = lambda ctx, x, axis: ctx.op("Unsqueeze", x, ctx.ints([axis]))


@defvjp(unsqueeze)
def _unsqueeze(cts, x, outputs, axis):
    return [reshape_like(cts[0], x)]


# Reshape `x` to the run-time shape of `like` (a cotangent back to its operand's shape).
reshape_like = Primitive("reshape_like", lambda x, like: Aval(like.shape, x.dtype))
reshape_like.lower = lambda ctx, x, like: ctx.op("Reshape", x, ctx.op("Shape", like))


@defvjp(reshape_like)
def _reshape_like(cts, x, like, outputs):
    return [reshape_like(cts[0], x), None]


# Broadcast `x` to the run-time shape of `like`.
expand_like = Primitive("expand_like", lambda x, like: Aval(like.shape, x.dtype))
expand_like.lower = lambda ctx, x, like: ctx.op("Expand", x, ctx.op("Shape", like))


@defvjp(expand_like)
def _expand_like(cts, x, like, outputs):
    return [P.sum_to(cts[0], x.shape), None]


def _zeros_lower(ctx, like, shape):
    dims = [ctx.op("Shape", like, start=i, end=i + 1) if d == 0 else ctx.ints([d]) for i, d in enumerate(shape)]
    return ctx.op("ConstantOfShape", ctx.op("Concat", *dims, axis=0) if len(dims) > 1 else dims[0],
                  value=onnx_tensor(np.zeros(1, np.float32)))


# float32 zeros of `shape`, where a 0 copies `like`'s dimension at that index (a batch known at run time);
# `like` receives no gradient (autograd.ZERO_GRADIENT)
zeros = Primitive("zeros", lambda like, shape: Aval(tuple(like.shape[i] if d == 0 else d for i, d in enumerate(shape)),
                                                     "float32"), _zeros_lower)


def _concat_shape(*xs, axis):
    axis %= xs[0].rank
    sizes = [x.shape[axis] for x in xs]
    shape = list(broadcast_shapes(*[x.shape[:axis] + (1,) + x.shape[axis + 1:] for x in xs]))
    shape[axis] = None if None in sizes else sum(sizes)
    return Aval(tuple(shape), xs[0].dtype)


concat = Primitive("concat", _concat_shape, onnx_op("Concat"), lambda *xs, axis: np.concatenate(xs, axis))
concat.rewrite = sink_axis(concat)


@defvjp(concat)
def _concat(cts, *xs, outputs, axis):
    axis %= outputs[0].rank
    out, start = [], 0
    for x in xs:
        size = x.shape[axis]
        if size is None:
            raise ShapeError("the gradient of a concatenation needs known sizes along its axis")
        out.append(slice_(cts[0], axis=axis, start=start, stop=start + size))
        start += size
    return out


def _split_shape(x, axis, sizes):
    if x.shape[axis] is not None and x.shape[axis] != sum(sizes):
        raise ShapeError(f"{x.shape} does not split into {sizes} along axis {axis}")
    return [Aval(x.shape[:axis] + (s,) + x.shape[axis + 1:], x.dtype) for s in sizes]


def _split_impl(x, axis, sizes):
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


# x cut along `axis` into pieces of `sizes`: one node, and one Concat for the gradient where slices
# would pad each piece's cotangent to the whole and add them up
split = Primitive("split", _split_shape, lambda ctx, x, axis, sizes: ctx.op("Split", x, ctx.ints(sizes), axis=axis,
                                                                          outputs=len(sizes)),
                  _split_impl, multiple_results=True)


@defvjp(split)
def _split(cts, x, outputs, axis, sizes):
    pieces = [P.zeros(o, shape=tuple(0 if d is None else d for d in o.shape)) if c is None else c
              for c, o in zip(cts, outputs)]
    return [concat(*pieces, axis=axis)]


def _per_axis(axis, start, stop, step) -> list[tuple[int, int, int, int]]:
    """A slice's params, each a number or (a window over several axes in one node) a tuple."""
    if isinstance(axis, int):
        return [(axis, start, stop, step)]
    return list(zip(axis, start, stop, step))


def _slice_shape(x, axis, start, stop, step=1):
    shape = list(x.shape)
    for a, first, last, s in _per_axis(axis, start, stop, step):
        if shape[a] is not None:
            shape[a] = len(range(*slice(first, last, s).indices(shape[a])))
    return Aval(tuple(shape), x.dtype)


def _slice_impl(x, axis, start, stop, step=1):
    index = [slice(None)] * x.ndim
    for a, first, last, s in _per_axis(axis, start, stop, step):
        index[a] = slice(first, last, s)
    return x[tuple(index)]


def _slice_lower(ctx, x, axis, start, stop, step=1):
    axes, starts, stops, steps = zip(*_per_axis(axis, start, stop, step))
    return ctx.op("Slice", x, ctx.ints(starts), ctx.ints(stops), ctx.ints(axes), ctx.ints(steps))


slice_ = Primitive("slice", _slice_shape, _slice_lower, _slice_impl)


@defvjp(slice_)
def _slice(cts, x, outputs, axis, start, stop, step=1):
    pads = [0] * (2 * x.rank)
    for a, first, last, s in _per_axis(axis, start, stop, step):
        if x.shape[a] is None or s != 1:
            raise ShapeError("the gradient of a slice needs a known size and a step of 1")
        first, last, _ = slice(first, last, s).indices(x.shape[a])
        pads[a], pads[x.rank + a] = first, x.shape[a] - max(last, first)
    return [pad(cts[0], pads=tuple(pads))]


def _rev_rewrite(x, axis):
    inner = x.eqn if x.eqn is not None and x.eqn.prim is rev else None
    return inner.inputs[0] if inner is not None and inner.params["axis"] == axis else None


rev = Primitive("rev", same, impl=lambda x, axis: np.flip(x, axis), rewrite=_rev_rewrite)
rev.lower = lambda ctx, x, axis: ctx.op("Slice", x, ctx.ints([-1]), ctx.ints([INT64_MIN]), ctx.ints([axis]),
                                        ctx.ints([-1]))


@defvjp(rev)
def _rev(cts, x, outputs, axis):
    return [rev(cts[0], axis=axis)]


tile = Primitive("tile", lambda x, reps: Aval(tuple(None if d is None else d * r for d, r in zip(x.shape, reps)),
                                               x.dtype), impl=np.tile)
tile.lower = lambda ctx, x, reps: ctx.op("Tile", x, ctx.ints(reps))


@defvjp(tile)
def _tile(cts, x, outputs, reps):
    # each tiled axis r*d -> (r, d), summed over r; an untiled axis stays whole (an unknown one, such
    # as the batch, is copied by Reshape's 0 where it keeps its index, else taken by -1)
    split, summed = [], []
    for axis, (r, d) in enumerate(zip(reps, x.shape)):
        if r != 1:
            summed.append(len(split))
            split += [r, d]
        else:
            split.append(d if d is not None else 0 if len(split) == axis else -1)
    if None in split or split.count(-1) > 1:
        raise ShapeError("the gradient of tiling an unknown dimension is not supported")
    g = reshape(cts[0], shape=tuple(split))
    return [P.reduce_sum(g, axes=tuple(summed), keepdims=False) if summed else g]


pad = Primitive("pad", lambda x, pads: Aval(tuple(None if d is None else d + pads[i] + pads[i + x.rank]
                                                   for i, d in enumerate(x.shape)), x.dtype),
                impl=lambda x, pads: np.pad(x, list(zip(pads[:x.ndim], pads[x.ndim:]))))


def _pad_lower(ctx, x, pads):
    """Pad with its `axes` input, listing every axis. onnxruntime (1.31) fuses a Pad without one into
    a following MaxPool, whose own padding is -inf, not 0: wrong maxima (a zero-padded ResNet v2
    stem). And its transpose optimizer, pushing a Transpose through a Pad, permutes the pads as if
    they covered every axis and leaves `axes` alone: pads for fewer axes became an out-of-range
    Gather (training padded convs, whose kernel gradient pads a transposed input)."""
    return ctx.op("Pad", x, ctx.ints(list(pads)), "", ctx.ints(list(range(len(pads) // 2))))


pad.lower = _pad_lower


def _sink_pads(prim: Primitive):
    """prim(transpose(y, perm), pads) = transpose(prim(y, pads moved to y's axes), perm): a
    transpose between two channels-first windows then cancels (a ZeroPadding before a conv)."""
    def rewrite(x, pads):
        t = transposed(x)
        if t is None:
            return None
        y, perm = t
        n = len(perm)
        moved = [0] * (2 * n)
        for i, axis in enumerate(perm):
            moved[axis], moved[axis + n] = pads[i], pads[i + n]
        return P.transpose(prim(y, pads=tuple(moved)), perm=perm)
    return rewrite


pad.rewrite = _sink_pads(pad)


@defvjp(pad)
def _pad(cts, x, outputs, pads):
    return [crop(cts[0], pads=pads)]


def _crop_impl(x, pads):
    n = x.ndim
    return x[tuple(slice(pads[i], x.shape[i] - pads[i + n]) for i in range(n))]


def _crop_lower(ctx, x, pads):
    """One Slice over the cut axes; an end counted from the end, so sizes need not be known."""
    n = len(pads) // 2
    axes = [i for i in range(n) if pads[i] or pads[i + n]]
    return ctx.op("Slice", x, ctx.ints([pads[i] for i in axes]),
                  ctx.ints([-pads[i + n] if pads[i + n] else INT64_MAX for i in axes]), ctx.ints(axes))


# pad's inverse: cut pads[i] cells before and pads[i + rank] after each axis i
crop = Primitive("crop", lambda x, pads: Aval(tuple(None if d is None else d - pads[i] - pads[i + x.rank]
                                                    for i, d in enumerate(x.shape)), x.dtype),
                 _crop_lower, _crop_impl)


crop.rewrite = _sink_pads(crop)


@defvjp(crop)
def _crop(cts, x, outputs, pads):
    return [pad(cts[0], pads=pads)]


gather = Primitive("gather", lambda table, idx: Aval(idx.shape + table.shape[1:], table.dtype), onnx_op("Gather"))


@defvjp(gather)
def _gather(cts, table, indices, outputs):
    return [scatter_add_rows(table, indices, cts[0]), None]


# table (V, D), indices (...), rows (..., D) -> zeros like table with the rows added at the indices
scatter_add_rows = Primitive("scatter_add_rows", lambda table, idx, rows: table)
scatter_add_rows.lower = lambda ctx, table, idx, rows: ctx.op(
    "ScatterND", zeros_like(ctx, table), ctx.op("Unsqueeze", ctx.op("Cast", idx, to=ctx.dtype("int64")), ctx.ints([-1])),
    rows, reduction="add")


# ---- resizing ------------------------------------------------------------------------------------


def resize_matrix(size_in: int, size_out: int, mode: str) -> np.ndarray:
    """(size_out, size_in): each output cell as weights of input cells, as TF 2 resizes (half-pixel
    centres): 'linear' interpolates the two nearest cells (clamped at the edges), 'nearest' takes
    floor((out + 0.5) * in / out), which is ONNX's half_pixel rounded half up (round_prefer_ceil:
    floor(x + 0.5) of x = (out + 0.5) * in / out - 0.5), without the deprecated tf_half_pixel_for_nn."""
    scale = size_in / size_out
    m = np.zeros((size_out, size_in), np.float64)
    for o in range(size_out):
        if mode == "nearest":
            m[o, min(int(np.floor((o + 0.5) * scale)), size_in - 1)] = 1.0
            continue
        src = (o + 0.5) * scale - 0.5
        low = int(np.floor(src))
        frac = src - low
        m[o, min(max(low, 0), size_in - 1)] += 1.0 - frac
        m[o, min(max(low + 1, 0), size_in - 1)] += frac
    return m


_RESIZE_MODES = {"linear": {"mode": "linear", "coordinate_transformation_mode": "half_pixel"},
                 "nearest": {"mode": "nearest", "coordinate_transformation_mode": "half_pixel",
                             "nearest_mode": "round_prefer_ceil"}}


def _resize_shape(x, sizes, axes, mode):
    if any(x.shape[a] is None for a in axes):
        raise ShapeError("resizing needs known sizes along the resized axes")
    shape = list(x.shape)
    for a, s in zip(axes, sizes):
        shape[a] = s
    return Aval(tuple(shape), x.dtype)


def _resize_impl(x, sizes, axes, mode):
    for a, s in zip(axes, sizes):
        x = np.moveaxis(np.tensordot(resize_matrix(x.shape[a], s, mode), x, axes=(1, a)), 0, a).astype(x.dtype)
    return x


def _resize_rewrite(x, sizes, axes, mode):
    """Sink a transpose below (a resize between two channels-first convs stays channels-first)."""
    t = transposed(x)
    if t is None:
        return None
    y, perm = t
    return P.transpose(resize(y, sizes=sizes, axes=tuple(perm[a] for a in axes), mode=mode), perm=perm)


# x resized to `sizes` along `axes` (TF's half-pixel rules, see resize_matrix): one ONNX Resize
resize = Primitive("resize", _resize_shape, impl=_resize_impl, rewrite=_resize_rewrite)
resize.lower = lambda ctx, x, sizes, axes, mode: ctx.op("Resize", x, "", "", ctx.ints(sizes), axes=list(axes),
                                                         **_RESIZE_MODES[mode])


@defvjp(resize)
def _resize(cts, x, outputs, sizes, axes, mode):
    """A linear map per axis: the cotangent goes back through each interpolation matrix's transpose."""
    g = cts[0]
    for a, s in zip(axes, sizes):
        matrix = x.graph.const(resize_matrix(x.shape[a], s, mode).astype(np.float32))  # (out, in)
        last = tuple(i for i in range(g.rank) if i != a) + (a,)
        g = P.transpose(P.transpose(g, perm=last) @ matrix, perm=inverse(last))
    return [g]
