"""Matrix products with their VJPs."""
from __future__ import annotations

import numpy as np

from ....ir.base import ShapeError
from ..graph import Aval, Primitive, Var
from .. import primitives as P  # the other families, looked up when a rule runs
from .core import broadcast_shapes, defvjp, onnx_op


def _matmul_shape(a, b):
    if a.shape[-1] is not None and b.shape[-2] is not None and a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul of {a.shape} and {b.shape}")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return Aval(batch + (a.shape[-2], b.shape[-1]), a.dtype)


matmul = Primitive("matmul", _matmul_shape, onnx_op("MatMul"), np.matmul)


def _swap_last(v: Var) -> Var:
    return P.transpose(v, perm=tuple(range(v.rank - 2)) + (v.rank - 1, v.rank - 2))


@defvjp(matmul)
def _matmul(cts, a, b, outputs):
    g = cts[0]
    ga = g @ _swap_last(b)
    if b.rank == 2 and a.rank > 2 and None not in (a.shape[-1], g.shape[-1]):
        # a matrix applied to every row of a batch of them: one product over all the rows, not a
        # product per batch entry summed after (a large intermediate)
        rows = [P.reshape(v, shape=(-1, v.shape[-1])) for v in (a, g)]
        return [P.sum_to(ga, a.shape), P.transpose(rows[0], perm=(1, 0)) @ rows[1]]
    return [P.sum_to(ga, a.shape), P.sum_to(_swap_last(a) @ g, b.shape)]


# Fused: a @ b + c on 2-D tensors in one node (Dense's inference lowering).
gemm = Primitive("gemm", lambda a, b, c=None: Aval((a.shape[0], b.shape[1]), a.dtype), onnx_op("Gemm"))


@defvjp(gemm)
def _gemm(cts, a, b, c=None, outputs=None):
    g = cts[0]
    return [g @ P.transpose(b, perm=(1, 0)), P.transpose(a, perm=(1, 0)) @ g,
            None if c is None else P.sum_to(g, c.shape)]
