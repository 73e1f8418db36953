"""A model and its weights -> an inference ONNX model (nnspec.onnx_file adds the spec it came from)."""
from __future__ import annotations

from pathlib import Path

import onnx

from ...errors import Diagnostic, SpecError
from ...ir.layers import FLOAT_DTYPES
from ...ir.model import Analysis, Model, analyze, output_names
from ...ir.validation import json_path
from ...ir.weights import Weights, check_weights
from . import primitives as P
from . import recurrent  # noqa: F401  (registers the recurrent layers in the layer table)
from . import attention  # noqa: F401  (registers the attention layers)
from .emit import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, to_onnx
from .graph import Graph, Var, weight
from .layers import LayerCall, TrainContext, expand, output_mask

COMPUTE_DTYPE = "float32"  # Keras layers compute in float32 whatever float the input holds


def analyzed(model: Model, path: str | None = None) -> Analysis:
    analysis, problems = analyze(model)
    if problems:
        raise SpecError([Diagnostic(str(p), json_path=json_path(p.loc)) for p in problems], path)
    return analysis


def trace(analysis: Analysis, weights: Weights, fused: bool = True, graph: Graph | None = None,
          train: "TrainContext | None" = None) -> tuple[Graph, dict[str, Var]]:
    """The primitive graph of a model; returns it and its outputs. Weights given as arrays become
    constants (inference); weights given as Vars are used as they are (training graphs, where
    they are inputs). `train` switches dropout and batch normalization to their training forms."""
    graph = graph or Graph()
    tensors: dict[str, Var] = {}
    masks: dict[str, Var | None] = {}
    for spec in analysis.model.inputs:
        x = graph.input(spec.name, (None, *spec.shape), spec.dtype)
        if spec.dtype in FLOAT_DTYPES and spec.dtype != COMPUTE_DTYPE:
            with graph.scope(spec.name):
                x = P.cast(x, dtype=COMPUTE_DTYPE)
        tensors[spec.name], masks[spec.name] = x, None
    for info in analysis.layers:
        layer = info.layer
        specs = layer.weights(info.inputs)
        with graph.scope(layer.name):
            ws = [a if isinstance(a, Var) else graph.const(weight(a, COMPUTE_DTYPE), hint=f"{layer.name}/{w.name}")
                  for w, a in zip(specs, weights.get(layer.name, []))]
            call = LayerCall(layer, [tensors[t] for t in layer.inputs], info.inputs, info.outputs, specs, ws,
                             [masks[t] for t in layer.inputs], fused, train)
            outs = expand(call)
            mask = output_mask(call)
            if train is not None:
                train.layer_outputs(layer, outs)
        for i, (name, v) in enumerate(zip(output_names(layer, len(outs)), outs)):
            tensors[name], masks[name] = v, mask if i == 0 else None
    return graph, {name: tensors[name] for name in analysis.model.outputs}


def compile_onnx(model: Model, weights: Weights, opset: int = DEFAULT_OPSET, *, path: str | None = None,
                 fused: bool = True, large: list | None = None) -> onnx.ModelProto:
    """`weights`: {layer name: arrays in Keras get_weights() order}; `path` names the spec in errors.
    `fused=False` keeps every layer in primitives (no Gemm, BatchNormalization, LayerNormalization
    or recurrent ONNX ops). `large`: see emit.to_onnx (the weights stream.py writes)."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset} is not supported; choose one from {MIN_OPSET} to {MAX_OPSET}")
    analysis = analyzed(model, path)
    check_weights(analysis, weights, path)
    graph, outputs = trace(analysis, weights, fused)
    return to_onnx(graph, outputs, opset, model.name, large)


def metadata(proto: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in proto.metadata_props}


def read_onnx(path: str | Path) -> onnx.ModelProto:
    try:
        proto = onnx.load(str(path))
    except FileNotFoundError:
        raise SpecError("no such file", str(path)) from None
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not ONNX
        raise SpecError(f"not an ONNX model: {exc}", str(path)) from None
    from .lift import check_proto

    check_proto(proto, str(path))
    return proto
