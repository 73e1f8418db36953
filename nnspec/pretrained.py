"""`pretrained("base.h5", until="pool", trainable=false)`: a Keras or ONNX model file (or another
spec with its weights) used as a layer of a spec, as transfer learning does with a Keras
application: its layers up to `until` are spliced into the spec's graph, reading the tensor that
flows into the call, and keep the file's names and weights (`Model.pretrained` records which
layers take their initial weights from the file)."""
from __future__ import annotations

import functools
import os
from pathlib import Path

from .errors import SpecError
from .ir.layers import Layer
from .ir.model import Model, PretrainedWeights, upstream


@functools.lru_cache(maxsize=8)
def _read(path: str, mtime: float):
    from .convert import read

    return read(path)


def read_model_file(path: str):
    """The model file read once per version of it: parsing the spec and drawing its weights both ask."""
    try:
        return _read(path, os.stat(path).st_mtime)
    except FileNotFoundError:
        raise SpecError("no such file", path) from None


def splice(path: str, into: str, until: str | None, trainable: bool | None) -> tuple[list[Layer], str, PretrainedWeights]:
    """The file's layers that compute `until` (default: its output), reading tensor `into` where
    the file's model read its input; the tensor `until` names; the record of their weights."""
    inner: Model = read_model_file(path).model
    if len(inner.inputs) != 1:
        raise SpecError(f"pretrained(): the model in {path} takes {len(inner.inputs)} inputs; one is spliced in")
    target = until or inner.outputs[0]
    try:
        kept = upstream(inner, [target])
    except ValueError as exc:
        raise SpecError(f"pretrained(): {path}: {exc}") from None
    source = inner.inputs[0].name
    layers = []
    for layer in kept:
        copy = layer.model_copy(deep=True)
        copy.inputs = [into if t == source else t for t in copy.inputs]
        if trainable is not None:
            copy.trainable = trainable
        layers.append(copy)
    weights = read_model_file(path).weights
    record = PretrainedWeights(path=str(Path(path).resolve()), layers=[l.name for l in layers if weights.get(l.name)])
    return layers, target, record
