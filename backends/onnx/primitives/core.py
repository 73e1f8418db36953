"""What every primitive family shares: shape rules, the one-node lowering, and `defvjp`."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ....ir.base import ShapeError
from ..graph import Aval, Primitive


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


def positive_axes(axes, rank: int) -> list[int]:
    """Axes counted from 0, sorted (negative ones count from the end)."""
    return sorted(a % rank for a in axes)


def onnx_op(op_type: str, outputs: int = 1) -> Callable:
    """Lowering to one ONNX node whose attributes are the primitive's params."""
    return lambda ctx, *xs, **attrs: ctx.op(op_type, *xs, outputs=outputs, **attrs)


def defvjp(prim: Primitive):
    """Decorator: `fn(cts, *inputs, outputs=..., **params)` is `prim`'s vector-Jacobian product. It gets
    the cotangents of the outputs and returns one cotangent per input (None where an input takes
    none: integer indices, shapes), written in primitives, so the backward pass is traced, folded
    and lowered like the forward pass."""
    def register(fn):
        prim.vjp = fn
        return fn
    return register


def zeros_like(ctx, x):
    return ctx.op("ConstantOfShape", ctx.op("Shape", x), value=onnx_tensor(np.zeros(1, np.float32)))


def onnx_tensor(array: np.ndarray):
    from onnx import numpy_helper

    return numpy_helper.from_array(array)
