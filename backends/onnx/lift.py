"""ONNX graphs -> IR layers and Keras-order weights: the inverse of compile, and of tf2onnx.

    lifted = lift("model.onnx")           # Lifted: .model, .weights, .notes

Nodes are read in order; each op's handler (lift_ops.py) turns it into a change of view (a
transpose or unit reshape of a tensor), a folded constant, or a layer record. The records are
then simplified (passes below): a bias add joins its Dense or Conv, an activation its layer, a
per-channel scale and shift become one BatchNormalization, pairwise merges one merge; recurrent
layers learn from their consumers whether they return sequences.

Files nnspec wrote carry their spec: its architecture is used as written, and the weights are
read through it (spec_weights.py), else from the lifted layers of the same names. A folded batch normalization (x * scale + shift) comes
back as gamma = scale, beta = shift, moving_mean = 0, moving_variance = 1 - epsilon: the
normalization then divides by sqrt(1) and gamma and beta stay the stored numbers bit for bit.

Refused, naming the node: ops or settings with no IR layer, and external data outside the
model's folder (an ONNX file must not make nnspec read other files).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from pydantic import ValidationError

from ...errors import SpecError
from ...ir.layers import LAYERS, FLOAT_DTYPES, INT_DTYPES
from ...ir.model import Input, Model, Namer, analyze
from ...ir.validation import messages
from ...ir.weights import Weights, check_weights
from .lift_graph import LiftError, Record, Tensor, View
from .spec_weights import weights_from_spec

# layers an activation or a bias add can join
_WEIGHTED = {"Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
             "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"}


@dataclass
class Lifted:
    model: Model
    weights: Weights
    notes: list[str] = field(default_factory=list)
    folded: dict[str, tuple] = field(default_factory=dict)  # BatchNormalization layers lifted from x * scale + shift


def lift(source: str | Path | onnx.ModelProto, name: str | None = None, model: Model | None = None) -> Lifted:
    """The IR model and weights of an ONNX file or loaded model (`name` labels a loaded one). With
    `model` (the spec an nnspec-written file carries), that model with its weights found in the graph."""
    path = name or (str(source) if not isinstance(source, onnx.ModelProto) else "<onnx>")
    proto = source if isinstance(source, onnx.ModelProto) else load_checked(source)
    if model is not None:
        if (weights := weights_from_spec(model, proto)) is not None:
            return Lifted(model, weights)
        lifted = _Lifter(proto, path, scope_depth=0).run()
        return Lifted(model, _weights_for(model, lifted, path), lifted.notes)
    return _Lifter(proto, path, scope_depth=None).run()


# ---- loading -------------------------------------------------------------------------------


def check_proto(proto: onnx.ModelProto, path: str) -> None:
    """What protobuf parses without complaint but is not a model: no graph (an empty file), or names
    that are not UTF-8 text (protobuf hands them out as bytes)."""
    if not proto.ir_version or not proto.HasField("graph"):
        raise SpecError("not an ONNX model (no graph in it)", path)
    graphs = [proto.graph]
    while graphs:  # subgraphs of If and Loop nodes too, without recursion
        graph = graphs.pop()
        names = [graph.name, *(v.name for v in [*graph.input, *graph.output, *graph.value_info, *graph.initializer])]
        for node in graph.node:
            names += [node.name, node.op_type, node.domain, *node.input, *node.output, *(a.name for a in node.attribute)]
            for attribute in node.attribute:
                graphs += [attribute.g] if attribute.HasField("g") else []
                graphs += list(attribute.graphs)
        if any(not isinstance(name, str) for name in names):
            raise SpecError("not a valid ONNX model (a name in its graph is not UTF-8 text)", path)


def load_checked(path: str | Path) -> onnx.ModelProto:
    """An ONNX file; external data is read only from files inside the model's own folder."""
    path = str(path)
    try:
        proto = onnx.load(path, load_external_data=False)
    except FileNotFoundError:
        raise SpecError("no such file", path) from None
    except Exception as exc:  # protobuf's DecodeError and friends: not ONNX
        raise SpecError(f"not an ONNX model: {' '.join(str(exc).split())}", path) from None
    check_proto(proto, path)
    folder = Path(path).resolve().parent
    external = [t for t in _all_tensors(proto.graph) if t.data_location == onnx.TensorProto.EXTERNAL]
    for tensor in external:
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        target = (folder / location).resolve()
        if os.path.isabs(location) or folder not in target.parents:
            raise SpecError(f"tensor '{tensor.name}' keeps its data in '{location}', outside the model's "
                            "folder; refused", path)
        if not target.is_file():
            raise SpecError(f"tensor '{tensor.name}': external data file '{location}' is missing", path)
    if external:
        onnx.load_external_data_for_model(proto, str(folder))
    return proto


def _all_tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            for g in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from _all_tensors(g)


# ---- the walk ------------------------------------------------------------------------------


class _Lifter:
    def __init__(self, proto: onnx.ModelProto, path: str, scope_depth: int | None):
        from .lift_ops import HANDLERS

        self.proto, self.path, self.handlers = proto, path, HANDLERS
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.values: dict[str, object] = {"": None}
        self.records: list[Record] = []
        self.node: onnx.NodeProto | None = None
        names = [n.name for n in proto.graph.node if "/" in n.name]
        if scope_depth is None:  # "model/layer/op" (tf2onnx), "/layer/op" (PyTorch): skip the shared head
            head, count = Counter(n.split("/")[0] for n in names).most_common(1)[0] if names else ("", 0)
            shared = [n for n in names if n.startswith(head + "/")]
            scope_depth = 1 if count * 2 > len(names) and all(n.count("/") >= 2 for n in shared) else 0
        self.scope_depth = scope_depth

    # -- what handlers use
    def fail(self, problem: str) -> LiftError:
        node = self.node
        where = f"node '{node.name or node.output[0]}' ({node.op_type})" if node is not None else "graph"
        return LiftError(f"cannot lift {where}: {problem}", self.path)

    def value(self, name: str):
        if name not in self.values:
            raise self.fail(f"input '{name}' is not defined before it is used")
        return self.values[name]

    def view(self, name: str) -> View:
        v = self.value(name)
        if not isinstance(v, View):
            raise self.fail(f"input '{name}' is {'missing' if v is None else 'a constant'}; expected a tensor")
        return v

    def const(self, name: str) -> np.ndarray:
        v = self.value(name)
        if not isinstance(v, np.ndarray):
            raise self.fail(f"input '{name}' must be a constant")
        return v

    def record(self, type_: str, fields: dict, weights: dict, inputs: list[Tensor]) -> Record:
        r = Record(type_, fields, weights, inputs, scope=self.scope())
        self.records.append(r)
        return r

    def scope(self) -> str | None:
        """A layer name from the node's name ("dense/Gemm", "model/dense/MatMul"), else from the
        node that made its first tensor input."""
        node = self.node
        parts = node.name.split("/")
        if len(parts) > self.scope_depth + 1 and parts[self.scope_depth]:
            return parts[self.scope_depth]
        if node.name in self.output_names:  # nnspec names a layer's last node after its output
            return node.name
        for name in node.input:
            v = self.values.get(name)
            if isinstance(v, View) and v.tensor.layer is None:
                return None
            producer = self.producers.get(name)
            if producer is not None and len(producer.name.split("/")) > self.scope_depth + 1:
                return producer.name.split("/")[self.scope_depth]
        return None

    def materialize(self, v: View) -> Tensor:
        """A tensor whose Keras layout is the view's ONNX layout: Permute and/or Reshape layers."""
        if v.identity():
            return v.tensor
        if v.axes[0] != 0:
            raise self.fail("a tensor whose first dimension is not the batch cannot be a Keras tensor")
        t, kept = v.tensor, [a for p, a in enumerate(v.axes) if not v.free(p)]
        if kept != sorted(kept):  # a real transpose: Permute the non-unit axes into place
            dims = sorted(range(1, t.rank), key=lambda a: kept.index(a) if a in kept else -1)
            r = self.record("Permute", {"dims": dims}, {}, [t])
            t = r.output(tuple(t.size(a) for a in dims), t.dtype)
            v = View(t, tuple(None if a is None else (0 if a == 0 else dims.index(a) + 1) for a in v.axes))
        if not v.identity():
            shape = v.dims()[1:]
            if None in shape:
                raise self.fail("reshaping a tensor of unknown size")
            r = self.record("Reshape", {"target_shape": shape}, {}, [t])
            t = r.output(tuple(shape), t.dtype)
        return t

    # -- the walk
    def run(self) -> "Lifted":
        graph = self.proto.graph
        self.producers = {o: n for n in graph.node for o in n.output}
        self.output_names = {o.name for o in graph.output}
        for init in graph.initializer:
            self.values[init.name] = numpy_helper.to_array(init)
        initializers = {i.name for i in graph.initializer}
        inputs = []
        for vi in graph.input:
            if vi.name in initializers:
                continue
            t = _input_tensor(vi, self)
            inputs.append(t)
            self.values[vi.name] = View.of(t)
        for node in graph.node:
            self.node = node
            handler = self.handlers.get(node.op_type) if node.domain in ("", "ai.onnx") else None
            if handler is None:
                raise self.fail(f"op {node.domain + '.' if node.domain else ''}{node.op_type} has no nnspec layer")
            handler(self, node)
        self.node = None
        outputs = []
        for vi in graph.output:
            v = self.values.get(vi.name)
            if not isinstance(v, View):
                raise LiftError(f"cannot lift output '{vi.name}': it is not computed from the inputs", self.path)
            outputs.append(self.materialize(v))
        return _build(self, inputs, outputs)


def _input_tensor(vi: onnx.ValueInfoProto, lf: _Lifter) -> Tensor:
    tt = vi.type.tensor_type
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).name
    except (KeyError, TypeError, ValueError):
        dtype = "?"
    if dtype not in FLOAT_DTYPES + INT_DTYPES:
        raise LiftError(f"cannot lift input '{vi.name}': element type {dtype} is not supported", lf.path)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
    if not dims:
        raise LiftError(f"cannot lift input '{vi.name}': a scalar input has no batch dimension", lf.path)
    return Tensor(tuple(dims[1:]), dtype, None, vi.name)


# ---- simplification and the IR ---------------------------------------------------------------


def _consumers(records: list[Record], outputs: list[Tensor]) -> dict[int, int]:
    count: dict[int, int] = {}
    for r in records:
        for t in r.inputs:
            count[id(t)] = count.get(id(t), 0) + 1
    for t in outputs:
        count[id(t)] = count.get(id(t), 0) + 1
    return count


def _fuse(lf: _Lifter, outputs: list[Tensor]) -> None:
    """Join records that are one Keras layer: a second record reading only the first's output,
    which nothing else reads, is folded into the first (see JOINS)."""
    changed = True
    while changed:
        changed = False
        uses = _consumers(lf.records, outputs)
        for second in list(lf.records):
            if len(second.inputs) != 1 or second.inputs[0].layer is None:
                continue
            first = second.inputs[0].layer
            if uses[id(second.inputs[0])] != 1 or len(first.outputs) != 1:
                continue
            if not any(join(first, second) for join in JOINS):  # the first join that fits folds them
                continue
            lf.records.remove(second)
            out = second.outputs[0]
            first.outputs = [out]
            out.layer = first
            changed = True
            break


def _bias(first: Record, second: Record) -> bool:
    """Dense/Conv without a bias, then an add of one number per output channel."""
    if first.type not in _WEIGHTED or first.fields.get("use_bias", True) or second.type != "Affine" \
            or second.fields["scale"] is not None or second.fields["axis"] != -1:
        return False
    first.fields["use_bias"], first.weights["bias"] = True, second.fields["shift"]
    return True


def _activation(first: Record, second: Record) -> bool:
    if first.type not in _WEIGHTED or second.type != "Activation" or "activation" in first.fields:
        return False
    first.fields["activation"] = second.fields["activation"]
    return True


def _affine_chain(first: Record, second: Record) -> bool:
    """x * scale, then + shift on the same axis: one affine map."""
    if first.type != second.type or first.type != "Affine" or first.fields["shift"] is not None \
            or second.fields["scale"] is not None or first.fields["axis"] != second.fields["axis"]:
        return False
    first.fields["shift"] = second.fields["shift"]
    return True


def _average(first: Record, second: Record) -> bool:
    """Add(x1..xn), then * 1/n: Average (nnspec writes it so)."""
    if first.type != "Add" or second.type != "Affine" or second.fields["shift"] is not None:
        return False
    scale = second.fields["scale"]
    if not np.allclose(scale, 1.0 / len(first.inputs), rtol=1e-6, atol=0):
        return False
    first.type = "Average"
    return True


def _separable(first: Record, second: Record) -> bool:
    """A depthwise conv without bias or activation, then a 1x1 conv of the same layer: SeparableConv."""
    rank = first.type[-2]
    if not first.type.startswith("DepthwiseConv") or second.type != f"Conv{rank}D" or first.scope != second.scope \
            or first.fields["use_bias"] or "activation" in first.fields or second.fields["groups"] != 1 \
            or any(d != 1 for key in ("kernel_size", "strides", "dilation_rate") for d in second.fields[key]):
        return False
    first.type = f"SeparableConv{rank}D"
    first.fields.update(filters=second.fields["filters"], use_bias=second.fields["use_bias"],
                        **{k: v for k, v in second.fields.items() if k == "activation"})
    first.weights = {"depthwise_kernel": first.weights["kernel"], "pointwise_kernel": second.weights["kernel"],
                     **{k: v for k, v in second.weights.items() if k == "bias"}}
    return True


# Each join checks its pattern and, where it fits, folds the second record into the first.
JOINS = [_bias, _activation, _affine_chain, _average, _separable]
_PAIRWISE = {"Add", "Multiply", "Maximum", "Minimum"}  # nnspec reduces these pairwise


def _merge_pairs(lf: _Lifter, outputs: list[Tensor]) -> None:
    """A merge whose input is the same kind of merge, read by it alone: one merge of all inputs."""
    changed = True
    while changed:
        changed = False
        uses = _consumers(lf.records, outputs)
        for outer in lf.records:
            if outer.type not in _PAIRWISE:
                continue
            for i, t in enumerate(outer.inputs):
                inner = t.layer
                if inner is not None and inner.type == outer.type and uses[id(t)] == 1:
                    outer.inputs[i:i + 1] = inner.inputs
                    lf.records.remove(inner)
                    changed = True
                    break
            if changed:
                break


def _affine_to_batch_norm(r: Record) -> tuple:
    """A per-channel affine map as BatchNormalization (see the top); returns (scale, shift)."""
    scale, shift = r.fields.pop("scale"), r.fields.pop("shift")
    r.type = "BatchNormalization"
    r.fields.update(center=shift is not None, scale=scale is not None)
    r.weights = unfold(LAYERS.members["BatchNormalization"](**r.fields), scale, shift)
    return scale, shift


def unfold(bn, scale: np.ndarray | None, shift: np.ndarray | None) -> dict[str, np.ndarray]:
    """BatchNormalization weights that compute x * scale + shift (None: 1 and 0): gamma and beta
    are scale and shift where the layer has them, with mean 0 and variance 1 - epsilon; a layer
    without gamma takes the scale from its variance, one without beta the shift from its mean."""
    size = (scale if scale is not None else shift).shape[0]
    s = np.ones(size, np.float32) if scale is None else scale
    t = np.zeros(size, np.float32) if shift is None else shift
    weights = {"moving_mean": np.zeros(size, np.float32),
               "moving_variance": np.full(size, 1.0 - bn.epsilon, np.float32)}
    if bn.scale:
        weights["gamma"] = s
    else:
        weights["moving_variance"] = (1.0 / (s.astype(np.float64) ** 2) - bn.epsilon).astype(np.float32)
    if bn.center:
        weights["beta"] = t
    else:  # the layer multiplies by s either way, so (0 - mean) * s = t
        weights["moving_mean"] = (-t.astype(np.float64) / s).astype(np.float32)
    return weights


def _recurrent_outputs(r: Record, uses: dict[int, int]) -> None:
    """A recurrent layer returns its sequence if anything reads it; states after it if read."""
    sequence, states = r.outputs[0], r.states
    used_states = [s for s in states if uses.get(id(s))]
    r.fields["return_sequences"] = bool(uses.get(id(sequence)))
    main = sequence if r.fields["return_sequences"] else states[0]
    r.fields["return_state"] = bool(used_states) and (r.fields["return_sequences"] or
                                                     any(s is not states[0] for s in used_states))
    r.outputs = [main] + (states if r.fields["return_state"] else [])


def _build(lf: _Lifter, inputs: list[Tensor], outputs: list[Tensor]) -> Lifted:
    _merge_pairs(lf, outputs)
    _fuse(lf, outputs)
    uses = _consumers(lf.records, outputs)
    live = _live(lf.records, outputs)
    lf.records = [r for r in lf.records if id(r) in live]
    namer = Namer({t.name for t in inputs})
    layers, weights, folded = [], {}, {}
    for r in lf.records:
        affine = _affine_to_batch_norm(r) if r.type == "Affine" else None
        if r.states:
            _recurrent_outputs(r, uses)
        name = r.scope if r.scope and r.scope not in namer.taken else namer.new(r.type)
        namer.claim(name)
        if affine is not None:
            folded[name] = affine
        for k, t in enumerate(r.outputs):
            if t.name is None:  # a state that is also the main output keeps the main output's name
                t.name = name if k == 0 else f"{name}:{k}"
        try:
            layer = LAYERS.members[r.type](type=r.type, name=name, inputs=[t.name for t in r.inputs], **r.fields)
        except ValidationError as exc:
            raise LiftError(f"cannot lift layer '{name}' ({r.type}): {messages(exc, LAYERS.members[r.type])[0][1]}",
                            lf.path) from None
        layers.append(layer)
        if r.weights:
            weights[name] = r.weights
    model = Model(name=_model_name(lf.proto), inputs=[Input(name=t.name, dtype=t.dtype, shape=list(t.shape))
                                                      for t in inputs],
                  layers=layers, outputs=[t.name for t in outputs])
    analysis, problems = analyze(model)
    if problems:
        raise LiftError(f"the lifted model is inconsistent: {problems[0]}", lf.path)
    ordered = {}
    for info in analysis.layers:
        if info.layer.name in weights:
            by_name = weights[info.layer.name]
            specs = info.layer.weights(info.inputs)
            ordered[info.layer.name] = [np.asarray(by_name[w.name], np.float32) for w in specs]
    check_weights(analysis, ordered, lf.path)
    notes = [f"batch normalization '{name}' was folded into a scale and shift in the graph: it comes back as "
             "gamma = scale, beta = shift, moving_mean = 0, moving_variance = 1 - epsilon" for name in folded]
    return Lifted(model, ordered, notes, folded)


def _live(records: list[Record], outputs: list[Tensor]) -> set[int]:
    live, stack = set(), [t.layer for t in outputs if t.layer is not None]
    while stack:
        r = stack.pop()
        if id(r) not in live:
            live.add(id(r))
            stack += [t.layer for t in r.inputs if t.layer is not None]
    return live


def _model_name(proto: onnx.ModelProto) -> str:
    name = proto.graph.name or "model"
    return name if name.replace("_", "a").isalnum() and not name[0].isdigit() else "model"


def _folded_into_weights(layer, found: dict) -> bool:
    """A spec's BatchNormalization that compiling folded into the Conv/Dense before it (no node left)."""
    producer = found.get(layer.inputs[0]) if layer.inputs else None
    return (layer.type == "BatchNormalization" and layer.name not in found and producer is not None
            and producer.type in _WEIGHTED)


def _weights_for(model: Model, lifted: Lifted, path: str) -> Weights:
    """The spec's weights from the lifted layers of the same names."""
    analysis, _ = analyze(model)
    found = {l.name: l for l in lifted.model.layers}
    lifted_analysis, _ = analyze(lifted.model)
    arrays = {info.layer.name: dict(zip([w.name for w in info.layer.weights(info.inputs)],
                                        lifted.weights.get(info.layer.name, [])))
              for info in lifted_analysis.layers}
    names = {info.layer.name: {w.name for w in info.layer.weights(info.inputs)} for info in analysis.layers}
    for layer in model.layers:  # a folded last layer: its node, the conv's, is named after the model's output
        lifted_as = found.get(layer.name)
        if layer.type == "BatchNormalization" and lifted_as is not None and lifted_as.type in _WEIGHTED \
                and layer.inputs and layer.inputs[0] not in found:
            found[layer.inputs[0]], arrays[layer.inputs[0]] = found.pop(layer.name), arrays.pop(layer.name)
    out: Weights = {}
    for info in analysis.layers:
        specs = info.layer.weights(info.inputs)
        if not specs:
            continue
        have = arrays.get(info.layer.name, {})
        if info.layer.name in lifted.folded and info.layer.type == "BatchNormalization":
            have = unfold(info.layer, *lifted.folded[info.layer.name])  # the spec's epsilon and flags
        elif _folded_into_weights(info.layer, found):
            producer = info.layer.inputs[0]
            size = specs[-1].shape[0]
            # the shift went into the producer's bias; one the spec's producer lacks stays here
            bias = arrays.get(producer, {}).get("bias")
            shift = bias if bias is not None and "bias" not in names[producer] else np.zeros(size, np.float32)
            have = unfold(info.layer, np.ones(size, np.float32), shift)
            found[info.layer.name] = info.layer
            lifted.notes.append(f"batch normalization '{info.layer.name}' was folded into the weights of "
                                f"'{producer}': it comes back with gamma 1, moving_mean 0, moving_variance "
                                "1 - epsilon, the scale and shift in those weights (beta: a shift their "
                                "layer has no bias for)")
        missing = [w.name for w in specs if w.name not in have]
        if info.layer.name not in found or missing:
            raise LiftError(f"cannot recover the weights of layer '{info.layer.name}' from the graph "
                            f"(missing: {', '.join(missing)})", path)
        out[info.layer.name] = [have[w.name] for w in specs]
    check_weights(analysis, out, path)
    return out
