"""Every primitive, registered once: shape/dtype rule, ONNX lowering, numpy impl (for folding
constants) and layout rewrite, side by side. Each primitive's `vjp` slot is where autograd writes
its vector-Jacobian product in terms of other primitives, next to its lowering:

    exp = pointwise("exp", "Exp", np.exp)                       # shape rule, lowering, numpy impl
    exp.vjp = lambda cts, x, outputs: [cts[0] * outputs[0]]   # d exp(x) = exp(x) dx

Layouts are ONNX's: conv and pooling take channels-first tensors; layer expansions transpose
around them and the rewrite rules below remove the transposes that cancel.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ...ir.base import ShapeError
from .graph import Aval, Primitive, Var

INT64_MIN = np.iinfo(np.int64).min

# ---- shape rules -------------------------------------------------------------------------


def broadcast_shapes(*shapes: tuple[int | None, ...]) -> tuple[int | None, ...]:
    rank = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (rank - len(s)) + tuple(s) for s in shapes]):
        known = {d for d in dims if d not in (None, 1)}
        if len(known) > 1:
            raise ShapeError(f"shapes {' and '.join(map(str, shapes))} do not broadcast")
        out.append(known.pop() if known else None if None in dims else 1)
    return tuple(out)


def same(x: Aval, *_, **__) -> Aval:
    return x


def elementwise(*xs: Aval, **_) -> Aval:
    dtypes = {x.dtype for x in xs}
    if len(dtypes) > 1:
        raise TypeError(f"elementwise operands of different dtypes: {sorted(dtypes)}")
    return Aval(broadcast_shapes(*(x.shape for x in xs)), xs[0].dtype)


def comparison(*xs: Aval) -> Aval:
    return Aval(elementwise(*xs).shape, "bool")


def _axes(axes, rank: int) -> list[int]:
    return sorted(a % rank for a in axes)


def _window(size, kernel, stride, dilation, pad) -> int | None:
    """Output length of a sliding window; pad None means ONNX SAME_UPPER (TF 'same')."""
    if size is None:
        return None
    if pad is None:
        return -(-size // stride)
    return (size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1


def _spatial(x: Aval, kernel, strides, pads, dilations) -> list[int | None]:
    n = len(kernel)
    pairs = [None] * n if pads is None else list(zip(pads[:n], pads[n:]))
    return [_window(s, k, st, d, p) for s, k, st, d, p in zip(x.shape[2:], kernel, strides, dilations, pairs)]


# ---- layout rewrites ------------------------------------------------------------------------


def transposed(v: Var | None) -> tuple[Var, tuple[int, ...]] | None:
    """(y, perm) when v = transpose(y, perm)."""
    if v is not None and v.eqn is not None and v.eqn.prim is transpose:
        return v.eqn.inputs[0], v.eqn.params["perm"]
    return None


def free_transpose(x: Var, perm: tuple[int, ...]) -> Var | None:
    """transpose(x, perm) if it costs no node (identity, or undoing x's own transpose); else None."""
    if tuple(perm) == tuple(range(x.rank)):
        return x
    t = transposed(x)
    if t is not None and tuple(t[1][p] for p in perm) == tuple(range(x.rank)):
        return t[0]
    return None


def inverse(perm) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _compose_transposes(x: Var, perm) -> Var | None:
    if tuple(perm) == tuple(range(x.rank)):
        return x
    t = transposed(x)
    return transpose(t[0], perm=tuple(t[1][p] for p in perm)) if t else None


def _sink_elementwise(prim: Primitive) -> Callable:
    """op(transpose(a, p), transpose(b, p)) = transpose(op(a, b), p); scalars broadcast either way,
    other constants are transposed to match (folded away)."""
    def rewrite(*xs, **params):
        perms = {transposed(x)[1] for x in xs if transposed(x)}
        if len(perms) != 1:
            return None
        perm = perms.pop()
        rank, inv = len(perm), inverse(perm)
        ins = []
        for x in xs:
            t = transposed(x)
            if t is not None:
                ins.append(t[0])
            elif int(np.prod([d or 0 for d in x.shape])) == 1:
                ins.append(x)
            elif x.is_const:
                ins.append(transpose(reshape(x, shape=(1,) * (rank - x.rank) + x.shape), perm=inv))
            else:
                return None
        return transpose(prim(*ins, **params), perm=perm)
    return rewrite


def _sink_reduce(prim: Primitive) -> Callable:
    def rewrite(x, axes, keepdims):
        t = transposed(x)
        if t is None:
            return None
        y, perm = t
        axes = _axes(axes, x.rank)
        out = prim(y, axes=tuple(sorted(perm[a] for a in axes)), keepdims=keepdims)
        if keepdims:
            return transpose(out, perm=perm)
        kept = [perm[i] for i in range(x.rank) if i not in axes]
        return transpose(out, perm=tuple(sorted(kept).index(k) for k in kept))
    return rewrite


def _sink_axis(prim: Primitive) -> Callable:
    """Ops with one `axis` (softmax, concat): apply to the untransposed tensors on the mapped axis."""
    def rewrite(*xs, axis):
        ts = [transposed(x) for x in xs]
        if not all(ts) or len({t[1] for t in ts}) != 1:
            return None
        perm = ts[0][1]
        return transpose(prim(*[t[0] for t in ts], axis=perm[axis % len(perm)]), perm=perm)
    return rewrite


# ---- lowering helpers -------------------------------------------------------------------------


def onnx_op(op_type: str, outputs: int = 1) -> Callable:
    """Lowering to one ONNX node whose attributes are the primitive's params."""
    return lambda ctx, *xs, **attrs: ctx.op(op_type, *xs, outputs=outputs, **attrs)


def pointwise(name: str, lower: str | Callable, impl: Callable | None = None, shape: Callable = elementwise):
    """An elementwise primitive (lowered to the ONNX op of that name, or by `lower`); transposes
    sink through it."""
    prim = Primitive(name, shape, onnx_op(lower) if isinstance(lower, str) else lower, impl)
    prim.rewrite = _sink_elementwise(prim)
    return prim


# ---- elementwise ------------------------------------------------------------------------------

neg = pointwise("neg", "Neg", np.negative)
exp = pointwise("exp", "Exp", np.exp)
log = pointwise("log", "Log", np.log)
sqrt = pointwise("sqrt", "Sqrt", np.sqrt)
abs = pointwise("abs", "Abs", np.abs)
sin = pointwise("sin", "Sin", np.sin)
cos = pointwise("cos", "Cos", np.cos)
tanh = pointwise("tanh", "Tanh", np.tanh)
erf = pointwise("erf", "Erf")
floor = pointwise("floor", "Floor", np.floor)
ceil = pointwise("ceil", "Ceil", np.ceil)
sign = pointwise("sign", "Sign", np.sign)
reciprocal = pointwise("reciprocal", "Reciprocal", np.reciprocal)
sigmoid = pointwise("sigmoid", "Sigmoid")
relu = pointwise("relu", "Relu")
softplus = pointwise("softplus", "Softplus")
softsign = pointwise("softsign", "Softsign")
selu = pointwise("selu", "Selu")  # ONNX's default alpha and gamma are Keras's constants
elu = pointwise("elu", "Elu")  # alpha
leaky_relu = pointwise("leaky_relu", "LeakyRelu")  # alpha
hard_sigmoid = pointwise("hard_sigmoid", "HardSigmoid")  # alpha (the slope), beta
clip = pointwise("clip", lambda ctx, x, min, max: ctx.op("Clip", x, ctx.const(np.float32(min)),
                                                         ctx.const(np.float32(max))),
                 lambda x, min, max: np.clip(x, min, max))  # min, max: numbers
cast = pointwise("cast", lambda ctx, x, dtype: ctx.op("Cast", x, to=ctx.dtype(dtype)),
                 lambda x, dtype: x.astype(dtype), shape=lambda x, dtype: Aval(x.shape, dtype))

add = pointwise("add", "Add", np.add)
sub = pointwise("sub", "Sub", np.subtract)
mul = pointwise("mul", "Mul", np.multiply)
div = pointwise("div", "Div", np.divide)
pow = pointwise("pow", "Pow", np.power)
maximum = pointwise("maximum", "Max", np.maximum)
minimum = pointwise("minimum", "Min", np.minimum)
logical_and = pointwise("logical_and", "And", np.logical_and, shape=comparison)
equal = pointwise("equal", "Equal", np.equal, shape=comparison)
ne = pointwise("ne", lambda ctx, a, b: ctx.op("Not", ctx.op("Equal", a, b)), np.not_equal, shape=comparison)
greater = pointwise("greater", "Greater", np.greater, shape=comparison)
greater_equal = pointwise("greater_equal", "GreaterOrEqual", np.greater_equal, shape=comparison)
less = pointwise("less", "Less", np.less, shape=comparison)
where = pointwise("where", "Where", np.where,
                  shape=lambda c, a, b: Aval(broadcast_shapes(c.shape, a.shape, b.shape), a.dtype))

# ---- structure ----------------------------------------------------------------------------


def _transpose_shape(x, perm):
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"{perm} is not a permutation of {x.rank} axes")
    return Aval(tuple(x.shape[p] for p in perm), x.dtype)


transpose = Primitive("transpose", _transpose_shape, onnx_op("Transpose"), lambda x, perm: np.transpose(x, perm),
                      _compose_transposes)


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


reshape = Primitive("reshape", _reshape_shape, impl=_reshape_impl)
reshape.lower = lambda ctx, x, shape: ctx.op("Reshape", x, ctx.ints(shape))


def _concat_shape(*xs, axis):
    axis %= xs[0].rank
    sizes = [x.shape[axis] for x in xs]
    shape = list(broadcast_shapes(*[x.shape[:axis] + (1,) + x.shape[axis + 1:] for x in xs]))
    shape[axis] = None if None in sizes else sum(sizes)
    return Aval(tuple(shape), xs[0].dtype)


concat = Primitive("concat", _concat_shape, onnx_op("Concat"), lambda *xs, axis: np.concatenate(xs, axis))
concat.rewrite = _sink_axis(concat)


def _slice_shape(x, axis, start, stop, step=1):
    shape = list(x.shape)
    if shape[axis] is not None:
        shape[axis] = len(range(*slice(start, stop, step).indices(shape[axis])))
    return Aval(tuple(shape), x.dtype)


def _slice_impl(x, axis, start, stop, step=1):
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop, step)
    return x[tuple(index)]


slice_ = Primitive("slice", _slice_shape, impl=_slice_impl)
slice_.lower = lambda ctx, x, axis, start, stop, step=1: ctx.op(
    "Slice", x, ctx.ints([start]), ctx.ints([stop]), ctx.ints([axis]), ctx.ints([step]))


def _rev_rewrite(x, axis):
    inner = x.eqn if x.eqn is not None and x.eqn.prim is rev else None
    return inner.inputs[0] if inner is not None and inner.params["axis"] == axis else None


rev = Primitive("rev", same, impl=lambda x, axis: np.flip(x, axis), rewrite=_rev_rewrite)
rev.lower = lambda ctx, x, axis: ctx.op("Slice", x, ctx.ints([-1]), ctx.ints([INT64_MIN]), ctx.ints([axis]),
                                        ctx.ints([-1]))

tile = Primitive("tile", lambda x, reps: Aval(tuple(None if d is None else d * r for d, r in zip(x.shape, reps)),
                                               x.dtype), impl=np.tile)
tile.lower = lambda ctx, x, reps: ctx.op("Tile", x, ctx.ints(reps))

gather = Primitive("gather", lambda table, idx: Aval(idx.shape + table.shape[1:], table.dtype), onnx_op("Gather"))

# ---- reductions ---------------------------------------------------------------------------


def _reduce_shape(x, axes, keepdims):
    axes = _axes(axes, x.rank)
    return Aval(tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keepdims or i not in axes), x.dtype)


def reduction(name: str, op_type: str, impl: Callable) -> Primitive:
    def lower(ctx, x, axes, keepdims):
        if ctx.opset >= 18 or op_type == "ReduceSum":  # axes became an input in opset 18 (ReduceSum: 13)
            return ctx.op(op_type, x, ctx.ints(axes), keepdims=int(keepdims))
        return ctx.op(op_type, x, axes=list(axes), keepdims=int(keepdims))

    prim = Primitive(name, _reduce_shape, lower, lambda x, axes, keepdims: impl(x, tuple(axes), keepdims=keepdims))
    prim.rewrite = _sink_reduce(prim)
    return prim


reduce_sum = reduction("reduce_sum", "ReduceSum", np.sum)
reduce_mean = reduction("reduce_mean", "ReduceMean", np.mean)
reduce_max = reduction("reduce_max", "ReduceMax", np.max)

softmax = Primitive("softmax", same, onnx_op("Softmax"))
softmax.rewrite = _sink_axis(softmax)
log_softmax = Primitive("log_softmax", same, onnx_op("LogSoftmax"))
log_softmax.rewrite = _sink_axis(log_softmax)


def _argmax_shape(x, axis, keepdims):
    return Aval(_reduce_shape(x, (axis,), keepdims).shape, "int64")


argmax = Primitive("argmax", _argmax_shape, lambda ctx, x, axis, keepdims: ctx.op(
    "ArgMax", x, axis=axis, keepdims=int(keepdims)))

# ---- linear algebra and windows (channels-first, as in ONNX) ---------------------------------


def _matmul_shape(a, b):
    if a.shape[-1] is not None and b.shape[-2] is not None and a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul of {a.shape} and {b.shape}")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return Aval(batch + (a.shape[-2], b.shape[-1]), a.dtype)


matmul = Primitive("matmul", _matmul_shape, onnx_op("MatMul"), np.matmul)

# Fused: a @ b + c on 2-D tensors in one node (Dense's inference lowering).
gemm = Primitive("gemm", lambda a, b, c=None: Aval((a.shape[0], b.shape[1]), a.dtype), onnx_op("Gemm"))


def _conv_shape(x, w, b=None, *, strides, pads, dilations, group):
    if x.shape[1] is not None and x.shape[1] != w.shape[1] * group:
        raise ShapeError(f"conv of {x.shape} with a kernel {w.shape} in {group} group(s)")
    return Aval((x.shape[0], w.shape[0], *_spatial(x, w.shape[2:], strides, pads, dilations)), x.dtype)


def _windowed(op_type: str, **fixed) -> Callable:
    def lower(ctx, *xs, pads, **attrs):
        where = {"auto_pad": "SAME_UPPER"} if pads is None else {"pads": list(pads)}
        return ctx.op(op_type, *xs, **where, **attrs, **fixed)
    return lower


conv = Primitive("conv", _conv_shape, _windowed("Conv"))  # x (N, C, ...), w (F, C/group, ...), bias (F,)


def _pool_shape(x, kernel_shape, strides, pads):
    return Aval((*x.shape[:2], *_spatial(x, kernel_shape, strides, pads, [1] * len(kernel_shape))), x.dtype)


max_pool = Primitive("max_pool", _pool_shape, _windowed("MaxPool"))
# Keras averages over the cells inside the input only: ONNX's count_include_pad=0.
avg_pool = Primitive("avg_pool", _pool_shape, _windowed("AveragePool", count_include_pad=0))

# ---- fused inference ops ----------------------------------------------------------------------

# x (N, C, ...), then scale, bias, mean, variance (C,): ONNX BatchNormalization in inference mode.
batch_norm = Primitive("batch_norm", same, onnx_op("BatchNormalization"))
# Normalizes over the axes from `axis` to the last one; then scale and (optional) bias.
layer_norm = Primitive("layer_norm", same, onnx_op("LayerNormalization"))


def recurrent(name: str, op_type: str, n_outputs: int) -> Primitive:
    """ONNX RNN/GRU/LSTM: x (T, N, I), W, R, B, sequence_lens -> Y (T, D, N, H), Y_h[, Y_c] (D, N, H)."""
    def shape(x, w, r, b=None, lens=None, *, hidden_size, direction, **_):
        d = 2 if direction == "bidirectional" else 1
        state = Aval((d, x.shape[1], hidden_size), x.dtype)
        return [Aval((x.shape[0], d, x.shape[1], hidden_size), x.dtype)] + [state] * (n_outputs - 1)

    return Primitive(name, shape, onnx_op(op_type, n_outputs), multiple_results=True)


rnn = recurrent("rnn", "RNN", 2)
gru = recurrent("gru", "GRU", 2)
lstm = recurrent("lstm", "LSTM", 3)

# ---- used by gradients (derivatives.py) ----------------------------------------------------------

pad = Primitive("pad", lambda x, pads: Aval(tuple(None if d is None else d + pads[i] + pads[i + x.rank]
                                                   for i, d in enumerate(x.shape)), x.dtype),
                impl=lambda x, pads: np.pad(x, list(zip(pads[:x.ndim], pads[x.ndim:]))))
pad.lower = lambda ctx, x, pads: ctx.op("Pad", x, ctx.ints(pads))

# Reshape `x` to the run-time shape of `like` (a cotangent back to its operand's shape).
reshape_like = Primitive("reshape_like", lambda x, like: Aval(like.shape, x.dtype))
reshape_like.lower = lambda ctx, x, like: ctx.op("Reshape", x, ctx.op("Shape", like))

# Broadcast `x` to the run-time shape of `like`.
expand_like = Primitive("expand_like", lambda x, like: Aval(like.shape, x.dtype))
expand_like.lower = lambda ctx, x, like: ctx.op("Expand", x, ctx.op("Shape", like))


def _zeros_like(ctx, x):
    return ctx.op("ConstantOfShape", ctx.op("Shape", x),
                  value=onnx_tensor(np.zeros(1, np.float32)))


def onnx_tensor(array: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(array)


# table (V, D), indices (...), rows (..., D) -> zeros like table with the rows added at the indices
scatter_add_rows = Primitive("scatter_add_rows", lambda table, idx, rows: table)
scatter_add_rows.lower = lambda ctx, table, idx, rows: ctx.op(
    "ScatterND", _zeros_like(ctx, table), ctx.op("Unsqueeze", ctx.op("Cast", idx, to=ctx.dtype("int64")), ctx.ints([-1])),
    rows, reduction="add")

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
    out = ctx.op("ScatterElements", _zeros_like(ctx, per_sample), flat_idx,
                 ctx.op("Reshape", values, ctx.ints([0, -1])), axis=1, reduction="add")
    return ctx.op("Reshape", out, ctx.op("Shape", x))


scatter_add_flat.lower = _scatter_add_flat


def _conv_transpose_shape(g, w, *, strides, pads, dilations, group, output_padding):
    n = g.rank - 2
    spatial = [None if s is None else (s - 1) * strides[i] - pads[i] - pads[i + n] + dilations[i] * (w.shape[2 + i] - 1)
               + output_padding[i] + 1 for i, s in enumerate(g.shape[2:])]
    return Aval((g.shape[0], w.shape[1] * group, *spatial), g.dtype)


conv_transpose = Primitive("conv_transpose", _conv_transpose_shape, onnx_op("ConvTranspose"))
