"""`nnspec convert IN OUT`: between Keras files, nnspec specs and ONNX models, chosen by extension.

    IN   .h5 .hdf5 .keras     a Keras model with its weights
         .json                a Keras model.to_json() (weights: --weights W.h5), or an nnspec spec
         .nn .yaml .yml       an nnspec spec (weights: --weights W.npz, else fresh from --seed)
         .onnx                an ONNX model (lifted back to layers)
    OUT  .onnx                compiled for onnxruntime
         .nn                  the spec, formatted, with its weights beside it in OUT.npz
         .h5                  a Keras 2 (tf.keras) full-model file
         .keras               a Keras 3 archive

Nothing is written unless the whole conversion succeeds; each file appears whole or not at all,
and the same input gives the same bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_bytes, write_text
from .errors import SpecError
from .ir.model import Model, analyze
from .loader import SPEC_SUFFIXES
from .weights import Weights, initial_weights, load_weights, save_weights

KERAS_FILES = (".h5", ".hdf5", ".keras")
OUTPUTS = (".onnx", ".nn", ".h5", ".keras")


@dataclass
class Source:
    """A model read from any supported file, with its weights."""

    model: Model
    weights: Weights
    path: str
    text: str | None = None  # a spec's text as written, kept in the ONNX file's metadata
    notes: list[str] = field(default_factory=list)


def convert(source: str, target: str, weights: str | None = None, seed: int | None = None,
            opset: int | None = None) -> tuple[list[str], list[str]]:
    """Convert `source` to `target`; returns (files written, notes on what could not be kept)."""
    out = Path(target)
    if out.suffix.lower() not in OUTPUTS:
        raise SpecError(f"{target}: cannot write this file type; choose {', '.join(OUTPUTS)}")
    if Path(source).resolve() == out.resolve():
        raise SpecError(f"{target}: the input and output are the same file")
    model = read(source, weights, seed)
    written, notes = write(model, out, opset)
    return written, model.notes + notes


# ---- reading -------------------------------------------------------------------------------


def read(path: str, weights: str | None = None, seed: int | None = None) -> Source:
    suffix = Path(path).suffix.lower()
    if not Path(path).is_file():
        raise SpecError("no such file", path)
    if suffix in KERAS_FILES or (suffix == ".json" and _json_kind(path) == "keras"):
        return _keras(path, weights, seed)
    if suffix == ".json" and _json_kind(path) is None:
        raise SpecError("neither a Keras model.to_json() (class_name, config) nor an nnspec spec (inputs, layers)",
                        path)
    if suffix in SPEC_SUFFIXES:
        return _spec(path, weights, seed)
    if suffix == ".onnx":
        if weights is not None or seed is not None:
            raise SpecError("--weights and --seed apply to specs and Keras JSON; an ONNX model carries its weights",
                            path)
        from .onnx_file import lift

        lifted = lift(path)
        return Source(lifted.model, lifted.weights, path, notes=lifted.notes)
    raise SpecError(f"cannot read this file type; give a Keras file ({', '.join(KERAS_FILES)}, .json), "
                    f"a spec ({', '.join(SPEC_SUFFIXES)}) or .onnx", path)


def _json_kind(path: str) -> str | None:
    """"keras" for a model.to_json() (class_name and config at its top), "spec" for an nnspec
    spec (inputs, layers) or text the spec loader will report on, None for other JSON."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "spec"
    if isinstance(doc, dict) and "class_name" in doc and "config" in doc:
        return "keras"
    return "spec" if isinstance(doc, dict) and ("inputs" in doc or "layers" in doc) else None


def _keras(path: str, weights: str | None, seed: int | None) -> Source:
    from .backends.keras.importer import load

    imported = load(path, weights)
    model, arrays = imported.model, imported.weights
    if not arrays and weights is None:  # an architecture alone: fresh weights, as Keras would build it
        arrays = initial_weights(analyze(model)[0], seed)
    elif seed is not None:
        raise SpecError("--seed applies where weights are drawn fresh; this model brings its weights", path)
    notes = list(imported.notes)
    if imported.optimizer_weights:
        notes.append("optimizer state (for resuming training) is not converted")
    return Source(model, arrays, path, notes=notes)


def _spec(path: str, weights: str | None, seed: int | None) -> Source:
    from .loader import load

    spec = load(path)
    arrays = load_weights(weights, spec.analysis) if weights else initial_weights(spec.analysis, seed)
    notes = [] if weights else [f"no --weights: fresh weights from the initializers (seed {seed})"]
    return Source(spec.model, arrays, path, spec.source, notes)


# ---- writing -------------------------------------------------------------------------------


def write(source: Source, out: Path, opset: int | None = None) -> tuple[list[str], list[str]]:
    suffix = out.suffix.lower()
    try:
        if suffix == ".onnx":
            return [str(out)], _onnx(source, out, opset)
        if opset is not None:
            raise SpecError(f"{out}: --opset applies to .onnx output")
        if suffix == ".nn":
            return _nn(source, out)
        from .backends.keras import exporter

        save = exporter.save_h5 if suffix == ".h5" else exporter.save_keras
        return [str(out)], save(out, source.model, source.weights)
    except OSError as exc:
        raise SpecError(f"{out}: cannot write: {exc.strerror or exc}") from None


def _onnx(source: Source, out: Path, opset: int | None) -> list[str]:
    from .backends.onnx import DEFAULT_OPSET
    from .onnx_file import compile_model

    proto = compile_model(source.model, source.weights, opset or DEFAULT_OPSET, source=source.text,
                          path=source.path if source.text is not None else None)
    write_bytes(out, proto.SerializeToString())
    return []


def _nn(source: Source, out: Path) -> tuple[list[str], list[str]]:
    """The spec as text and its weights in OUT.npz; checked by reading the text back."""
    from .loader import loads
    from .writer import write_nn

    npz = out.with_suffix(".npz")
    text = write_nn(source.model, [f"converted from {Path(source.path).name} by nnspec convert",
                                   f"weights: {npz.name}  (nnspec predict {out.name} --weights {npz.name} -i x.npy)"])
    back = loads(text, str(out))
    save_weights(npz, source.weights, back.analysis)  # checks that names and shapes still agree
    write_text(out, text)
    renamed = [f"input '{a.name}' is '{b.name}' in the spec (not a name the language allows)"
               for a, b in zip(source.model.inputs, back.model.inputs) if a.name != b.name]
    return [str(out), str(npz)], renamed
