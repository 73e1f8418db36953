"""`nnspec convert IN OUT`: between Keras files, nnspec specs and ONNX models, chosen by extension.
`read` is the one reader of a model in any of these formats, for every command.

    IN   .h5 .hdf5 .keras     a Keras model with its weights
         .json .yaml .yml     a Keras model.to_json()/to_yaml() (weights: --weights W.h5), or an nnspec spec
         .nn                  an nnspec spec (weights: --weights W.npz, else fresh from --seed)
         .onnx                an ONNX model (lifted back to layers)
    OUT  .onnx                compiled for onnxruntime
         .nn                  the spec, formatted, with its weights beside it in OUT.npz
         .h5                  a Keras 2 (tf.keras) full-model file
         .keras               a Keras 3 archive
         .json .yaml .yml     Keras's model.to_json() (Keras 3, or 2 with keras=2), as JSON or YAML

Nothing is written unless the whole conversion succeeds; each file appears whole or not at all,
and the same input gives the same bytes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import output_set, write_text
from .errors import SpecError
from .ir.model import Analysis, Model, analyze
from .loader import SPEC_SUFFIXES, Spec, dump_json
from .tune.space import SearchSpace

if TYPE_CHECKING:  # numpy comes with weights; reading an architecture (check, summary) needs neither
    import numpy as np

    from .ir.weights import Weights

KERAS_FILES = (".h5", ".hdf5", ".keras")
# Keras's to_json()/to_yaml() (an architecture, no weights) or an nnspec spec, told apart by content
DOCUMENTS = (".json", ".yaml", ".yml")
OUTPUTS = (".onnx", ".nn", ".h5", ".keras") + DOCUMENTS
FORMATS = ("a spec (.nn, .json, .yaml, .yml), a Keras model (.h5, .hdf5, .keras, or to_json()/to_yaml() "
           "as .json or .yaml) or an ONNX model (.onnx)")


@dataclass
class Source:
    """A model read from any supported file, with its weights."""

    model: Model
    analysis: Analysis
    weights: Weights | None  # None only where read(fresh=False) found none in the file
    path: str
    text: str | None = None  # a spec's text as written, kept in the ONNX file's metadata
    notes: list[str] = field(default_factory=list)
    space: SearchSpace | None = None  # a .nn spec's search space
    optimizer_weights: dict[str, np.ndarray] | None = None  # a Keras file's optimizer state, for a resume
    keras_version: str = ""

    def spec(self) -> Spec:
        return Spec(self.model, self.analysis, self.path, self.text or dump_json(self.model), self.space)


def convert(source: str, target: str, weights: str | None = None, seed: int | None = None,
            opset: int | None = None, keras: int | None = None) -> tuple[list[str], list[str]]:
    """Convert `source` to `target`; returns (files written, notes on what could not be kept).
    `keras`: the Keras version (2 or 3) of a .json or .yaml architecture (default 3)."""
    out = Path(target)
    suffix = out.suffix.lower()
    if suffix not in OUTPUTS:
        raise SpecError(f"{target}: cannot write this file type; choose {', '.join(OUTPUTS)}")
    if keras is not None and suffix not in DOCUMENTS:
        raise SpecError(f"{target}: --keras chooses the version of a .json or .yaml architecture; "
                        ".h5 is Keras 2 and .keras Keras 3")
    if Path(source).resolve() == out.resolve():
        raise SpecError(f"{target}: the input and output are the same file")
    # lazy: each weight is read from a Keras file as it is written out, never all of them at once
    model = read(source, weights, seed, fresh=suffix not in DOCUMENTS, lazy=True)
    with output_set():  # a spec and its weights appear together or not at all
        written, notes = write(model, out, opset, keras)
    if model.optimizer_weights:
        notes.append("optimizer state (for resuming training) is not converted")
    return written, model.notes + notes


# ---- reading -------------------------------------------------------------------------------


def read(path: str, weights: str | None = None, seed: int | None = None, *, fresh: bool = True,
         lazy: bool = False) -> Source:
    """The one reader of a model in any format. fresh=False leaves `weights` None where the file
    holds none and none are given: check, summary and plot need only the architecture. lazy=True
    leaves a Keras file's weights in it (h5safe.Stored, read when numpy converts them)."""
    path = str(path)
    if not Path(path).is_file():  # worded as the spec loader words it
        raise SpecError(f"{path}: is a directory, not a model file" if Path(path).is_dir() else f"{path}: no such file")
    kind = model_kind(path)
    if kind == "keras":
        return _keras(path, weights, seed, fresh, lazy)
    if kind == "spec":
        return _spec(path, weights, seed, fresh)
    if weights is not None or seed is not None:
        raise SpecError("--weights and --seed apply to specs and Keras JSON; an ONNX model carries its weights", path)
    from .onnx_file import lift

    lifted = lift(path)
    return Source(lifted.model, _analysis(lifted.model), lifted.weights, path, notes=lifted.notes)


def model_kind(path: str) -> str:
    """"spec", "keras" or "onnx", from the extension and, for JSON and YAML, the content."""
    suffix = Path(path).suffix.lower()
    if suffix in KERAS_FILES:
        _expect_bytes(path, suffix)
        return "keras"
    if suffix == ".onnx":
        return "onnx"
    if suffix in DOCUMENTS + SPEC_SUFFIXES:
        _expect_bytes(path, suffix)
    if suffix in DOCUMENTS:
        kind = _document_kind(path)
        if kind is None:
            raise SpecError("neither a Keras model.to_json() (class_name, config) nor an nnspec spec "
                            "(inputs, layers)", path)
        return kind
    if suffix in SPEC_SUFFIXES:
        return "spec"
    raise SpecError(f"cannot read this file type; give {FORMATS}", path)


_HDF5 = b"\x89HDF\r\n\x1a\n"  # at 0, or after a user block of 512 * 2**k bytes


def _expect_bytes(path: str, suffix: str) -> None:
    """A file whose first bytes are not what its extension promises (an HDF5 file named .nn, a
    truncated download) is named with the formats nnspec reads."""
    try:
        with open(path, "rb") as f:
            head = f.read(2056)
    except OSError as exc:
        raise SpecError(f"cannot read: {exc.strerror or exc}", path) from None
    if suffix in (".h5", ".hdf5"):
        found, what = any(head[at:at + 8] == _HDF5 for at in (0, 512, 1024, 2048)), "an HDF5 file"
    elif suffix == ".keras":
        found, what = head.startswith(b"PK\x03\x04"), "a .keras (zip) archive"
    else:
        found, what = b"\x00" not in head and not head.startswith(b"\x89HDF"), "UTF-8 text"
    if head and not found:
        raise SpecError(f"not {what}; nnspec reads {FORMATS}", path)


def _document_kind(path: str) -> str | None:
    """"keras" for a model.to_json() or to_yaml() (class_name and config at its top), "spec" for
    an nnspec spec (inputs, layers) or text the spec loader will report on, None otherwise."""
    import yaml

    from .backends.keras.reader import YamlLoader

    try:
        text = Path(path).read_text(encoding="utf-8")
        doc = json.loads(text) if path.lower().endswith(".json") else yaml.load(text, Loader=YamlLoader)
    except (OSError, ValueError, yaml.YAMLError):
        return "spec"
    if isinstance(doc, dict) and "class_name" in doc and "config" in doc:
        return "keras"
    return "spec" if isinstance(doc, dict) and ("inputs" in doc or "layers" in doc) else None


def _analysis(model: Model) -> Analysis:
    return analyze(model)[0]  # the readers have reported any problem already


def _keras(path: str, weights: str | None, seed: int | None, fresh: bool, lazy: bool) -> Source:
    from .backends.keras.importer import load

    imported = load(path, weights, lazy=lazy)
    model, arrays = imported.model, imported.weights
    analysis = _analysis(model)
    if not arrays and weights is None:  # an architecture alone: fresh weights, as Keras would build it
        from .weights import initial_weights

        arrays = initial_weights(analysis, seed) if fresh else None
    elif seed is not None:
        raise SpecError("--seed applies where weights are drawn fresh; this model brings its weights", path)
    return Source(model, analysis, arrays, path, notes=list(imported.notes),
                  optimizer_weights=imported.optimizer_weights, keras_version=imported.keras_version)


def _spec(path: str, weights: str | None, seed: int | None, fresh: bool) -> Source:
    from .loader import load

    spec = load(path)
    notes = []
    if weights:
        from .weights import load_weights

        arrays = load_weights(weights, spec.analysis)
    elif fresh:
        from .weights import initial_weights

        arrays = initial_weights(spec.analysis, seed)
        notes.append(f"no --weights: fresh weights from the initializers (seed {seed})")
    else:
        arrays = None
    return Source(spec.model, spec.analysis, arrays, path, spec.source, notes, spec.space)


# ---- writing -------------------------------------------------------------------------------


def write(source: Source, out: Path, opset: int | None = None, keras: int | None = None
          ) -> tuple[list[str], list[str]]:
    suffix = out.suffix.lower()
    try:
        if suffix == ".onnx":
            return [str(out)], _onnx(source, out, opset)
        if opset is not None:
            raise SpecError(f"{out}: --opset applies to .onnx output")
        if suffix == ".nn":
            return _nn(source, out)
        from .backends.keras import exporter

        if suffix in DOCUMENTS:
            return [str(out)], _architecture(source, out, keras or 3)
        save = exporter.save_h5 if suffix == ".h5" else exporter.save_keras
        return [str(out)], save(out, source.model, source.weights)
    except OSError as exc:
        raise SpecError(f"{out}: cannot write: {exc.strerror or exc}") from None


def _architecture(source: Source, out: Path, major: int) -> list[str]:
    """Keras's model.to_json() (or the same document as YAML, as to_yaml() wrote it): no weights."""
    from .backends.keras.exporter import architecture

    document = architecture(source.model, major)
    if out.suffix.lower() == ".json":
        text = json.dumps(document)
    else:
        import yaml

        text = yaml.safe_dump(document, sort_keys=False)
    write_text(out, text)
    return [] if source.weights is None else [f"{out.name} holds the architecture only (Keras's to_json); "
                                              "the weights are not written: convert to .h5 or .keras for them"]


def _onnx(source: Source, out: Path, opset: int | None) -> list[str]:
    from .backends.onnx import DEFAULT_OPSET
    from .onnx_file import compile_model, save

    large: list = []
    proto = compile_model(source.model, source.weights, opset or DEFAULT_OPSET, source=source.text,
                          path=source.path if source.text is not None else None, large=large)
    save(out, proto, large)
    return []


def _nn(source: Source, out: Path) -> tuple[list[str], list[str]]:
    """The spec as text and its weights in OUT.npz; checked by reading the text back."""
    from .loader import loads
    from .writer import write_nn

    npz = out.with_suffix(".npz")
    text = write_nn(source.model, [f"converted from {Path(source.path).name} by nnspec convert",
                                   f"weights: {npz.name}  (nnspec predict {out.name} --weights {npz.name} -i x.npy)"])
    back = loads(text, str(out))
    from .weights import save_weights

    save_weights(npz, source.weights, back.analysis)  # checks that names and shapes still agree
    write_text(out, text)
    renamed = [f"input '{a.name}' is '{b.name}' in the spec (not a name the language allows)"
               for a, b in zip(source.model.inputs, back.model.inputs) if a.name != b.name]
    return [str(out), str(npz)], renamed
