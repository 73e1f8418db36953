"""Elementwise primitives (unary, binary, comparisons, select) with their VJPs; transposes sink
through all of them."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..graph import Aval, Primitive, Var
from .core import broadcast_shapes, comparison, defvjp, elementwise, onnx_op
from .. import primitives as P  # the other families, looked up when a rule runs
from .layout import sink_elementwise


def pointwise(name: str, lower: str | Callable, impl: Callable | None = None, shape: Callable = elementwise):
    """An elementwise primitive (lowered to the ONNX op of that name, or by `lower`)."""
    prim = Primitive(name, shape, onnx_op(lower) if isinstance(lower, str) else lower, impl)
    prim.rewrite = sink_elementwise(prim)
    return prim


def as_float(v: Var) -> Var:
    return cast(v, dtype="float32")


def select(cond: Var, a, b) -> Var:
    """where(cond, a, b) with numbers taken as float32 (not the condition's bool)."""
    const = lambda v: v if isinstance(v, Var) else cond.graph.const(v, "float32")  # noqa: E731
    return where(cond, const(a), const(b))


def unary(name: str, lower: str | Callable, impl: Callable | None = None, *, derivative: Callable) -> Primitive:
    """A pointwise primitive of one operand; `derivative(x, y, **params)` is d prim(x) / dx as a
    function of x and y = prim(x)."""
    prim = pointwise(name, lower, impl)
    defvjp(prim)(lambda cts, x, outputs, **params: [cts[0] * derivative(x, outputs[0], **params)])
    return prim


def binary(name: str, op_type: str, impl: Callable, *, dx: Callable, dy: Callable) -> Primitive:
    """A broadcasting pointwise primitive of two operands; dx, dy(g, x, y, out) are the cotangents
    before undoing the broadcast."""
    prim = pointwise(name, op_type, impl)

    @defvjp(prim)
    def rule(cts, x, y, outputs):
        g, out = cts[0], outputs[0]
        return [P.sum_to(dx(g, x, y, out), x.shape), P.sum_to(dy(g, x, y, out), y.shape)]
    return prim


# ---- unary ---------------------------------------------------------------------------------

neg = unary("neg", "Neg", np.negative, derivative=lambda x, y: -1.0)
exp = unary("exp", "Exp", np.exp, derivative=lambda x, y: y)
log = unary("log", "Log", np.log, derivative=lambda x, y: reciprocal(x))
sqrt = unary("sqrt", "Sqrt", np.sqrt, derivative=lambda x, y: 0.5 / y)
abs = unary("abs", "Abs", np.abs, derivative=lambda x, y: sign(x))
sin = unary("sin", "Sin", np.sin, derivative=lambda x, y: cos(x))
cos = unary("cos", "Cos", np.cos, derivative=lambda x, y: -sin(x))
tanh = unary("tanh", "Tanh", np.tanh, derivative=lambda x, y: 1.0 - y * y)
erf = unary("erf", "Erf", derivative=lambda x, y: float(2.0 / np.sqrt(np.pi)) * exp(-(x * x)))
floor = pointwise("floor", "Floor", np.floor)
ceil = pointwise("ceil", "Ceil", np.ceil)
sign = pointwise("sign", "Sign", np.sign)
reciprocal = unary("reciprocal", "Reciprocal", np.reciprocal, derivative=lambda x, y: -(y * y))
sigmoid = unary("sigmoid", "Sigmoid", derivative=lambda x, y: y * (1.0 - y))
relu = unary("relu", "Relu", derivative=lambda x, y: as_float(greater(x, 0.0)))
softplus = unary("softplus", "Softplus", derivative=lambda x, y: sigmoid(x))
softsign = unary("softsign", "Softsign", derivative=lambda x, y: 1.0 / ((1.0 + abs(x)) * (1.0 + abs(x))))
# ONNX's default alpha and gamma are Keras's constants
selu = unary("selu", "Selu", derivative=lambda x, y, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875:
             select(greater(x, 0.0), gamma, alpha * gamma * exp(x)))
elu = unary("elu", "Elu", derivative=lambda x, y, alpha=1.0: select(greater(x, 0.0), 1.0, y + alpha))
leaky_relu = unary("leaky_relu", "LeakyRelu", derivative=lambda x, y, alpha=0.01: select(greater(x, 0.0), 1.0, alpha))
# alpha is the slope, beta the offset
hard_sigmoid = unary("hard_sigmoid", "HardSigmoid", derivative=lambda x, y, alpha=0.2, beta=0.5:
                     alpha * as_float(logical_and(greater(y, 0.0), less(y, 1.0))))
clip = unary("clip", lambda ctx, x, min, max: ctx.op("Clip", x, ctx.const(np.float32(min)), ctx.const(np.float32(max))),
             lambda x, min, max: np.clip(x, min, max),  # min, max: numbers
             derivative=lambda x, y, min, max: as_float(logical_and(greater_equal(x, min), greater_equal(max, x))))
cast = pointwise("cast", lambda ctx, x, dtype: ctx.op("Cast", x, to=ctx.dtype(dtype)),
                 lambda x, dtype: x.astype(dtype), shape=lambda x, dtype: Aval(x.shape, dtype))


@defvjp(cast)
def _cast(cts, x, outputs, dtype):
    return [cts[0] if x.dtype.startswith("float") else None]


# ---- binary --------------------------------------------------------------------------------

add = binary("add", "Add", np.add, dx=lambda g, x, y, o: g, dy=lambda g, x, y, o: g)
sub = binary("sub", "Sub", np.subtract, dx=lambda g, x, y, o: g, dy=lambda g, x, y, o: -g)
mul = binary("mul", "Mul", np.multiply, dx=lambda g, x, y, o: g * y, dy=lambda g, x, y, o: g * x)
div = binary("div", "Div", np.divide, dx=lambda g, x, y, o: g / y, dy=lambda g, x, y, o: -(g * o / y))
pow = binary("pow", "Pow", np.power, dx=lambda g, x, y, o: g * y * pow(x, y - 1.0),
             dy=lambda g, x, y, o: g * o * log(maximum(x, 1e-30)))
# the winner takes the cotangent (the first operand on ties)
maximum = binary("maximum", "Max", np.maximum, dx=lambda g, x, y, o: g * as_float(greater_equal(x, y)),
                 dy=lambda g, x, y, o: g * as_float(less(x, y)))
minimum = binary("minimum", "Min", np.minimum, dx=lambda g, x, y, o: g * as_float(greater_equal(y, x)),
                 dy=lambda g, x, y, o: g * as_float(greater(x, y)))

# ---- comparisons and select ------------------------------------------------------------------

logical_and = pointwise("logical_and", "And", np.logical_and, shape=comparison)
equal = pointwise("equal", "Equal", np.equal, shape=comparison)
ne = pointwise("ne", lambda ctx, a, b: ctx.op("Not", ctx.op("Equal", a, b)), np.not_equal, shape=comparison)
greater = pointwise("greater", "Greater", np.greater, shape=comparison)
greater_equal = pointwise("greater_equal", "GreaterOrEqual", np.greater_equal, shape=comparison)
less = pointwise("less", "Less", np.less, shape=comparison)
where = pointwise("where", "Where", np.where,
                  shape=lambda c, a, b: Aval(broadcast_shapes(c.shape, a.shape, b.shape), a.dtype))


@defvjp(where)
def _where(cts, c, x, y, outputs):
    g = cts[0]
    return [None, P.sum_to(select(c, g, 0.0), x.shape), P.sum_to(select(c, 0.0, g), y.shape)]
