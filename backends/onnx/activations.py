"""Keras activations in primitives; and, for fused recurrent ops, their names as ONNX RNN activations."""
from __future__ import annotations

import math
from typing import Callable

from ...ir.base import Fn
from . import primitives as P
from .graph import Var

_GELU_C = math.sqrt(2.0 / math.pi)  # gelu's tanh form: x/2 (1 + tanh(c (x + 0.044715 x^3)))

# name -> expansion(fn, x); `fn` is the IR's activation with its parameters.
ACTIVATIONS: dict[str, Callable[[Fn, Var], Var]] = {
    "linear": lambda f, x: x,
    "relu": lambda f, x: _relu(f, x),
    "relu6": lambda f, x: P.clip(x, min=0.0, max=6.0),
    "leaky_relu": lambda f, x: P.leaky_relu(x, alpha=f.alpha),
    "elu": lambda f, x: P.elu(x, alpha=f.alpha),
    "selu": lambda f, x: P.selu(x),
    "softplus": lambda f, x: P.softplus(x),
    "softsign": lambda f, x: P.softsign(x),
    "tanh": lambda f, x: P.tanh(x),
    "sigmoid": lambda f, x: P.sigmoid(x),
    "hard_sigmoid": lambda f, x: P.hard_sigmoid(x, alpha=f.slope, beta=0.5),
    "exponential": lambda f, x: P.exp(x),
    "swish": lambda f, x: x * P.sigmoid(x),
    "hard_silu": lambda f, x: x * P.hard_sigmoid(x, alpha=1.0 / 6.0, beta=0.5),
    "mish": lambda f, x: x * P.tanh(P.softplus(x)),
    "gelu": lambda f, x: (x * (0.5 + 0.5 * P.tanh(x * (_GELU_C + _GELU_C * 0.044715 * (x * x))))
                          if f.approximate else 0.5 * x * (1.0 + P.erf(x * (1.0 / math.sqrt(2.0))))),
    "softmax": lambda f, x: P.softmax(x, axis=f.axis % x.rank),
    "log_softmax": lambda f, x: P.log_softmax(x, axis=f.axis % x.rank),
    "celu": lambda f, x: P.relu(x) + f.alpha * (P.exp(P.minimum(x, _zero(x)) * (1.0 / f.alpha)) - 1.0),
    "hard_tanh": lambda f, x: P.clip(x, min=-1.0, max=1.0),
    "log_sigmoid": lambda f, x: -P.softplus(-x),
    "tanh_shrink": lambda f, x: x - P.tanh(x),
    "hard_shrink": lambda f, x: P.select(P.greater(P.abs(x), f.threshold), x, 0.0),
    "soft_shrink": lambda f, x: P.relu(x - f.threshold) - P.relu(-x - f.threshold),
    "squareplus": lambda f, x: 0.5 * (x + P.sqrt(x * x + f.b)),
    "sparse_plus": lambda f, x: P.select(P.greater_equal(x, 1.0), x,
                                         0.25 * _square(P.clip(x, min=-1.0, max=1.0) + 1.0)),
}


def _zero(x: Var) -> Var:
    return x.graph.const(0.0, "float32")


def _square(x: Var) -> Var:
    return x * x


def _relu(f: Fn, x: Var) -> Var:
    """Keras's relu in its general form, in as few ONNX ops as each case needs."""
    if f.threshold == 0.0 and f.max_value is None:
        return P.leaky_relu(x, alpha=f.negative_slope) if f.negative_slope else P.relu(x)
    if f.threshold == 0.0 and not f.negative_slope:
        return P.clip(x, min=0.0, max=f.max_value)
    above = x if f.max_value is None else P.clip(x, min=0.0, max=f.max_value)
    below = (x - f.threshold) * f.negative_slope if f.negative_slope else 0.0
    return P.select(P.greater(x, f.threshold), above, below)


ROW_WISE = {"softmax", "log_softmax"}  # the activations that are not elementwise


def activation(fn: Fn, x: Var) -> Var:
    return ACTIVATIONS[fn.name](fn, x)


# name -> (ONNX RNN activation, alpha, beta), or None where these parameters have none: not fusable.
RNN_ACTIVATIONS: dict[str, Callable[[Fn], tuple]] = {
    "linear": lambda f: ("Affine", 1.0, 0.0),
    "relu": lambda f: ("Relu",) if f.threshold == 0.0 and f.max_value is None and not f.negative_slope else None,
    "tanh": lambda f: ("Tanh",),
    "sigmoid": lambda f: ("Sigmoid",),
    "softsign": lambda f: ("Softsign",),
    "softplus": lambda f: ("Softplus",),
    "hard_sigmoid": lambda f: ("HardSigmoid", f.slope, 0.5),
    "leaky_relu": lambda f: ("LeakyRelu", f.alpha),
    "elu": lambda f: ("Elu", f.alpha),
}


def rnn_activations(fns: list[Fn]) -> dict | None:
    """The `activations` attributes of an ONNX RNN/GRU/LSTM node, or None if one has no ONNX name.
    onnxruntime reads alphas and betas in order, only for the activations that take them."""
    specs = [RNN_ACTIVATIONS[f.name](f) if f.name in RNN_ACTIVATIONS else None for f in fns]
    if None in specs:
        return None
    return {"activations": [s[0] for s in specs],
            "activation_alpha": [float(s[1]) for s in specs if len(s) > 1],
            "activation_beta": [float(s[2]) for s in specs if len(s) > 2]}
