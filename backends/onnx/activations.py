"""Keras activations in primitives; and, for fused recurrent ops, their names as ONNX RNN activations."""
from __future__ import annotations

import math
from typing import Callable

from ...ir.base import Fn
from . import primitives as P
from .graph import Var

# name -> expansion(fn, x); `fn` is the IR's activation with its parameters.
ACTIVATIONS: dict[str, Callable[[Fn, Var], Var]] = {
    "linear": lambda f, x: x,
    "relu": lambda f, x: P.relu(x),
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
    "gelu": lambda f, x: (0.5 * x * (1.0 + P.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
                          if f.approximate else 0.5 * x * (1.0 + P.erf(x * (1.0 / math.sqrt(2.0))))),
    "softmax": lambda f, x: P.softmax(x, axis=f.axis % x.rank),
}


def activation(fn: Fn, x: Var) -> Var:
    return ACTIVATIONS[fn.name](fn, x)


# name -> (ONNX RNN activation, alpha, beta); an activation missing here is not fusable.
RNN_ACTIVATIONS: dict[str, Callable[[Fn], tuple]] = {
    "linear": lambda f: ("Affine", 1.0, 0.0),
    "relu": lambda f: ("Relu",),
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
    if any(f.name not in RNN_ACTIVATIONS for f in fns):
        return None
    specs = [RNN_ACTIVATIONS[f.name](f) for f in fns]
    return {"activations": [s[0] for s in specs],
            "activation_alpha": [float(s[1]) for s in specs if len(s) > 1],
            "activation_beta": [float(s[2]) for s in specs if len(s) > 2]}
