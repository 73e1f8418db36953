"""nnspec's ONNX files: the compiled graph with the spec it came from in its metadata, and back
from such a file to its spec (the backend in backends/onnx knows nothing of spec files)."""
from __future__ import annotations

from pathlib import Path

import onnx

from . import __version__
from .atomic import write_chunks
from .backends.onnx import stream
from .backends.onnx.compile import compile_onnx, metadata, read_onnx
from .backends.onnx.emit import DEFAULT_OPSET
from .backends.onnx.lift import Lifted, lift as lift_graph, load_checked
from .errors import SpecError
from .ir.model import Model
from .ir.weights import Weights
from .loader import SPEC_SUFFIXES, Spec, dump_json, loads

SOURCE, SUFFIX, VERSION = "nnspec.source", "nnspec.suffix", "nnspec.version"


def compile_model(model: Model, weights: Weights, opset: int = DEFAULT_OPSET, *, source: str | None = None,
                  path: str | None = None, fused: bool = True, large: list | None = None) -> onnx.ModelProto:
    """The inference ONNX model (see compile_onnx) carrying `source`, the spec text (the resolved JSON
    if None); `path` names the spec in errors and gives the stored text's format by its suffix
    (.nn if None). `large`: see save."""
    proto = compile_onnx(model, weights, opset, path=path, fused=fused, large=large)
    proto.producer_version = __version__
    suffix = Path(path or "spec.nn").suffix.lower() or ".nn"
    if source is None or suffix not in SPEC_SUFFIXES:  # a model read from Keras or ONNX: its resolved JSON
        suffix = ".json"
    onnx.helper.set_model_props(proto, {SOURCE: dump_json(model) if source is None else source, SUFFIX: suffix,
                                        VERSION: __version__})
    return proto


def save(path: str | Path, proto: onnx.ModelProto, large: list = ()) -> None:
    """Write the model, and the large constants compile_model(large=...) left out of it, one at a
    time (see stream.py): a model's weights are never all in memory. The file appears whole or not
    at all."""
    write_chunks(path, stream.chunks(proto, large))


def compile_spec(spec: Spec, weights: Weights, opset: int = DEFAULT_OPSET, fused: bool = True) -> onnx.ModelProto:
    return compile_model(spec.model, weights, opset, source=spec.source, path=spec.path, fused=fused)


def carries_spec(proto: onnx.ModelProto) -> bool:
    return SOURCE in metadata(proto)


def spec_from_onnx(model: str | Path | onnx.ModelProto, path: str | None = None) -> Spec:
    """The spec an nnspec-written ONNX file was compiled from; `path` names a loaded model's file."""
    if not isinstance(model, onnx.ModelProto):
        path, model = str(model), read_onnx(model)
    where = path or "<onnx>"
    props = metadata(model)
    if SOURCE not in props:
        raise SpecError("not written by nnspec: no 'nnspec.source' in its metadata", where)
    return loads(props[SOURCE], f"{where}#spec{props.get(SUFFIX, '.nn')}")


def lift(source: str | Path | onnx.ModelProto, name: str | None = None) -> Lifted:
    """The IR model and weights of an ONNX file or loaded model: an nnspec-written one gives back
    its own spec, any other is lifted from its graph."""
    path = name or (str(source) if not isinstance(source, onnx.ModelProto) else "<onnx>")
    proto = source if isinstance(source, onnx.ModelProto) else load_checked(source)
    model = spec_from_onnx(proto, path).model if carries_spec(proto) else None
    return lift_graph(proto, path, model)
