"""Keras op layers -> the stock layers they amount to.

Applying a TensorFlow or Keras op to a symbolic tensor (`x + 3.0`, `tf.nn.relu6(x)`) makes Keras
record an op layer: Keras 2 a `TFOpLambda` whose config names the function
(`"function": "math.multiply"`) and whose inbound node carries the other operands as keyword
arguments; Keras 3 an operation of `keras.src.ops.*` (`Multiply`, `NotEqual`, ...) whose inbound
node holds its `args`. Both are declarative: an op name and its arguments, no code. The well-known
ones are rewritten here, before the layer is read, into stock layer entries (an affine op with a
constant is a Rescaling, an op on two tensors a merge layer, an activation function an
Activation); any other op is refused by its name.
"""
from __future__ import annotations

from typing import Callable

from .normalize import Context
from .model import place

TENSOR = "__keras_tensor__"

# Keras 2 TFOpLambda function names and Keras 3 op class names -> one op name.
_OPS = {
    "__operators__.add": "add", "math.add": "add", "Add": "add",
    "__operators__.sub": "subtract", "math.subtract": "subtract", "Subtract": "subtract",
    "math.multiply": "multiply", "__operators__.mul": "multiply", "Multiply": "multiply",
    "math.truediv": "divide", "__operators__.truediv": "divide", "math.divide": "divide",
    "TrueDivide": "divide", "Divide": "divide",
    "math.maximum": "maximum", "Maximum": "maximum", "math.minimum": "minimum", "Minimum": "minimum",
    **{f"{module}.{fn}": fn for module in ("nn", "math", "keras.activations") for fn in (
        "relu", "relu6", "sigmoid", "tanh", "gelu", "silu", "swish", "softplus", "softsign", "elu", "selu")},
    "Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "Gelu": "gelu", "Silu": "silu",
    "Softplus": "softplus", "Softsign": "softsign", "Elu": "elu", "Selu": "selu", "HardSigmoid": "hard_sigmoid",
    "HardSilu": "hard_silu",
    "math.not_equal": "not_equal", "NotEqual": "not_equal", "cast": "cast", "Cast": "cast",
}
_MERGES = {"add": "Add", "subtract": "Subtract", "multiply": "Multiply", "maximum": "Maximum", "minimum": "Minimum"}
_ACTIVATIONS = {"relu", "relu6", "sigmoid", "tanh", "gelu", "silu", "swish", "softplus", "softsign", "elu", "selu",
                "hard_sigmoid", "hard_silu"}

# x op c and c op x with a constant c, as Rescaling(scale, offset): x * scale + offset
_AFFINE: dict[str, Callable[[float, bool], tuple[float, float] | None]] = {
    "add": lambda c, first: (1.0, c),
    "subtract": lambda c, first: (1.0, -c) if not first else (-1.0, c),
    "multiply": lambda c, first: (c, 0.0),
    "divide": lambda c, first: (1.0 / c, 0.0) if not first and c != 0 else None,
}


def is_op_layer(entry: dict) -> bool:
    """A TFOpLambda, or a Keras 3 operation: named by its module, or (Keras 3's legacy .h5, no
    module) by Keras 3 call nodes and a config without the `trainable` that every layer writes."""
    if not isinstance(entry, dict):
        return False
    module, config, nodes = entry.get("module"), entry.get("config"), entry.get("inbound_nodes")
    if entry.get("class_name") == "TFOpLambda":  # tf_keras's to_json names its module, its .h5 does not
        return True
    if isinstance(module, str):
        return module.startswith(("keras.src.ops.", "keras.ops."))
    return (entry.get("class_name") in _OPS and isinstance(config, dict) and "trainable" not in config
            and isinstance(nodes, list) and bool(nodes) and all(isinstance(n, dict) for n in nodes))


def rewrite(entry: dict, ctx: Context) -> dict:
    """The stock layer entry that an op layer entry amounts to (refused by name if none)."""
    config = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    name = config.get("name")
    raw = config.get("function") if entry.get("class_name") == "TFOpLambda" else entry.get("class_name")
    lctx = ctx.at(str(name), place(str(name), str(entry.get("class_name"))))
    op = _OPS.get(raw)
    nodes = entry.get("inbound_nodes") or []
    if op is None:
        raise lctx.error(f"op layer '{raw}' has no nnspec equivalent (nnspec reads op layers that add, subtract, "
                         "multiply or divide, take a maximum or minimum, compare with not_equal, cast, "
                         "or apply an activation)")
    if len(nodes) != 1:
        raise lctx.error(f"op layer '{raw}' called {len(nodes)} times; nnspec reads ops called once")
    operands, kwargs = _operands(nodes[0], lctx)
    kwargs = {**{k: v for k, v in config.items() if k not in ("name", "trainable", "dtype", "function")}, **kwargs}
    tensors = [o for o in operands if _is_ref(o)]
    head = {"name": name, "trainable": config.get("trainable", True)}
    if op in _ACTIVATIONS and len(operands) == 1 and tensors:
        extra = {"approximate": bool(kwargs["approximate"])} if op == "gelu" and "approximate" in kwargs else {}
        layer = {"class_name": "Activation", "config": {**head, "activation": op, **_activation_config(op, extra)}}
    elif op == "not_equal" and len(tensors) == 1 and len(operands) == 2 and _is_number(operands[1 - operands.index(tensors[0])]):
        layer = {"class_name": "NotEqual", "config": {**head, "value": float(operands[1 - operands.index(tensors[0])])}}
    elif op == "cast" and len(operands) == 1 and tensors and isinstance(kwargs.get("dtype", config.get("dtype")), str):
        layer = {"class_name": "Cast", "config": {**head, "dtype": kwargs.get("dtype", config.get("dtype"))}}
    elif len(operands) == 2 and len(tensors) == 2 and op in _MERGES:
        layer = {"class_name": _MERGES[op], "config": head}
    elif len(operands) == 2 and len(tensors) == 1 and op in _AFFINE and _is_number(operands[1 - operands.index(tensors[0])]):
        first = operands.index(tensors[0]) == 1  # the constant comes first: c - x, c / x
        affine = _AFFINE[op](float(operands[1 - operands.index(tensors[0])]), first)
        if affine is None:
            raise lctx.error(f"op layer '{raw}' divides a constant by a tensor; nnspec has no such layer")
        layer = {"class_name": "Rescaling", "config": {**head, "scale": affine[0], "offset": affine[1]}}
    else:
        raise lctx.error(f"op layer '{raw}' with operands {_describe(operands)} has no nnspec equivalent")
    return {**layer, "name": name, "inbound_nodes": [[[*ref, {}] for ref in tensors]]}


def _activation_config(op: str, extra: dict) -> dict:
    """Parameters of an activation, where Keras's Activation layer would lose them."""
    return {"activation_config": extra} if extra else {}


def _operands(node, ctx: Context) -> tuple[list, dict]:
    """The op's operands in order (tensor refs as [layer, node, index] lists, or constants) and
    its other keyword arguments."""
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args = [_keras3_value(a) for a in node.get("args", [])]
        return args, {k: _keras3_value(v) for k, v in (node.get("kwargs") or {}).items()}
    if isinstance(node, list) and len(node) == 1 and isinstance(node[0], list):
        node = node[0]
    if isinstance(node, list) and len(node) >= 3 and isinstance(node[0], str):
        first = node  # Keras 2: [layer, node, index, kwargs]: x, then y and others by keyword
        kwargs = dict(first[3]) if len(first) > 3 and isinstance(first[3], dict) else {}
        kwargs.pop("name", None)
        operands = [list(first[:3])]
        if "y" in kwargs:
            operands.append(kwargs.pop("y"))
        return operands, kwargs
    raise ctx.error(f"unreadable inbound node of an op layer: {node!r}")


def _keras3_value(value):
    if isinstance(value, dict) and value.get("class_name") == TENSOR:
        return list(value["config"]["keras_history"])
    return value


def _is_ref(value) -> bool:
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and all(isinstance(v, int) for v in value[1:]))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _describe(operands: list) -> str:
    return ", ".join(f"tensor {o[0]}" if _is_ref(o) else repr(o) for o in operands)
