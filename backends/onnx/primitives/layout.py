"""Layout rewrites: transposes sink through the ops they commute with and cancel in pairs.

Layouts are ONNX's: conv and pooling take channels-first tensors; layer expansions transpose
around them and these rules remove the transposes that cancel.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..graph import Primitive, Var
from .. import primitives as P  # the other families, looked up when a rule runs
from .core import positive_axes


def transposed(v: Var | None) -> tuple[Var, tuple[int, ...]] | None:
    """(y, perm) when v = transpose(y, perm)."""
    if v is not None and v.eqn is not None and v.eqn.prim is P.transpose:
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


def compose_transposes(x: Var, perm) -> Var | None:
    if tuple(perm) == tuple(range(x.rank)):
        return x
    t = transposed(x)
    return P.transpose(t[0], perm=tuple(t[1][p] for p in perm)) if t else None


def sink_elementwise(prim: Primitive) -> Callable:
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
                ins.append(P.transpose(P.reshape(x, shape=(1,) * (rank - x.rank) + x.shape), perm=inv))
            else:
                return None
        return P.transpose(prim(*ins, **params), perm=perm)
    return rewrite


def sink_reduce(prim: Primitive) -> Callable:
    def rewrite(x, axes, keepdims):
        t = transposed(x)
        if t is None:
            return None
        y, perm = t
        axes = positive_axes(axes, x.rank)
        out = prim(y, axes=tuple(sorted(perm[a] for a in axes)), keepdims=keepdims)
        if keepdims:
            return P.transpose(out, perm=perm)
        kept = [perm[i] for i in range(x.rank) if i not in axes]
        return P.transpose(out, perm=tuple(sorted(kept).index(k) for k in kept))
    return rewrite


def sink_axis(prim: Primitive) -> Callable:
    """Ops with one `axis` (softmax, concat): apply to the untransposed tensors on the mapped axis."""
    def rewrite(*xs, axis):
        ts = [transposed(x) for x in xs]
        if not all(ts) or len({t[1] for t in ts}) != 1:
            return None
        perm = ts[0][1]
        return P.transpose(prim(*[t[0] for t in ts], axis=perm[axis % len(perm)]), perm=perm)
    return rewrite
