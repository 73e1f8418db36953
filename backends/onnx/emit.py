"""Lowering: the live equations of a primitive graph become one ONNX graph."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import Aval, Deferred, Graph, Var, live_equations

DEFAULT_OPSET = 18  # every op used has a CUDA kernel at this version (see FACTS.md)
MIN_OPSET, MAX_OPSET = 17, 26  # 17: LayerNormalization; onnxruntime 1.31 loads up to 26
MIN_IR_VERSION = 10
SMALL_CONSTANT = 64  # elements; identical small constants of one layer share an initializer


class Emitter:
    """What lowering rules see as `ctx`: makes nodes and initializers named after the current layer."""

    def __init__(self, opset: int, large: list | None = None, prefix: str = ""):
        self.opset, self.large = opset, large
        self.prefix = prefix  # a subgraph's names start with its node's: ONNX forbids shadowing outer names
        self.scope = ""
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.taken: set[str] = set()
        self._suffix: dict[str, int] = {}  # the next suffix to try per base: naming stays linear in graph size
        self.producer: dict[str, tuple[onnx.NodeProto, int]] = {}
        self._small: dict[tuple, str] = {}

    def fresh(self, base: str) -> str:
        base = self.prefix + base
        name, k = base, self._suffix.get(base, 0)
        if k:
            name = f"{base}_{k}"
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self._suffix[base] = k + 1
        self.taken.add(name)
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs) -> str | list[str]:
        inputs = list(inputs)
        while inputs and not inputs[-1]:  # trailing optional inputs left out
            inputs.pop()
        attrs = {k: v for k, v in attrs.items() if v is not None and not (isinstance(v, (list, tuple)) and not v)}
        base = f"{self.scope}/{op_type}" if self.scope else op_type
        names = [self.fresh(base if i == 0 else f"{base}:{i}") for i in range(outputs)]
        node = helper.make_node(op_type, inputs, names, name=names[0], **attrs)
        self.nodes.append(node)
        for i, n in enumerate(names):
            self.producer[n] = (node, i)
        return names[0] if outputs == 1 else names

    def const(self, value: np.ndarray | Deferred, name: str | None = None) -> str:
        base = name or (f"{self.scope}/const" if self.scope else "const")
        if self.large is not None and streamed(value):
            out = self.fresh(base)
            self.large.append((out, value))
            return out
        value = np.asarray(value)
        key = None
        if value.size <= SMALL_CONSTANT and name is None:
            key = (self.scope, value.dtype.str, value.shape, value.tobytes())
            if key in self._small:
                return self._small[key]
        out = self.fresh(base)
        self.initializers.append(numpy_helper.from_array(value, out))
        if key is not None:
            self._small[key] = out
        return out

    def ints(self, values) -> str:
        return self.const(np.asarray(values, np.int64))

    @staticmethod
    def dtype(name: str) -> int:
        return helper.np_dtype_to_tensor_dtype(np.dtype(name))

    def rename(self, name: str, new: str) -> bool:
        """Give a node's output its final name (a graph output); False if no node made it."""
        if name not in self.producer or new in self.producer:
            return False
        node, i = self.producer.pop(name)
        node.output[i] = new
        if i == 0:
            node.name = new
        self.producer[new] = (node, i)
        return True


def aval_of(value: np.ndarray | Deferred) -> Aval:
    return value.aval if isinstance(value, Deferred) else Aval(value.shape, str(value.dtype))


def streamed(value: np.ndarray | Deferred) -> bool:
    """A large numeric constant, which stream.py writes as raw bytes in its turn."""
    value = value if isinstance(value, Deferred) else np.asarray(value)
    aval = aval_of(value)
    return np.dtype(aval.dtype).kind in "fiub" and int(np.prod(aval.shape)) > SMALL_CONSTANT


def value_info(name: str, aval: Aval) -> onnx.ValueInfoProto:
    dims = ["batch" if i == 0 and d is None else d for i, d in enumerate(aval.shape)]
    return helper.make_tensor_value_info(name, Emitter.dtype(aval.dtype), dims)


def ir_version(opset: int) -> int:
    return max(MIN_IR_VERSION, helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))


def to_onnx(graph: Graph, outputs: dict[str, Var], opset: int = DEFAULT_OPSET, name: str = "model",
            large: list | None = None) -> onnx.ModelProto:
    """Graph inputs keep their names (the spec's); each output gets the spec's tensor name. `large`:
    where given, large constants are appended to it as (name, array or Deferred) instead of being
    put in the model, for stream.py to write one at a time."""
    ctx = Emitter(opset, large)
    ctx.taken |= {v.hint for v in graph.inputs} | set(outputs)
    g = lower_graph(ctx, graph, {id(v): v.hint for v in graph.inputs}, outputs, name)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version(opset),
                             producer_name="nnspec")


def lower_graph(ctx: Emitter, graph: Graph, names: dict[int, str], outputs: dict[str, Var], name: str,
                inputs: list[Var] | None = None) -> onnx.GraphProto:
    """The live equations as an ONNX graph whose inputs are `inputs` (default: the graph's) and whose
    outputs are named by `outputs`' keys. `names` names the inputs, and any outer value a subgraph reads."""
    names = dict(names)
    wanted: dict[int, str] = {}
    for out, v in outputs.items():
        wanted.setdefault(id(v), out)

    def name_of(v: Var | None) -> str:
        if v is None:
            return ""
        if id(v) not in names:  # only constants are met before their definition
            names[id(v)] = ctx.const(v.value, v.hint)
        return names[id(v)]

    for eqn in live_equations(graph, list(outputs.values())):
        ctx.scope = eqn.scope
        made = eqn.prim.lower(ctx, *[name_of(v) for v in eqn.inputs], **eqn.params)
        for v, made_name in zip(eqn.outputs, [made] if isinstance(made, str) else made):
            want = wanted.get(id(v))
            names[id(v)] = want if want is not None and ctx.rename(made_name, want) else made_name

    for out, v in outputs.items():
        if name_of(v) != out:  # an input, a constant, or a second name for one tensor
            ctx.nodes.append(helper.make_node("Identity", [name_of(v)], [out], name=out))
    inputs = graph.inputs if inputs is None else inputs
    return helper.make_graph(ctx.nodes, name, [value_info(names[id(v)], v.aval) for v in inputs],
                             [value_info(out, v.aval) for out, v in outputs.items()], ctx.initializers)
