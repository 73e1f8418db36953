"""Output ranks of layers, as far as the config alone tells them (each IR layer class says how:
`Layer.keras_rank`).

Only needed to put normalization axes in one form: Keras 2 saves a built
BatchNormalization's axis as positive ints ([1] on a rank-2 input), Keras 3 as given
(-1). Counted from the end they agree, which takes the input rank.
"""
from __future__ import annotations

from ...ir.layers import LAYERS
from .layer_import import ACTIVATION_LAYERS
from .model import KerasLayer, KerasModel


def _rank(layer: KerasLayer, inputs: list) -> int | None:
    cls, cfg = layer.class_name, layer.config
    if cls == "InputLayer":
        shape = cfg.get("batch_shape")
        return len(shape) if isinstance(shape, list) else None
    first = inputs[0] if inputs else None
    if cls in ACTIVATION_LAYERS:  # read as Activation layers
        return first
    try:
        member = LAYERS.members[LAYERS.canonical(cls)]
    except ValueError:  # no nnspec layer: refused when the model is read
        return None
    return member.keras_rank(cfg, first)


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
