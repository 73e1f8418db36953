"""A Keras model (as reader.load gives it) -> an nnspec IR model and its weights.

    imported = load("net.h5")                     # or import_model(reader.load(...))
    compile_model(imported.model, imported.weights)

InputLayers become the model's inputs; every other layer one IR layer (layer_import.py), keeping
its Keras name and weights (get_weights() order is the IR's order). Models used as layers are
flattened into the graph; their layers keep their names unless an outer layer has the name, then
they are prefixed with the nested model's. Compile settings become the TrainConfig where the IR
can say them; optimizer state is passed through untouched for a later resume.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import Diagnostic, SpecError
from ...ir.layers import FLOAT_DTYPES, INT_DTYPES, MultiHeadAttention
from ...ir.model import Input, Model, Namer, analyze
from ...ir.validation import json_path
from ...ir.weights import Weights, check_weights
from . import catalog, masks, reader
from .layer_import import layer as import_layer
from .model import KerasLayer, KerasModel, TensorRef, place
from .normalize import Context
from .train_config import import_train


@dataclass
class Imported:
    model: Model
    weights: Weights
    keras_version: str  # "2.x" or "3.x"
    optimizer_weights: dict[str, np.ndarray] | None = None  # as the file stores them, for a resume
    notes: list[str] = field(default_factory=list)  # what was read but could not be kept


def load(path, weights_path=None, *, lazy: bool = False) -> Imported:
    """lazy: see reader.load."""
    try:
        return import_model(reader.load(path, weights_path, lazy=lazy))
    except FileNotFoundError as exc:
        raise SpecError("no such file", str(exc.args[0] if exc.args else path)) from None


def import_model(km: KerasModel) -> Imported:
    builder = _Builder(km.keras_version, Context(km.source or km.name))
    outputs = builder.model(km, None, "")
    order = [builder.tensors[ref] for ref in km.inputs]  # the model's input order, not its layers'
    inputs = sorted(builder.inputs, key=lambda i: order.index(i.name))
    layers = masks.without_mask_ops(builder.layers, builder.masks, outputs)
    model = Model(name=km.name, inputs=inputs, layers=layers, outputs=outputs)
    train, notes = import_train(km.training_config, outputs, builder.ctx)
    model.train = train
    analysis, problems = analyze(model)
    if problems:
        raise SpecError([Diagnostic(f"as converted: {p}", json_path=builder.where(model, p.loc)) for p in problems],
                        km.source or km.name)
    masks.check(analysis, builder.layers, builder.masks)
    for info in analysis.layers:  # what this Keras version does where no config key says it
        if isinstance(info.layer, MultiHeadAttention) and info.layer.may_leave_queries_without_keys(info.inputs):
            info.layer.empty_rows = info.layer.keras_empty_rows(int(km.keras_version[0]))
    if builder.weights:  # a bare model JSON has none: its weights are for the caller to choose
        check_weights(analysis, builder.weights, km.source)
    return Imported(model, builder.weights, km.keras_version, km.optimizer_weights, notes)


_DTYPES = set(FLOAT_DTYPES + INT_DTYPES)


class _Builder:
    def __init__(self, version: str, ctx: Context):
        self.version, self.ctx = version, ctx
        self.inputs: list[Input] = []
        self.layers = []
        self.weights: Weights = {}
        self.namer = Namer()
        self.tensors: dict[TensorRef, str] = {}  # inputs and nested models' outputs -> IR tensor name
        self.names: dict[str, str] = {}  # Keras layer (path) -> IR layer name; its outputs are name, name:1, ...
        self.masks: masks.Explicit = {}
        self.origins: dict[str, str] = {}  # IR layer name -> the Keras layer it came from, as errors name it

    def where(self, model: Model, loc: tuple) -> str:
        """A problem's place: the Keras layer (path in nested models, and class) rather than layers[N]."""
        if len(loc) >= 2 and loc[0] == "layers" and isinstance(loc[1], int):
            return self.origins.get(model.layers[loc[1]].name, json_path(loc))
        return json_path(loc)

    def model(self, km: KerasModel, bound: list[str] | None, prefix: str, trainable: bool = True) -> list[str]:
        """Add a model's layers; `bound` gives a nested model's input tensors. Returns its outputs."""
        refs = {ref[0]: i for i, ref in enumerate(km.inputs)}
        for kl in km.layers:
            ctx = self.ctx.at(kl.name, place(prefix + kl.name, kl.file_class or kl.class_name))
            if kl.class_name == "InputLayer":
                if kl.name not in refs:
                    raise ctx.error("an InputLayer that is not one of the model's inputs")
                self.tensors[(prefix + kl.name, 0, 0)] = (self._input(kl, ctx) if bound is None
                                                          else bound[refs[kl.name]])
                continue
            if len(kl.inbound) != 1:
                raise ctx.error(f"called {len(kl.inbound)} times; nnspec layers are called once "
                                "(shared layers are not supported)")
            ins = [self._tensor(prefix, ref, ctx) for ref in kl.inbound[0]]
            if kl.class_name in catalog.MODEL_CLASSES:
                inner = kl.config["model"]
                outs = self.model(inner, ins, f"{prefix}{kl.name}/", trainable and kl.config["trainable"])
                self.tensors.update({(prefix + kl.name, 0, k): name for k, name in enumerate(outs)})
            else:
                self.names[prefix + kl.name] = name = self._layer(kl, prefix, ins, trainable, ctx)
                if kl.masks and kl.masks[0]:
                    self.masks[name] = (ctx, [None if r is None else self._tensor(prefix, r, ctx) for r in kl.masks[0]])
        return [self._tensor(prefix, ref, self.ctx.at(km.name)) for ref in km.outputs]

    def _tensor(self, prefix: str, ref: TensorRef, ctx: Context) -> str:
        name, call, index = ref
        key = (prefix + name, call, index)
        if key in self.tensors:
            return self.tensors[key]
        if prefix + name in self.names and call == 0:  # an output analysis checks exists
            layer = self.names[prefix + name]
            return layer if index == 0 else f"{layer}:{index}"
        raise ctx.error(f"reads output {index} of call {call} of layer '{name}', which nnspec cannot follow")

    def _name(self, wanted: str) -> str:
        """The Keras name if free, else prefixed by the nested models' names."""
        name = wanted.rsplit("/", 1)[-1]
        if name in self.namer.taken:
            name = wanted.replace("/", "_")
        if name in self.namer.taken:
            name = self.namer.new(name)
        self.namer.claim(name)
        return name

    def _input(self, kl: KerasLayer, ctx: Context) -> str:
        shape, dtype = kl.config.get("batch_shape"), kl.config.get("dtype") or "float32"
        if not isinstance(shape, list) or not shape:
            raise ctx.error("an input without a shape")
        if dtype not in _DTYPES:
            raise ctx.error(f"input dtype {dtype!r} is not supported")
        for key in ("sparse", "ragged", "optional"):
            if kl.config.get(key):
                raise ctx.error(f"{key} inputs are not supported")
        name = self._name(kl.name)
        self.inputs.append(Input(name=name, dtype=dtype, shape=shape[1:]))  # a fixed batch size is dropped
        return name

    def _layer(self, kl: KerasLayer, prefix: str, ins: list[str], trainable: bool, ctx: Context) -> str:
        layer = import_layer(kl.class_name, kl.config, self.version, ctx)
        layer.name = self._name(prefix + kl.name)
        layer.inputs = ins
        if not trainable:
            layer.trainable = False
        self.layers.append(layer)
        self.origins[layer.name] = ctx.where
        if kl.weights:
            self.weights[layer.name] = list(kl.weights)
        return layer.name
