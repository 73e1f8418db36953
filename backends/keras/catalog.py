"""What the reader knows about stock Keras layers: which classes it accepts, and which
weights (names, order, shapes) a layer's config implies.

Only classes listed here, and the IR's own layer kinds, are read; anything else is a custom
class whose behaviour lives in Python code we do not have (and must not run).
"""
from __future__ import annotations

import re

from ...ir.layers import LAYERS

# Old or alternative spellings -> the class name Keras 3 serializes.
ALIASES = {
    "Model": "Functional",
    "Convolution1D": "Conv1D",
    "Convolution2D": "Conv2D",
    "Convolution3D": "Conv3D",
    "Convolution2DTranspose": "Conv2DTranspose",
    "MaxPool1D": "MaxPooling1D",
    "MaxPool2D": "MaxPooling2D",
    "MaxPool3D": "MaxPooling3D",
    "AvgPool1D": "AveragePooling1D",
    "AvgPool2D": "AveragePooling2D",
    "AvgPool3D": "AveragePooling3D",
    "GlobalMaxPool1D": "GlobalMaxPooling1D",
    "GlobalMaxPool2D": "GlobalMaxPooling2D",
    "GlobalMaxPool3D": "GlobalMaxPooling3D",
    "GlobalAvgPool1D": "GlobalAveragePooling1D",
    "GlobalAvgPool2D": "GlobalAveragePooling2D",
    "GlobalAvgPool3D": "GlobalAveragePooling3D",
}

MODEL_CLASSES = {"Functional", "Sequential"}

# Stock layers that own no weights.
WEIGHTLESS = {
    "InputLayer", "Activation", "ActivityRegularization", "Identity", "Masking",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout",
    "Flatten", "Reshape", "Permute", "RepeatVector",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    "Cropping1D", "Cropping2D", "Cropping3D",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
    "ReLU", "LeakyReLU", "ELU", "Softmax", "ThresholdedReLU",
    "UnitNormalization", "Rescaling", "Resizing", "CenterCrop",
}

# Stock layers with weights whose layout is spelled out in expected_weights() below.
_RNN = {"LSTM", "GRU", "SimpleRNN"}
_CONV = {"Conv1D", "Conv2D", "Conv3D"}
_CONV_T = {"Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"}
_SEPARABLE = {"SeparableConv1D", "SeparableConv2D"}
_DEPTHWISE = {"DepthwiseConv1D", "DepthwiseConv2D"}
WRAPPERS = {"Bidirectional", "TimeDistributed"}

# Stock layers accepted with weights read as the file stores them (order unchecked).
OTHER_STOCK = {
    "RNN", "LSTMCell", "GRUCell", "SimpleRNNCell", "StackedRNNCells",
    "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D",
    "PReLU", "GroupNormalization", "Normalization", "EinsumDense",
    "Attention", "AdditiveAttention",
}

_WITH_WEIGHTS = (
    {"Dense", "Embedding", "BatchNormalization", "LayerNormalization", "MultiHeadAttention"}
    | _RNN | _CONV | _CONV_T | _SEPARABLE | _DEPTHWISE | WRAPPERS
)

# Every IR layer kind is the Keras class of its name (unless it says Keras has none).
IR_LAYERS = {kind for kind, member in LAYERS.members.items() if member.no_keras is None}

# What op layers (TFOpLambda, keras.src.ops) are read as, besides stock layers: see op_layers.py.
OP_LAYER_KINDS = {"NotEqual", "Cast"}
WEIGHTLESS |= OP_LAYER_KINDS

STOCK_LAYERS = WEIGHTLESS | _WITH_WEIGHTS | OTHER_STOCK | MODEL_CLASSES | IR_LAYERS

RNN_LAYERS = _RNN | {"RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}

# Sub-objects whose variables a Keras 3 weights file stores under the layer's group, in
# get_weights() order (the file lists them alphabetically, which is not that order).
CHILD_ORDER = {
    **{c: ["cell"] for c in RNN_LAYERS},
    "Bidirectional": ["forward_layer", "backward_layer"],
    "TimeDistributed": ["layer"],
    "MultiHeadAttention": ["query_dense", "key_dense", "value_dense", "output_dense"],
}


def canonical_class(name: str) -> str:
    return ALIASES.get(name, name)


def snake_case(name: str) -> str:
    """Keras' to_snake_case: how Keras 3 names a layer's group in a weights file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def _tuple(value, rank: int) -> tuple:
    if isinstance(value, int):
        return (value,) * rank
    return tuple(value)


def _rank(class_name: str) -> int:
    return int(re.search(r"(\d)D", class_name).group(1))


# A shape pattern is a tuple whose None entries are dims the config alone cannot tell
# (usually the input width); None instead of a tuple means "any shape".
def expected_weights(class_name: str, config: dict) -> list[tuple[str, tuple | None]] | None:
    """[(short name, shape pattern)] in get_weights() order, or None when unknown."""
    c = config
    bias = c.get("use_bias", True)
    if class_name in WEIGHTLESS or class_name in MODEL_CLASSES:
        return []
    if class_name == "Dense":
        u = c["units"]
        return [("kernel", (None, u))] + ([("bias", (u,))] if bias else [])
    if class_name == "Embedding":
        return [("embeddings", (c["input_dim"], c["output_dim"]))]
    if class_name in _CONV:
        f, ks = c["filters"], _tuple(c["kernel_size"], _rank(class_name))
        return [("kernel", ks + (None, f))] + ([("bias", (f,))] if bias else [])
    if class_name in _CONV_T:
        f, ks = c["filters"], _tuple(c["kernel_size"], _rank(class_name))
        return [("kernel", ks + (f, None))] + ([("bias", (f,))] if bias else [])
    if class_name in _SEPARABLE:
        f, r = c["filters"], _rank(class_name)
        ks, dm = _tuple(c["kernel_size"], r), c.get("depth_multiplier", 1)
        return ([("depthwise_kernel", ks + (None, dm)), ("pointwise_kernel", (1,) * r + (None, f))]
                + ([("bias", (f,))] if bias else []))
    if class_name in _DEPTHWISE:
        ks = _tuple(c["kernel_size"], _rank(class_name))
        # Keras 2 calls the kernel "depthwise_kernel", Keras 3 "kernel"; we use Keras 3's.
        return [("kernel", ks + (None, c.get("depth_multiplier", 1)))] + ([("bias", (None,))] if bias else [])
    if class_name == "BatchNormalization":
        names = (["gamma"] if c.get("scale", True) else []) + (["beta"] if c.get("center", True) else [])
        return [(n, None) for n in names + ["moving_mean", "moving_variance"]]
    if class_name == "LayerNormalization":
        rms = c.get("rms_scaling", False)
        names = (["gamma"] if c.get("scale", True) else []) + (["beta"] if c.get("center", True) and not rms else [])
        return [(n, None) for n in names]
    if class_name in _RNN:
        u = c["units"]
        g = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1}[class_name] * u
        out = [("kernel", (None, g)), ("recurrent_kernel", (u, g))]
        if bias:
            two_biases = class_name == "GRU" and c.get("reset_after", True)
            out.append(("bias", (2, g) if two_biases else (g,)))
        return out
    if class_name == "MultiHeadAttention":
        parts = ["query", "key", "value", "attention_output"]
        return [(f"{p}/{w}", None) for p in parts for w in (["kernel", "bias"] if bias else ["kernel"])]
    if class_name == "Bidirectional":
        fwd, bwd = c["layer"], c.get("backward_layer") or c["layer"]
        f = expected_weights(fwd["class_name"], fwd["config"])
        b = expected_weights(bwd["class_name"], bwd["config"])
        if f is None or b is None:
            return None
        return [(f"forward/{n}", s) for n, s in f] + [(f"backward/{n}", s) for n, s in b]
    if class_name == "TimeDistributed":
        return expected_weights(c["layer"]["class_name"], c["layer"]["config"])
    return None
