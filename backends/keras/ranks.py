"""Output ranks of layers, as far as the config alone tells them.

Only needed to put normalization axes in one form: Keras 2 saves a built
BatchNormalization's axis as positive ints ([1] on a rank-2 input), Keras 3 as given
(-1). Counted from the end they agree, which takes the input rank.
"""
from __future__ import annotations

import re

from .model import KerasLayer, KerasModel

_SAME_RANK = re.compile(
    r"^(Dense|EinsumDense|BatchNormalization|LayerNormalization|GroupNormalization|UnitNormalization"
    r"|Activation|ReLU|LeakyReLU|ELU|PReLU|Softmax|ThresholdedReLU|Dropout|SpatialDropout\dD|Gaussian\w+"
    r"|AlphaDropout|Masking|Identity|Rescaling|ActivityRegularization|Permute"
    r"|Conv\dD(Transpose)?|SeparableConv\dD|DepthwiseConv\dD|(Max|Average)Pooling\dD"
    r"|UpSampling\dD|ZeroPadding\dD|Cropping\dD|Add|Subtract|Multiply|Average|Maximum|Minimum"
    r"|Concatenate)$")


def _rank(layer: KerasLayer, inputs: list) -> int | None:
    cls, cfg = layer.class_name, layer.config
    if cls == "InputLayer":
        shape = cfg.get("batch_shape")
        return len(shape) if isinstance(shape, list) else None
    first = inputs[0] if inputs else None
    if _SAME_RANK.match(cls):
        return first
    if cls in ("Flatten",):
        return 2
    if cls == "RepeatVector":
        return 3
    if cls == "Reshape" and isinstance(cfg.get("target_shape"), list):
        return len(cfg["target_shape"]) + 1
    if cls.startswith("Global") and first is not None:
        return first if cfg.get("keepdims") else first - 1
    if cls == "Embedding" and first is not None:
        return first + 1
    if cls in ("LSTM", "GRU", "SimpleRNN"):
        return 3 if cfg.get("return_sequences") else 2
    if cls == "Bidirectional":
        return 3 if cfg.get("layer", {}).get("config", {}).get("return_sequences") else 2
    return None


def negative_axes(model: KerasModel) -> None:
    """Rewrite BatchNormalization / LayerNormalization axes counted from the end."""
    ranks: dict[str, int | None] = {}
    for layer in model.layers:
        inputs = [ranks.get(ref[0]) for node in layer.inbound[:1] for ref in node]
        rank_in = inputs[0] if inputs else None
        axes = layer.config.get("axis")
        if (layer.class_name in ("BatchNormalization", "LayerNormalization") and rank_in
                and isinstance(axes, list) and all(isinstance(a, int) for a in axes)):
            layer.config["axis"] = [a - rank_in if a >= 0 else a for a in axes]
        ranks[layer.name] = _rank(layer, inputs)
