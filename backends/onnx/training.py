"""A whole training step as one ONNX graph: forward in training mode, loss, metric statistics,
gradients (autograd.py), gradient clipping, the optimizer's update and weight constraints.

Inputs: the batch, per-sample weights, the batch size, the learning rate, the step count, the
host's random draws (dropout masks, noise), and every parameter and optimizer slot. Outputs: the
loss, the metrics' statistics and the next value of every parameter and slot. The host only feeds batches and
swaps state buffers; parameters never leave the device between steps. Data-parallel replicas
take the step as two graphs instead (`split`), averaging gradients between them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from ...errors import SpecError
from ...ir.layers import FLOAT_DTYPES, Layer
from ...ir.model import Analysis
from ...ir.training import TrainConfig
from . import optimizers as opt
from . import primitives as P
from .autograd import grad
from .compile import trace
from .emit import DEFAULT_OPSET, to_onnx
from .graph import Graph, Var
from .noise import Draw, NoiseInput, noise_shape
from .objectives import MetricGraph, metric_graph, per_sample_loss


@dataclass
class Param:
    name: str  # state key: "layer/index:weight"
    layer: str
    index: int
    shape: tuple[int, ...]
    trainable: bool


@dataclass
class StepGraphs:
    """The compiled training and evaluation graphs and how their inputs and outputs are laid out."""

    train: onnx.ModelProto
    evaluate: onnx.ModelProto
    params: list[Param]
    slots: dict[str, np.ndarray]  # slot state key -> initial value
    noise: list[NoiseInput]  # what the host draws for each step (dropout masks, Gaussian noise)
    metrics: list[MetricGraph]
    stat_sizes: list[list[int]]  # per metric, the size of each statistic
    updates: dict[str, str] = field(default_factory=dict)  # state key -> train output with its next value
    x_names: list[str] = field(default_factory=list)
    y_names: list[str] = field(default_factory=list)
    rnn_states: dict[str, int] = field(default_factory=dict)  # stateful layers' carried states -> units
    # split steps only: the optimizer-update graph, the train graph's gradient output of each trainable
    # parameter, and the update graph's output with the next value of each parameter and slot
    update: onnx.ModelProto | None = None
    gradients: dict[str, str] = field(default_factory=dict)
    applied: dict[str, str] = field(default_factory=dict)


def param_name(layer: str, index: int, weight: str) -> str:
    return f"{layer}/{index}:{weight}"


def slot_name(param: str, slot: str) -> str:
    return f"{param}#{slot}"


class _Context:
    """The training mode layers see (layers.TrainContext)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.draws: list[NoiseInput] = []
        self.updates: dict[tuple[str, str], Var] = {}
        self.activity: list[Var] = []
        self.batch: Var | None = None
        self.states: dict[str, int] = {}  # stateful RNN state input -> units
        self.carried: dict[str, Var] = {}  # state input -> its value after this batch

    def noise(self, layer: Layer, x: Var, draw: Draw) -> Var:
        spec = NoiseInput(f"{layer.name}/noise", noise_shape(layer, x.shape), draw)
        self.draws.append(spec)
        return self.graph.input(spec.name, spec.shape, "float32")

    def update(self, layer: Layer, weight: str, value: Var) -> None:
        self.updates[(layer.name, weight)] = value

    def recurrent_state(self, key: str, index: int, units: int) -> Var:
        name = f"{key}/state:{index}"
        self.states[name] = units
        return self.graph.input(name, (None, units), "float32")

    def carry_state(self, key: str, index: int, value: Var) -> None:
        self.carried[f"{key}/state:{index}"] = value

    def layer_outputs(self, layer: Layer, outputs: list[Var]) -> None:
        """Keras's activity regularization: a penalty on the layer's output, per sample."""
        reg = getattr(layer, "activity_regularizer", None)
        if layer.type == "ActivityRegularization":
            from ...ir.functions import L1L2

            reg = L1L2(l1=layer.l1, l2=layer.l2)
        term = opt.penalty(reg, outputs[0])
        if term is not None:
            self.activity.append(term / self.batch)


def _logits(y: Var) -> Var | None:
    """The pre-activation of a final softmax (last axis) or sigmoid, for cross-entropy on logits."""
    eqn = y.eqn
    if eqn is None:
        return None
    if eqn.prim is P.sigmoid or (eqn.prim is P.softmax and eqn.params["axis"] == y.rank - 1):
        return eqn.inputs[0]
    return None


def build(analysis: Analysis, config: TrainConfig, targets: list[tuple[tuple[int, ...], str]], opset: int = DEFAULT_OPSET,
          split: bool = False) -> StepGraphs:
    """`targets`: the (per-sample shape, dtype) of each target array, in output order. `split`: the step as
    two graphs, gradients and then the optimizer's update (StepGraphs.update), for data-parallel replicas."""
    model = analysis.model
    if config.loss is None:
        raise SpecError("no loss: give one in the spec's train section, with --loss, or to compile(loss=...)")
    losses = config.loss if isinstance(config.loss, list) else [config.loss] * len(model.outputs)
    if len(targets) != len(model.outputs):
        raise SpecError(f"the data has {len(targets)} target array(s); the model has {len(model.outputs)} output(s)")
    params: list[Param] = []
    specs = {}  # state key -> the IR's Weight (initializer, regularizer, constraint)
    for info in analysis.layers:
        for i, w in enumerate(info.layer.weights(info.inputs)):
            params.append(Param(param_name(info.layer.name, i, w.name), info.layer.name, i, tuple(w.shape),
                                info.layer.trainable and w.trainable))
            specs[params[-1].name] = w
    metrics = [metric_graph(m, losses[0], analysis.output_types[0].shape[-1] if analysis.output_types[0].shape else 1,
                            sparse_targets=_is_sparse(targets[0], analysis.output_types[0].shape))
               for m in config.metrics]

    def graph_for(training: bool) -> tuple[Graph, dict[str, Var], _Context | None, dict[str, Var]]:
        graph = Graph()
        param_vars = {p.name: graph.input(p.name, p.shape, "float32") for p in params}
        by_layer: dict[str, list[Var]] = {}
        for p in params:
            by_layer.setdefault(p.layer, []).append(param_vars[p.name])
        ctx = _Context(graph) if training else None
        batch = graph.input("batch_size", (), "float32")
        if ctx is not None:
            ctx.batch = batch
        _, outputs = trace(analysis, by_layer, fused=False, graph=graph, train=ctx)
        ys = [graph.input(f"y{i}", (None, *shape), dtype) for i, (shape, dtype) in enumerate(targets)]
        sample_weight = graph.input("sample_weight", (None,), "float32")
        with graph.scope("loss"):
            total = None
            for loss, y_true, y_pred in zip(losses, ys, outputs.values()):
                if y_true.dtype not in FLOAT_DTYPES and loss.name != "sparse_categorical_crossentropy":
                    y_true = P.cast(y_true, dtype="float32")
                values = per_sample_loss(loss, y_true, y_pred, _logits(y_pred))
                per_element = int(np.prod([d for d in values.shape[1:]])) if values.rank > 1 else 1
                weights = P.reshape(sample_weight, shape=(-1,) + (1,) * (values.rank - 1))
                summed = P.reduce_sum(values * weights, axes=tuple(range(values.rank)), keepdims=False)
                term = summed / (batch * float(per_element))
                total = term if total is None else total + term
            for p in params:
                term = opt.penalty(specs[p.name].regularizer, param_vars[p.name])
                if term is not None:
                    total = total + term
            for term in ctx.activity if ctx is not None else []:
                total = total + term
        stats = {}
        with graph.scope("metrics"):
            y_true = ys[0]
            y_pred = next(iter(outputs.values()))
            for i, m in enumerate(metrics):
                true = y_true if y_true.dtype in FLOAT_DTYPES or "sparse" in m.name else P.cast(y_true, dtype="float32")
                for j, s in enumerate(m.stats(true, y_pred, sample_weight)):
                    stats[f"metric{i}_{j}"] = s
        return graph, {"loss": total, **stats}, ctx, param_vars

    # ---- the evaluation graph: inference-mode forward, loss and statistics
    eval_graph, eval_outputs, _, _ = graph_for(training=False)
    evaluate = to_onnx(eval_graph, eval_outputs, opset, f"{model.name}_evaluate")
    stat_sizes = _stat_sizes(metrics, eval_outputs)

    # ---- the training graph: one step, or (split) a gradient graph and an optimizer-update graph, between
    # which data-parallel replicas average their gradients
    graph, outputs, ctx, param_vars = graph_for(training=True)
    trainable = [p for p in params if p.trainable]
    with graph.scope("gradients"):
        grads = grad(graph, outputs["loss"], [param_vars[p.name] for p in trainable])
    present = [(p, g) for p, g in zip(trainable, grads) if g is not None]
    train_outputs = dict(outputs)
    update_graph = Graph() if split else graph
    if split:
        param_vars = {p.name: update_graph.input(p.name, p.shape, "float32") for p, _ in present}
        for p, g in present:
            train_outputs[gradient_name(p.name)] = g
        grads_in = [update_graph.input(gradient_name(p.name), p.shape, "float32") for p, _ in present]
    else:
        grads_in = [g for _, g in present]
    new_values, slots = _optimizer_update(update_graph, config.optimizer, [p for p, _ in present], grads_in,
                                          param_vars, specs)
    carried: dict[str, Var] = {}  # what the gradient graph itself gives: moving statistics, recurrent states
    for (layer, weight), v in ctx.updates.items():
        p = next(p for p in params if p.layer == layer and p.name.endswith(":" + weight))
        carried[p.name] = v
    carried.update(ctx.carried)
    updates = {key: f"next:{key}" for key in carried}
    train_outputs.update({f"next:{key}": v for key, v in carried.items()})
    applied = {key: f"next:{key}" for key in new_values}
    update = None
    if split:
        update = to_onnx(update_graph, {applied[k]: v for k, v in new_values.items()}, opset, f"{model.name}_update")
    else:
        updates.update(applied)
        train_outputs.update({applied[k]: v for k, v in new_values.items()})
    train = to_onnx(graph, train_outputs, opset, f"{model.name}_train")
    return StepGraphs(train, evaluate, params, slots, ctx.draws, metrics, stat_sizes, updates,
                      [i.name for i in model.inputs], [f"y{i}" for i in range(len(targets))], ctx.states,
                      update=update, gradients={p.name: gradient_name(p.name) for p, _ in present} if split else {},
                      applied=applied if split else {})


def gradient_name(param: str) -> str:
    return f"grad:{param}"


def _optimizer_update(graph: Graph, optimizer, params: list[Param], grads: list[Var], param_vars: dict[str, Var],
                      specs: dict) -> tuple[dict[str, Var], dict[str, np.ndarray]]:
    """The optimizer's step in `graph`: the next value of each parameter and slot, and the slots' initial values."""
    lr = graph.input("learning_rate", (), "float32")
    t = graph.input("iteration", (), "float32")  # 1-based
    slots: dict[str, np.ndarray] = {}
    new_values: dict[str, Var] = {}
    with graph.scope("optimizer"):
        clipped = opt.clip_gradients(optimizer, grads)
        shared_in = {k: graph.input(f"optimizer#{k}", (), "float32") for k in opt.global_slots(optimizer)}
        for p, g in zip(params, clipped):
            slot_vars = {}
            for s in opt.slot_names(optimizer):
                key = slot_name(p.name, s)
                slots[key] = opt.initial_slot(optimizer, s, p.shape)
                slot_vars[s] = graph.input(key, p.shape, "float32")
            w_new, slot_new = opt.update(optimizer, param_vars[p.name], g, slot_vars, shared_in, lr, t)
            new_values[p.name] = opt.constrain(specs[p.name].constraint, w_new)
            for s, v in slot_new.items():
                new_values[slot_name(p.name, s)] = v
        for k, v in opt.update_shared(optimizer, shared_in, t).items():
            slots[f"optimizer#{k}"] = np.float32(opt.global_slots(optimizer)[k])
            new_values[f"optimizer#{k}"] = v
    return new_values, slots


def _is_sparse(target: tuple[tuple[int, ...], str], output_shape) -> bool:
    shape, dtype = target
    classes = output_shape[-1] if output_shape else 1
    return classes > 1 and (len(shape) == 0 or shape == (1,))


def _stat_sizes(metrics: list[MetricGraph], outputs: dict[str, Var]) -> list[list[int]]:
    sizes = []
    for i, m in enumerate(metrics):
        row, j = [], 0
        while f"metric{i}_{j}" in outputs:
            v = outputs[f"metric{i}_{j}"]
            row.append(int(np.prod(v.shape)) if v.shape else 1)
            j += 1
        sizes.append(row)
    return sizes
