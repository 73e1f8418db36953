"""Read Keras model files safely, without TensorFlow or Keras.

    model = load("net.h5")                                  # full model, legacy HDF5
    model = load("net.keras")                               # Keras 3 archive
    model = load("net.json", weights_path="net.weights.h5") # to_json() + save_weights()
    model = load("net.h5", lazy=True)                       # weights read when used (h5safe.Stored)

The result is a KerasModel (see model.py) whose layer configs follow one convention for
Keras 2 and Keras 3 (see normalize.py), whose Sequential and Functional models look alike
(see topology.py) and whose weights are matched to layers by name and checked against
the configs (see weights.py). Without weights_path a .json gives layers with no weights.

Nothing in a file is ever executed or unpickled: Lambda layers, custom classes and custom
activations are refused, as are HDF5 files that would make the library read other files
(see h5safe.py) and archives with unsafe member names. Every refusal and every unreadable
file raises KerasFormatError.
"""
from __future__ import annotations

import io
import json
import os
import re
import zipfile
import zlib
from contextlib import nullcontext

import h5py
import numpy as np
import yaml

from . import catalog, h5safe, topology, training, weights, zip_member
from .errors import KerasFormatError
from .model import KerasLayer, KerasModel, TensorRef
from .normalize import Context

__all__ = ["load", "KerasModel", "KerasLayer", "KerasFormatError", "TensorRef"]

_H5 = (".h5", ".hdf5")
_DOCUMENTS = (".json", ".yaml", ".yml")  # to_json(), or to_yaml() as Keras 2 wrote it
_MAX_JSON_BYTES = 64 << 20


def load(path, weights_path=None, *, lazy: bool = False) -> KerasModel:
    """lazy: weights and optimizer state stay in the file, as h5safe.Stored arrays read when used
    (the file stays open while they are held); otherwise they are read into memory."""
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise FileNotFoundError(source)
    lower = source.lower()
    if lower.endswith(_DOCUMENTS):
        model = _load_json(source)
        if weights_path is not None:
            _attach_weights_file(model, os.fspath(weights_path), lazy)
        return model
    if weights_path is not None:
        raise KerasFormatError(source, None, "weights_path is only for a .json architecture; "
                               "this file carries its own weights")
    if lower.endswith(".keras"):
        return _load_keras(source, lazy)
    if lower.endswith(_H5):
        return _load_h5(source, lazy)
    raise KerasFormatError(source, None, "unknown file type; expected .h5, .hdf5, .keras, .json or .yaml")


# ---------------------------------------------------------------- version

def _version(found, doc, ctx: Context) -> str:
    """'2.x' or '3.x': from the version the file states, else from Keras 3's config markers."""
    if found:
        major = str(found).strip()[:1]
        if major in ("2", "3"):
            return f"{major}.x"
        raise ctx.error(f"written by Keras {found}; only Keras 2 and 3 files are read")
    if isinstance(doc, dict) and ("module" in doc or "compile_config" in doc):
        return "3.x"
    text = json.dumps(doc)
    return "3.x" if any(m in text for m in ('"DTypePolicy"', '"__keras_tensor__"', '"batch_shape"')) else "2.x"


def _parse_json(text, ctx: Context, where: str | None = None):
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ctx.error(f"not valid JSON: {str(exc)[:200]}", where) from None


class YamlLoader(yaml.SafeLoader):
    """yaml.safe_load, plus the tuples Keras 2's to_yaml() tagged `!!python/tuple`, read as lists."""


YamlLoader.add_constructor("tag:yaml.org,2002:python/tuple", lambda loader, node: loader.construct_sequence(node))


def _parse_yaml(text, ctx: Context):
    try:
        return yaml.load(text, Loader=YamlLoader)  # a SafeLoader: builds plain data, never objects
    except (yaml.YAMLError, RecursionError) as exc:
        raise ctx.error(f"not valid YAML: {' '.join(str(exc).split())[:200]}") from None


def _model_doc(doc, ctx: Context, where: str | None = None) -> dict:
    if not (isinstance(doc, dict) and isinstance(doc.get("class_name"), str)
            and "config" in doc):
        raise ctx.error("not a Keras model (expected an object with class_name and config)", where)
    return doc


# ---------------------------------------------------------------- .json

def _load_json(source: str) -> KerasModel:
    ctx = Context(source)
    if os.path.getsize(source) > _MAX_JSON_BYTES:
        raise ctx.error("too large for a model JSON")
    with open(source, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ctx.error("not UTF-8 text; not a model.to_json() file") from None
    doc = _model_doc(_parse_json(text, ctx) if source.lower().endswith(".json") else _parse_yaml(text, ctx), ctx)
    model = topology.parse_model(doc, ctx, _version(doc.get("keras_version"), doc, ctx))
    model.training_config = training.training_config(doc.get("compile_config"), ctx)
    model.source = source
    return model


def _opened(target, source: str, lazy: bool):
    """The HDF5 file, closed at the end of the `with` unless its weights are read lazily."""
    f = h5safe.open_file(target, source)
    return nullcontext(f) if lazy else f


def _read_now(model: KerasModel) -> None:
    """Every weight into memory, before the file closes."""
    for layer in model.layers:
        if layer.class_name in catalog.MODEL_CLASSES:
            _read_now(layer.config["model"])
        layer.weights = [np.asarray(a) for a in layer.weights]
    if model.optimizer_weights:
        model.optimizer_weights = {k: np.asarray(a) for k, a in model.optimizer_weights.items()}


def _attach_weights_file(model: KerasModel, wpath: str, lazy: bool) -> None:
    ctx = Context(wpath)
    if not os.path.isfile(wpath):
        raise FileNotFoundError(wpath)
    if not wpath.lower().endswith(_H5):
        raise ctx.error("weights file must be .h5 / .hdf5 / .weights.h5")
    with _opened(wpath, wpath, lazy) as f:
        h5safe.check_file(f, wpath)
        try:
            if isinstance(f.get("model_weights"), h5py.Group):  # a full-model .h5
                weights.from_legacy(model, f["model_weights"], ctx)
                model.optimizer_weights = training.legacy_optimizer_weights(f, wpath)
            elif h5safe.attr_names(f, "layer_names", wpath) is not None:  # legacy save_weights
                weights.from_legacy(model, f, ctx)
                model.optimizer_weights = training.legacy_optimizer_weights(f, wpath)
            elif "layers" in f or "_layer_checkpoint_dependencies" in f:
                weights.from_keras3(model, f, ctx)
                model.optimizer_weights = training.keras3_optimizer_weights(f, wpath)
            else:
                raise ctx.error("not a Keras weights file (no layer_names attribute, no 'layers' group)")
            if not lazy:
                _read_now(model)
        except h5safe.H5_ERRORS as exc:
            raise ctx.error(f"corrupt HDF5 file: {exc}") from None


# ---------------------------------------------------------------- .h5

def _load_h5(source: str, lazy: bool) -> KerasModel:
    ctx = Context(source)
    with _opened(source, source, lazy) as f:
        h5safe.check_file(f, source)
        try:
            doc = h5safe.attr_json(f, "model_config", source)
            if doc is None:
                if (h5safe.attr_names(f, "layer_names", source) is not None or "layers" in f
                        or "_layer_checkpoint_dependencies" in f):
                    raise ctx.error("holds only weights (no model_config); pass the architecture too: "
                                    f"load('model.json', weights_path='{source}')")
                raise ctx.error("not a Keras model file (no model_config attribute)")
            doc = _model_doc(doc, ctx, "attribute model_config")
            version = _version(h5safe.attr_text(f, "keras_version", source), doc, ctx)
            model = topology.parse_model(doc, ctx, version)
            group = f.get("model_weights")
            if not isinstance(group, h5py.Group):
                raise ctx.error("no model_weights group")
            weights.from_legacy(model, group, ctx)
            model.training_config = training.training_config(
                h5safe.attr_json(f, "training_config", source), ctx)
            model.optimizer_weights = training.legacy_optimizer_weights(f, source)
            if not lazy:
                _read_now(model)
        except h5safe.H5_ERRORS as exc:
            raise ctx.error(f"corrupt HDF5 file: {exc}") from None
    model.source = source
    return model


# ---------------------------------------------------------------- .keras

def _unsafe_member(name: str) -> bool:
    parts = re.split(r"[\\/]", name)
    return (name.startswith(("/", "\\")) or ".." in parts or "\x00" in name
            or re.match(r"^[A-Za-z]:", name) is not None)


def _member(zf: zipfile.ZipFile, name: str, ctx: Context, limit: int | None = None) -> bytes:
    where = f"member '{name}'"
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise ctx.error("missing from the archive", where) from None
    if limit is not None and info.file_size > limit:
        raise ctx.error(f"too large ({info.file_size} bytes)", where)
    try:
        return zf.read(info)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        raise ctx.error(f"corrupt archive member: {exc}", where) from None


def _weights_member(zf: zipfile.ZipFile, source: str, ctx: Context):
    """model.weights.h5 as a file object: read in place where stored uncompressed, else inflated."""
    where = "member 'model.weights.h5'"
    try:
        member = zip_member.open_stored(source, zf.getinfo("model.weights.h5"))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ctx.error(f"corrupt archive member: {exc}", where) from None
    return member or io.BytesIO(_member(zf, "model.weights.h5", ctx))


def _load_keras(source: str, lazy: bool) -> KerasModel:
    ctx = Context(source)
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ctx.error(f"not a readable .keras (zip) archive: {exc}") from None
    with zf:
        names = zf.namelist()
        for name in names:
            if _unsafe_member(name):
                raise ctx.error("unsafe member name (path traversal); refused", f"member '{name}'")
        doc = _model_doc(_parse_json(_member(zf, "config.json", ctx, _MAX_JSON_BYTES), ctx,
                                     "member 'config.json'"), ctx, "member 'config.json'")
        meta = {}
        if "metadata.json" in names:
            meta = _parse_json(_member(zf, "metadata.json", ctx, _MAX_JSON_BYTES), ctx, "member 'metadata.json'")
        found = meta.get("keras_version") if isinstance(meta, dict) else None
        model = topology.parse_model(doc, ctx, _version(found, doc, ctx))
        model.training_config = training.training_config(doc.get("compile_config"), ctx)
        if "model.weights.h5" not in names:
            other = [n for n in names if n.startswith("model.weights")]
            raise ctx.error(f"no model.weights.h5 in the archive (found {other or 'no weights'}); "
                            "only HDF5 weights are read")
        member = _weights_member(zf, source, ctx)
    wsource = f"{source}[model.weights.h5]"
    wctx = Context(wsource)
    with _opened(member, wsource, lazy) as f:
        h5safe.check_file(f, wsource)
        try:
            weights.from_keras3(model, f, wctx)
            model.optimizer_weights = training.keras3_optimizer_weights(f, wsource)
            if not lazy:
                _read_now(model)
        except h5safe.H5_ERRORS as exc:
            raise wctx.error(f"corrupt HDF5 file: {exc}") from None
    model.source = source
    return model
