"""Index math along the time axis of (batch, time, ...) tensors, for Keras masks over sequences:
the order that moves each sequence's kept steps to the front, a running count, and a batched gather
with its VJP. No Loop: every op here is one or a few plain ONNX nodes."""
from __future__ import annotations

import numpy as np

from ..graph import Aval, Primitive
from .core import defvjp, zeros_like


def _kept_first_lower(ctx, mask):
    length = ctx.op("Shape", mask, start=1, end=2)  # (1,): the K of TopK
    steps = ctx.op("Range", ctx.const(np.int64(0)), ctx.op("Squeeze", length), ctx.const(np.int64(1)))
    key = ctx.op("Where", mask, steps, ctx.op("Add", steps, length))  # distinct keys: the order is stable
    return ctx.op("TopK", key, length, axis=1, largest=0, sorted=1, outputs=2)[1]


# mask (batch, time) bool -> int64 (batch, time): the kept steps' indices in order, then the masked ones'
kept_first = Primitive("kept_first", lambda mask: Aval(mask.shape, "int64"), _kept_first_lower,
                       impl=lambda mask: np.argsort(~mask, axis=1, kind="stable"))

# running sum along `axis`, from the last element backwards when `reverse`
cumsum = Primitive(
    "cumsum", lambda x, axis, reverse=False: x,
    lambda ctx, x, axis, reverse=False: ctx.op("CumSum", x, ctx.const(np.int64(axis)), reverse=int(reverse)),
    impl=lambda x, axis, reverse=False: (np.flip(np.cumsum(np.flip(x, axis), axis=axis, dtype=x.dtype), axis)
                                         if reverse else np.cumsum(x, axis=axis, dtype=x.dtype)))


@defvjp(cumsum)
def _cumsum(cts, x, outputs, axis, reverse=False):
    return [cumsum(cts[0], axis=axis, reverse=not reverse)]


def _along_time(idx: np.ndarray, rank: int) -> np.ndarray:
    return idx.reshape(idx.shape + (1,) * (rank - 2))


# x (batch, time, ...), idx (batch, steps) int64 -> (batch, steps, ...): out[b, s] = x[b, idx[b, s]]
gather_steps = Primitive(
    "gather_steps", lambda x, idx: Aval(idx.shape + x.shape[2:], x.dtype),
    lambda ctx, x, idx: ctx.op("GatherND", x, ctx.op("Unsqueeze", idx, ctx.ints([-1])), batch_dims=1),
    impl=lambda x, idx: np.take_along_axis(x, _along_time(idx, x.ndim), axis=1))


@defvjp(gather_steps)
def _gather_steps(cts, x, idx, outputs):
    return [scatter_add_steps(x, idx, cts[0], rank=x.rank), None]


def _scatter_add_steps_lower(ctx, like, idx, rows, rank):
    spread = ctx.op("Unsqueeze", idx, ctx.ints(list(range(2, rank)))) if rank > 2 else idx
    at = ctx.op("Expand", spread, ctx.op("Shape", rows))
    return ctx.op("ScatterElements", zeros_like(ctx, like), at, rows, axis=1, reduction="add")


def _scatter_add_steps_impl(like, idx, rows, rank):
    out = np.zeros_like(like)
    np.add.at(out, (np.arange(len(idx))[:, None], idx), rows)
    return out


# like (batch, time, ...), idx (batch, steps), rows (batch, steps, ...) -> zeros like `like` with each
# row added at its step: the transpose of gather_steps
scatter_add_steps = Primitive("scatter_add_steps", lambda like, idx, rows, rank: like, _scatter_add_steps_lower,
                              impl=_scatter_add_steps_impl)
