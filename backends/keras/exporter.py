"""An IR model and its weights -> Keras files, written without Keras:

    to_json(model, major)                   # model.to_json() of Keras 2 (tf.keras) or 3
    save_h5("m.h5", model, weights)         # model.save("m.h5"): the Keras 2 full-model HDF5 layout
    save_keras("m.keras", model, weights)   # model.save("m.keras"): the Keras 3 archive

The layouts are those of tf_keras 2.21 and Keras 3.15 (tests/fixtures/keras has both). A chain
of single-output layers is written as a Sequential model, anything else as a Functional one.
Files are deterministic: no dates, fixed zip entry times, HDF5 objects without timestamps.
"""
from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ...atomic import atomic_path
from ...errors import Diagnostic, SpecError
from ...ir.base import TensorType
from ...ir.layers import Layer
from ...ir.model import Model, analyze, is_chain, producer_names, tensor_source
from ...ir.validation import json_path
from ...ir.weights import Weights, check_weights
from . import call_args
from .catalog import snake_case
from .layer_export import ExportError, inner_name, keras_layer
from .train_config import export_train

KERAS_VERSION = {2: "2.21.0", 3: "3.15.1"}  # the versions whose layouts these are
_RNN = ("SimpleRNN", "GRU", "LSTM")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class _Entry:
    """One Keras layer to write: its class, config, the IR layer, inputs and weights."""

    cls: str
    config: dict
    layer: Layer | None  # None for an InputLayer
    inputs: list[str]
    in_types: list[TensorType]
    arrays: list[np.ndarray]


class KerasExport:
    """The Keras view of one IR model (major version 2 or 3): config, layers and weights."""

    def __init__(self, model: Model, weights: Weights | None, major: int):
        """`weights` None: the architecture only (to_json)."""
        analysis, problems = analyze(model)
        if problems:
            raise SpecError([Diagnostic(str(p), json_path=json_path(p.loc)) for p in problems])
        if weights is not None:
            check_weights(analysis, weights)
        self.model, self.analysis, self.major = model, analysis, major
        self.names = producer_names(model)
        self.sequential = is_chain(analysis)
        entries = {i.name: self._input_entry(i.name, i.type()) for i in model.inputs}
        for info in analysis.layers:
            cls, config = keras_layer(info.layer, major)
            config.update(call_args.implied_config(info.layer, info.inputs, major))
            arrays = list((weights or {}).get(info.layer.name, []))  # read when written: see h5safe.Stored
            entries[info.layer.name] = _Entry(cls, config, info.layer, list(info.layer.inputs), info.inputs, arrays)
        self.entries = [entries[name] for name in keras_order(model)]
        self.train, self.notes = export_train(model.train, major)

    def _input_entry(self, name: str, t: TensorType) -> _Entry:
        shape = [None, *t.shape]
        config = ({"batch_input_shape": shape, "dtype": t.dtype, "sparse": False, "ragged": False, "name": name}
                  if self.major == 2 else {"batch_shape": shape, "dtype": t.dtype, "sparse": False, "name": name})
        return _Entry("InputLayer", config, None, [], [], [])

    # ---- the model config ---------------------------------------------------------------------
    def config(self) -> dict:
        """{class_name, config, ...} as model.to_json() (Keras 2) or config.json (Keras 3) has it."""
        layers = [self._wrap(e) for e in self.entries]
        input_shape = [None, *self.model.inputs[0].shape]
        if self.sequential:
            body = {"name": self.model.name, "layers": layers}
            if self.major == 3:
                body.update(trainable=True, build_input_shape=input_shape)
            cls, module = "Sequential", "keras"
        else:
            body = {"name": self.model.name, "trainable": True, "layers": layers,
                    "input_layers": self._refs([i.name for i in self.model.inputs]),
                    "output_layers": self._refs(self.model.outputs)}
            cls, module = "Functional", "keras.src.models.functional"
        if self.major == 2:
            return {"class_name": cls, "config": body, "keras_version": KERAS_VERSION[2], "backend": "tensorflow"}
        return {"module": module, "class_name": cls, "config": body, "registered_name": None,
                "build_config": {"input_shape": input_shape}, "compile_config": self.train}

    def _wrap(self, e: _Entry) -> dict:
        module = e.layer.keras_module.get(self.major) if e.layer is not None else "keras.layers"
        if module is None:
            raise ExportError(f"layer '{e.config['name']}'", f"{e.cls} is a class of keras.applications that "
                              f"Keras {self.major} loads only with custom_objects; write a Keras 3 .keras file")
        registered = None if module == "keras.layers" else e.cls  # keras.applications' own classes
        out = {"module": module, "class_name": e.cls, "config": e.config, "registered_name": registered}
        if not self.sequential:
            out["name"] = e.config["name"]
            out["inbound_nodes"] = [self._node(e)] if e.layer is not None else []
        return out

    def _ref(self, tensor: str) -> tuple[str, int, int]:
        """Keras's [layer, node index, tensor index] of a tensor."""
        name, index = tensor_source(tensor, self.names)
        return name, 0, index

    def _refs(self, tensors: list[str]) -> list:
        refs = [list(self._ref(t)) for t in tensors]
        return refs[0] if self.major == 3 and len(refs) == 1 else refs  # Keras 3 writes one bare

    def _node(self, e: _Entry):
        if self.major == 2:
            refs = [list(self._ref(t)) for t in e.inputs]
            if call_args.takes_call_arguments(e.layer.type):
                return call_args.keras2_node(e.layer, refs)
            return [[*ref, {}] for ref in refs]
        tensors = [{"class_name": "__keras_tensor__", "config": {
            "shape": [None, *self.analysis.tensors[t].shape], "dtype": self.analysis.tensors[t].dtype,
            "keras_history": list(self._ref(t))}} for t in e.inputs]
        if call_args.takes_call_arguments(e.layer.type):
            return call_args.keras3_node(e.layer, tensors)
        keyword = e.layer.extra_inputs_keyword
        if keyword is not None:  # recurrent layers: the sequence, then initial_state=[...]
            return {"args": tensors[:1], "kwargs": {keyword: tensors[1:]} if len(tensors) > 1 else {}}
        return {"args": [tensors] if e.layer.n_inputs != (1, 1) else tensors, "kwargs": {}}

    # ---- weights -------------------------------------------------------------------------------
    def legacy_weights(self, group: h5py.Group) -> None:
        """model_weights as Keras 2's model.save writes it: a group per layer, named datasets."""
        entries = [e for e in self.entries if not (self.sequential and e.layer is None)]
        _attrs(group, backend="tensorflow", keras_version=KERAS_VERSION[2],
               layer_names=[e.config["name"] for e in entries])
        for e in entries + [None]:
            name = "top_level_model_weights" if e is None else e.config["name"]
            sub = _group(group, name)
            paths = [] if e is None or e.layer is None else _legacy_names(e)
            _attrs(sub, weight_names=paths or np.array([], np.float64))
            for path, array in zip(paths, e.arrays if e else []):
                _dataset(sub, path, array)

    def keras3_weights(self, f: h5py.File) -> None:
        """model.weights.h5: layers/<class>[_k]/vars/0, 1, ... with sub-objects below."""
        container = _group(f, "layers")
        counts: dict[str, int] = {}
        for e in self.entries:
            if self.sequential and e.layer is None:
                continue  # Sequential.layers leaves the InputLayer out
            key = snake_case(e.cls)
            path = key if not counts.get(key) else f"{key}_{counts[key]}"
            counts[key] = counts.get(key, 0) + 1
            for rel, label, arrays in _keras3_groups(e):
                variables = _group(container, f"{path}/{rel}vars" if rel else f"{path}/vars")
                _attrs(variables, name=label)
                for i, array in enumerate(arrays):
                    _dataset(variables, str(i), array)
        _attrs(_group(f, "vars"), name=self.model.name)




def keras_order(model: Model) -> list[str]:
    """Layer (and input) names in the order Keras's functional models list them, which is the
    order both weights layouts follow: by decreasing depth (the longest path to an output), ties
    by first visit in a depth-first walk from the outputs (keras/src/ops/function.py map_graph)."""
    names = producer_names(model)
    parents = {l.name: [tensor_source(t, names)[0] for t in l.inputs] for l in model.layers}
    parents.update({i.name: [] for i in model.inputs})
    visit_index: dict[str, int] = {}
    finished: list[str] = []

    def walk(name: str) -> None:  # iterative post-order, the DFS of Keras's _build_map
        stack = [(name, iter(parents[name]))]
        visit_index.setdefault(name, len(visit_index))
        while stack:
            node, pending = stack[-1]
            child = next(pending, None)
            if child is None:
                stack.pop()
                finished.append(node)
            elif child not in finished and child not in [n for n, _ in stack]:
                visit_index.setdefault(child, len(visit_index))
                stack.append((child, iter(parents[child])))

    for out in model.outputs:
        if (source := tensor_source(out, names)[0]) not in finished:
            walk(source)
    depth: dict[str, int] = {}
    for name in reversed(finished):
        d = depth.setdefault(name, 0)
        for parent in parents[name]:
            depth[parent] = max(depth.get(parent, 0), d + 1)
    for i in model.inputs:  # an input no output depends on
        depth.setdefault(i.name, 0)
        visit_index.setdefault(i.name, -1)
    return sorted(depth, key=lambda n: (-depth[n], visit_index[n]))


def _owners(layer: Layer, ins: list[TensorType], name: str) -> list[tuple[str, str, Layer, list[TensorType], str]]:
    """The layers holding a layer's variables, through wrappers nested to any depth: (Keras 3 group
    path below the layer's, Keras 2 weight-name path after its name, the layer, its input types,
    its Keras name)."""
    if layer.type == "Bidirectional":
        inner = inner_name(layer)
        return [(f"{side}_layer/", f"/{side}_{inner}", owner, ins[:1], f"{side}_{inner}")
                for side, owner in (("forward", layer.layer), ("backward", layer._backward()))]
    if layer.type == "TimeDistributed":  # a TimeDistributed's Keras 2 names are its own ("td/kernel:0")
        return [(f"layer/{k3}", k2, *rest)
                for k3, k2, *rest in _owners(layer.layer, [layer._inner(ins[0])], inner_name(layer))]
    return [("", "", layer, ins, name)]


def _wrappers(layer: Layer, name: str, path: str = "") -> list[tuple[str, str]]:
    """(Keras 3 group path, name) of a wrapper and the wrappers inside it: variable-less groups."""
    if layer.type == "TimeDistributed":
        return [(path, name), *_wrappers(layer.layer, inner_name(layer), f"{path}layer/")]
    return [(path, name)] if layer.type == "Bidirectional" else []


def _legacy_names(e: _Entry) -> list[str]:
    """Keras 2 weight names, in get_weights() order: "dense/kernel:0", "lstm/lstm_cell/kernel:0",
    "bi/forward_lstm/lstm_cell/kernel:0"."""
    names = []
    for _, path, owner, ins, _ in _owners(e.layer, e.in_types, e.config["name"]):
        cell = f"/{snake_case(owner.type)}_cell" if owner.type in _RNN else ""
        names += [f"{e.config['name']}{path}{cell}/{w.name}:0" for w in owner.weights(ins)]
    return names


def _keras3_groups(e: _Entry) -> list[tuple[str, str, list]]:
    """(group path below the layer's, its `name` attribute, arrays) for each Keras 3 vars group:
    RNN variables live in their cell, a wrapper's in its inner layer(s)."""
    name = e.config["name"]
    if e.layer is None:
        return [("", name, [])]
    if e.layer.type == "MultiHeadAttention":  # an EinsumDense per projection, named as its weights
        parts = {}
        for spec, array in zip(e.layer.weights(e.in_types), e.arrays):
            parts.setdefault(spec.name.split("/")[0], []).append(array)
        dense = {"attention_output": "output"}
        return [("", name, [])] + [(f"{dense.get(part, part)}_dense/", part, arrays) for part, arrays in parts.items()]
    groups: list[tuple[str, str, list]] = [(path, label, []) for path, label in _wrappers(e.layer, name)]
    arrays = list(e.arrays)
    for path, _, owner, ins, owner_name in _owners(e.layer, e.in_types, name):
        n = len(owner.weights(ins))
        mine, arrays = arrays[:n], arrays[n:]
        if owner.type in _RNN:
            groups += [(path, owner_name, []), (f"{path}cell/", f"{snake_case(owner.type)}_cell", mine)]
        else:
            groups.append((path, owner_name, mine))
    return groups


# ---- deterministic HDF5 ----------------------------------------------------------------------


def _group(parent: h5py.Group, path: str) -> h5py.Group:
    """parent[path], created without timestamps (HDF5 records creation times by default)."""
    group = parent
    for part in path.split("/"):
        if part not in group:
            plist = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
            plist.set_obj_track_times(False)
            h5py.h5g.create(group.id, part.encode(), gcpl=plist)
        group = group[part]
    return group


def _dataset(group: h5py.Group, path: str, array: np.ndarray) -> None:
    head, _, leaf = path.rpartition("/")
    target = _group(group, head) if head else group
    target.create_dataset(leaf, data=array, track_times=False)


def _attrs(obj, **values) -> None:
    for key, value in values.items():
        obj.attrs[key] = value


# ---- files -----------------------------------------------------------------------------------


def architecture(model: Model, major: int = 2) -> dict:
    """What model.to_json() encodes for the model as Keras `major` (2: tf.keras, 3) builds it."""
    return KerasExport(model, None, major).config()


def to_json(model: Model, major: int = 2) -> str:
    return json.dumps(architecture(model, major))


def save_h5(path: str | Path, model: Model, weights: Weights) -> list[str]:
    """The Keras 2 full-model HDF5 file; returns notes on settings Keras cannot hold."""
    export = KerasExport(model, weights, 2)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            _attrs(f, backend="tensorflow", keras_version=KERAS_VERSION[2], model_config=json.dumps(export.config()))
            if export.train is not None:
                _attrs(f, training_config=json.dumps(export.train))
            export.legacy_weights(_group(f, "model_weights"))
    return export.notes


def save_keras(path: str | Path, model: Model, weights: Weights) -> list[str]:
    """The Keras 3 .keras archive; returns notes on settings Keras cannot hold."""
    export = KerasExport(model, weights, 3)
    with atomic_path(path) as tmp, tempfile.TemporaryFile(dir=Path(tmp).parent) as weights_file:
        with h5py.File(weights_file, "w") as f:  # on disk, not in memory: the archive copies it in pieces
            export.keras3_weights(f)
        members = {"metadata.json": io.BytesIO(json.dumps({"keras_version": KERAS_VERSION[3]}).encode()),
                   "config.json": io.BytesIO(json.dumps(export.config()).encode()),
                   "model.weights.h5": weights_file}
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, _ZIP_TIME)
                info.external_attr, info.create_system = 0o600 << 16, 3
                info.file_size = data.seek(0, io.SEEK_END)  # set up front, as writestr does: the same bytes
                data.seek(0)
                with zf.open(info, "w") as member:
                    shutil.copyfileobj(data, member, 1 << 20)
    return export.notes
