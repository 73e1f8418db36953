"""The model: inputs, a list of layers wired by tensor names, outputs, and training settings;
and `analyze`, which checks the graph and infers every tensor's shape and every layer's parameters."""

import math
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from ..errors import did_you_mean
from ..limits import MAX_DIM, MAX_ELEMENTS, MAX_PARAMETERS
from .base import ShapeError, TensorType, _snake
from .layers import AnyLayer, FLOAT_DTYPES, INT_DTYPES, Layer
from .training import TrainConfig

Loc = tuple  # where in the IR: ("layers", 3), ("outputs", 0), ("train", "loss"), ...


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = "input"
    dtype: Literal[FLOAT_DTYPES + INT_DTYPES] = "float32"  # type: ignore[valid-type]
    shape: list[int | None] = Field(description="dimensions after the implicit batch dimension")

    def type(self) -> TensorType:
        return TensorType(self.dtype, tuple(self.shape))


def output_names(layer: Layer, count: int) -> list[str]:
    """A layer's output tensors: its name, then name:1, name:2 for extra outputs (RNN states)."""
    return [layer.name if i == 0 else f"{layer.name}:{i}" for i in range(count)]


class Namer:
    """Keras-style automatic layer names: dense, dense_1, dense_2, ... skipping names in use."""

    def __init__(self, taken: set[str] = frozenset()):
        self.taken = set(taken)
        self.counts: Counter = Counter()

    def claim(self, name: str) -> None:
        self.taken.add(name)

    def new(self, layer_type: str) -> str:
        base = _snake(layer_type)
        while True:
            candidate = base if self.counts[base] == 0 else f"{base}_{self.counts[base]}"
            self.counts[base] += 1
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate


class PretrainedWeights(BaseModel):
    """Layers spliced in from a model file by `pretrained(...)`: their initial weights are that
    file's, not draws from their initializers."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    path: str
    layers: list[str]


class Model(BaseModel):
    """A validated network. Layers without `name` or `inputs` are completed as Keras would:
    auto-names (dense, dense_1, ...) and, in a sequential stack, the previous layer's output."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = "model"
    inputs: list[Input] = Field(min_length=1)
    layers: list[AnyLayer] = []
    outputs: list[str] | None = None
    train: TrainConfig | None = None
    pretrained: list[PretrainedWeights] = []

    @model_serializer(mode="wrap")
    def _without_empty_pretrained(self, handler):
        """Specs that splice in no model file serialize as they always did."""
        data = handler(self)
        if isinstance(data, dict) and not data.get("pretrained"):
            data.pop("pretrained", None)
        return data

    @model_validator(mode="after")
    def _complete(self):
        namer = Namer({i.name for i in self.inputs} | {l.name for l in self.layers if l.name})
        previous = self.inputs[-1].name if len(self.inputs) == 1 else None
        for layer in self.layers:
            if layer.name is None:
                layer.name = namer.new(layer.type)
            if layer.inputs is None:
                if previous is None:
                    raise ValueError(
                        f"layer '{layer.name}' does not say which tensors it reads (a model with several "
                        "inputs must name them)"
                    )
                layer.inputs = [previous]
            previous = layer.name
        if self.outputs is None:
            self.outputs = [previous] if previous is not None else [self.inputs[0].name]
        return self


@dataclass
class LayerInfo:
    layer: Layer
    inputs: list[TensorType]
    outputs: list[TensorType]
    trainable: int
    non_trainable: int


@dataclass
class Analysis:
    model: Model
    tensors: dict[str, TensorType] = field(default_factory=dict)
    layers: list[LayerInfo] = field(default_factory=list)  # in execution (topological) order

    @property
    def trainable(self) -> int:
        return sum(i.trainable for i in self.layers)

    @property
    def non_trainable(self) -> int:
        return sum(i.non_trainable for i in self.layers)

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def output_types(self) -> list[TensorType]:
        return [self.tensors[o] for o in self.model.outputs]


class GraphError(ValueError):
    def __init__(self, message: str, loc: Loc):
        super().__init__(message)
        self.loc = loc


def analyze(model: Model) -> tuple[Analysis, list[GraphError]]:
    """Check wiring and shapes; every independent problem is returned, each with its IR location."""
    result = Analysis(model)
    errors: list[GraphError] = []
    names = Counter([i.name for i in model.inputs] + [l.name for l in model.layers])
    for i, layer in enumerate(model.layers):
        if names[layer.name] > 1:
            errors.append(GraphError(f"the name '{layer.name}' is used more than once", ("layers", i, "name")))
    for k, i in enumerate(model.inputs):
        result.tensors[i.name] = i.type()
        problem = tensor_problem(i.type())
        if problem:
            errors.append(GraphError(f"input '{i.name}': {problem}", ("inputs", k)))
    if errors:
        return result, errors

    produced = {}  # tensor -> index of the layer producing it (outputs are known after infer)
    parameters = 0
    for index in _topological_order(model, errors):
        layer = model.layers[index]
        lo, hi = layer.n_inputs
        if len(layer.inputs) < lo or (hi is not None and len(layer.inputs) > hi):
            want = f"{lo}" if lo == hi else f"at least {lo}" if hi is None else f"{lo} to {hi}"
            errors.append(GraphError(f"{layer.type} takes {want} input tensor(s), got {len(layer.inputs)}",
                                     ("layers", index)))
            continue
        missing = [t for t in layer.inputs if t not in result.tensors]
        if missing:
            if all(_produced_by_known(t, model) for t in missing):
                continue  # an upstream layer failed; its error is already reported
            known = [i.name for i in model.inputs] + [l.name for l in model.layers]
            errors.append(GraphError(f"unknown tensor '{missing[0]}'{did_you_mean(missing[0], known)}",
                                     ("layers", index, "inputs")))
            continue
        ins = [result.tensors[t] for t in layer.inputs]
        try:
            outs = layer.infer(ins)
            trainable, non_trainable = layer.parameter_counts(ins)
        except ShapeError as exc:
            errors.append(GraphError(str(exc), ("layers", index)))
            continue
        problem = next(filter(None, map(tensor_problem, outs)), None)
        if problem:
            errors.append(GraphError(f"{layer.name}: output {problem}", ("layers", index)))
            continue
        for name, t in zip(output_names(layer, len(outs)), outs):
            result.tensors[name] = t
            produced[name] = index
        result.layers.append(LayerInfo(layer, ins, outs, trainable, non_trainable))
        own = trainable + non_trainable
        parameters += own
        if parameters > MAX_PARAMETERS:  # stop here: later layers would only repeat it
            total = f"{own:,}" if own == parameters else f"{parameters:,} ({own:,} of them its own)"
            errors.append(GraphError(f"the model reaches {total} parameters at layer '{layer.name}'; the limit is "
                                     f"{MAX_PARAMETERS:,} (1 GiB of float32 weights)", ("layers", index)))
            return result, errors

    if errors:
        return result, errors
    used = {t for l in model.layers for t in l.inputs} | set(model.outputs)
    for j, out in enumerate(model.outputs):
        if out not in result.tensors:
            errors.append(GraphError(f"unknown output tensor '{out}'{did_you_mean(out, result.tensors)}",
                                     ("outputs", j)))
    for info in result.layers:
        main = info.layer.name
        if used.isdisjoint(output_names(info.layer, len(info.outputs))):  # an encoder may pass on only its states
            errors.append(GraphError(
                f"the output of layer '{main}' is never used; use it or list it as a model output",
                ("layers", model.layers.index(info.layer))))
    for k, i in enumerate(model.inputs):
        if i.name not in used:
            errors.append(GraphError(f"input '{i.name}' is never used", ("inputs", k)))
    if not errors and model.train is not None:
        errors += _check_losses(model, result)
    return result, errors


def tensor_problem(t: TensorType) -> str | None:
    """A tensor beyond the dimension or size limits, described; None when it is within them."""
    dims = [d for d in t.shape if d is not None]
    if any(d > MAX_DIM for d in dims):
        return f"{t} has a dimension beyond the limit of {MAX_DIM:,}"
    if math.prod(dims) > MAX_ELEMENTS:
        return f"{t} has {math.prod(dims):,} elements per sample, beyond the limit of {MAX_ELEMENTS:,}"
    return None


def tensor_source(tensor: str, names: Container[str]) -> tuple[str, int]:
    """The input or layer (among `names`) that produces `tensor`, and which of its outputs: a name
    alone is output 0, NAME:k output k. A name may itself hold ':' (tf2onnx names graph inputs
    'input_1:0'), so a tensor that is a known name is never split."""
    if tensor in names:
        return tensor, 0
    name, _, index = tensor.rpartition(":")
    return (name, int(index)) if name and index.isdigit() else (tensor, 0)


def producer_names(model: Model) -> set[str]:
    return {i.name for i in model.inputs} | {l.name for l in model.layers}


def _produced_by_known(tensor: str, model: Model) -> bool:
    return tensor_source(tensor, producer_names(model))[0] in {l.name for l in model.layers}


def _topological_order(model: Model, errors: list[GraphError]) -> list[int]:
    producer = {l.name: i for i, l in enumerate(model.layers)}
    names = producer_names(model)
    sources = [[tensor_source(t, names)[0] for t in l.inputs] for l in model.layers]
    deps = [{producer[s] for s in layer_sources if s in producer} for layer_sources in sources]
    order, state = [], [0] * len(model.layers)  # 0 new, 1 visiting, 2 done

    def visit(i: int) -> None:
        stack = [(i, iter(sorted(deps[i])))]
        state[i] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                order.append(node)
                stack.pop()
            elif state[child] == 1:
                errors.append(GraphError(
                    f"layer '{model.layers[child].name}' depends on its own output (a cycle)", ("layers", child)))
            elif state[child] == 0:
                state[child] = 1
                stack.append((child, iter(sorted(deps[child]))))

    for i in range(len(model.layers)):
        if state[i] == 0:
            visit(i)
    return order


def _check_losses(model: Model, analysis: Analysis) -> list[GraphError]:
    loss = model.train.loss
    if loss is None:
        return []
    losses = loss if isinstance(loss, list) else [loss] * len(model.outputs)
    if len(losses) != len(model.outputs):
        return [GraphError(f"{len(losses)} losses given for {len(model.outputs)} model outputs", ("train", "loss"))]
    errors = []
    for l, out in zip(losses, analysis.output_types):
        classes = out.shape[-1] if out.shape else 1
        if l.kind == "categorical" and l.name != "sparse_categorical_crossentropy" and classes == 1:
            errors.append(GraphError(
                f"{l.name} needs one output per class, but the model's output {out} has 1; "
                "use binary_crossentropy for a single probability", ("train", "loss")))
        if l.name == "sparse_categorical_crossentropy" and classes == 1:
            errors.append(GraphError(
                f"{l.name} needs one output per class, but the model's output {out} has 1", ("train", "loss")))
    return errors


def upstream(model: Model, tensors: list[str]) -> list[Layer]:
    """The layers that `tensors` (layer outputs such as "dense" or "lstm:1") depend on, in the
    model's order; a name that no layer gives is a ValueError naming it."""
    producers = {layer.name: layer for layer in model.layers}
    inputs = {i.name for i in model.inputs}
    names = producer_names(model)
    needed: set[str] = set()
    stack = [tensor_source(t, names)[0] for t in tensors]
    for name in stack:
        if name not in producers and name not in inputs:
            raise ValueError(f"no layer '{name}'{did_you_mean(name, producers)}")
    while stack:
        name = stack.pop()
        if name in producers and name not in needed:
            needed.add(name)
            stack.extend(tensor_source(t, names)[0] for t in producers[name].inputs or [])
    return [layer for layer in model.layers if layer.name in needed]


def truncated(model: Model, tensors: list[str]) -> Model:
    """The model cut to compute `tensors` (Keras's Model(inputs, layer.output)): feature extraction."""
    layers = upstream(model, tensors)
    names = producer_names(model)
    used = {tensor_source(t, names)[0] for t in [*tensors, *(t for layer in layers for t in layer.inputs or [])]}
    return model.model_copy(update={"layers": layers, "outputs": list(tensors),
                                    "inputs": [i for i in model.inputs if i.name in used]})


def is_chain(analysis: Analysis) -> bool:
    """One input, one output, each layer single-output and reading the layer before: a stack."""
    model = analysis.model
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return False
    previous = model.inputs[0].name
    for info in analysis.layers:
        if info.layer.inputs != [previous] or len(info.outputs) != 1:
            return False
        previous = info.layer.name
    return model.outputs == [previous]
