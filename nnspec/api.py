"""The Python API, shaped like Keras's: `nnspec.load(...)` gives a model to `predict` with.

    model = nnspec.load("specs/mnist_mlp.nn", seed=0)      # fresh weights from the initializers
    model = nnspec.load("mlp.nn", weights="mlp.npz")         # or saved ones
    model = nnspec.load("mlp.onnx")                          # or a compiled model
    probs = model.predict(x_test, batch_size=128)
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

import numpy as np
import onnx

from .atomic import write_bytes
from .backends.onnx.compile import analyzed, read_onnx
from .onnx_file import carries_spec, compile_spec, spec_from_onnx
from .backends.onnx.emit import DEFAULT_OPSET
from .errors import SpecError
from .ir.model import Model as IRModel
from .limits import check_memory
from .loader import Spec, dump_json
from .loader import load as load_spec
from .summary import summary as summary_table
from .weights import Weights, initial_weights, load_weights, save_weights

if TYPE_CHECKING:
    from .backends.onnx.runtime import Session


WEIGHT_COPIES = 3  # the arrays, the ONNX model that holds them, and its serialized bytes


class InputError(ValueError):
    """Data given to `predict` does not fit the model's inputs."""


class InputInfo(NamedTuple):
    name: str
    shape: tuple[int | None, ...]  # batch first; None where any size goes
    dtype: np.dtype


def _input_info(value: onnx.ValueInfoProto) -> InputInfo:
    tensor = value.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim)
    return InputInfo(value.name, shape, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)))


class Model:
    """A compiled model and the session that runs it (started on the first `predict`).

    `spec` is None only for ONNX files nnspec did not write; `weights` is None for models
    loaded from ONNX files, whose weights live inside the file."""

    def __init__(self, proto: onnx.ModelProto, spec: Spec | None = None, weights: Weights | None = None,
                 device: str = "auto", path: str | None = None):
        self.onnx, self.spec, self.weights, self.device = proto, spec, weights, device
        self.path = path  # the ONNX file it was read from, if any
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            from .backends.onnx.runtime import Session  # onnxruntime loads only when a model runs

            with self._file_problems():
                self._session = Session(self.onnx, self.device)
        return self._session

    @contextmanager
    def _file_problems(self) -> Iterator[None]:
        """onnxruntime refusing an ONNX file the user gave is a broken model, not a bug in nnspec."""
        from .backends.onnx.runtime import DeviceError

        try:
            yield
        except (DeviceError, SpecError):
            raise
        except Exception as exc:
            if self.path is None:
                raise
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise SpecError(f"onnxruntime cannot run this model: {reason}", self.path) from None

    @cached_property
    def inputs(self) -> list[InputInfo]:
        initializers = {i.name for i in self.onnx.graph.initializer}  # old exporters list them as inputs
        return [_input_info(v) for v in self.onnx.graph.input if v.name not in initializers]

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.onnx.graph.output]

    def predict(self, x: Any, batch_size: int = 32) -> np.ndarray | list[np.ndarray]:
        """x: an array, a list of arrays (one per input) or a dict by input name. Returns an
        array, or a list of arrays for a model with several outputs."""
        if batch_size < 1:
            raise InputError(f"batch_size must be positive, got {batch_size}")
        arrays = self._arrays(x)  # checked before a session starts: a mistake costs nothing
        n = len(arrays[0])
        with self._file_problems():
            parts = [self.session.run([a[i:i + batch_size] for a in arrays]) for i in range(0, max(n, 1), batch_size)]
        outs = parts[0] if len(parts) == 1 else [np.concatenate(p) for p in zip(*parts)]
        return outs[0] if len(outs) == 1 else outs

    def _arrays(self, x: Any) -> list[np.ndarray]:
        inputs = self.inputs
        names = [i.name for i in inputs]
        if isinstance(x, dict):
            unknown = sorted(set(x) - set(names))
            missing = [n for n in names if n not in x]
            if unknown or missing:
                raise InputError(f"the model's inputs are {names}; "
                                 + (f"unknown: {unknown}" if unknown else f"missing: {missing}"))
            x = [x[n] for n in names]
        elif not isinstance(x, (list, tuple)):
            x = [x]
        if len(x) != len(inputs):
            raise InputError(f"the model takes {len(inputs)} input(s) {names}, got {len(x)}")
        arrays = []
        for info, a in zip(inputs, x):
            a = np.asarray(a)
            if a.ndim != len(info.shape) or any(w not in (None, d) for w, d in zip(info.shape[1:], a.shape[1:])):
                shown = ", ".join("None" if d is None else str(d) for d in (None, *info.shape[1:]))
                raise InputError(f"input '{info.name}' takes arrays of shape ({shown}), got {a.shape}")
            arrays.append(a.astype(info.dtype, copy=False))
        if len({len(a) for a in arrays}) > 1:
            raise InputError(f"the inputs have different batch sizes: {[len(a) for a in arrays]}")
        return arrays

    def summary(self, print_fn: Callable[[str], Any] = print) -> None:
        if self.spec is None:
            raise ValueError("this ONNX file carries no nnspec spec to summarize")
        print_fn(summary_table(self.spec.analysis))

    def save_onnx(self, path: str | Path) -> None:
        write_bytes(path, self.onnx.SerializeToString())

    def save_weights(self, path: str | Path) -> None:
        if self.weights is None or self.spec is None:
            raise ValueError("a model loaded from ONNX keeps its weights inside the ONNX file")
        save_weights(path, self.weights, self.spec.analysis)

    def __repr__(self) -> str:
        return f"<nnspec.Model {self.onnx.graph.name!r} inputs={self.input_names} outputs={self.output_names}>"


def _spec(path_or_spec: str | Path | Spec | IRModel) -> Spec:
    if isinstance(path_or_spec, Spec):
        return path_or_spec
    if isinstance(path_or_spec, IRModel):
        return Spec(path_or_spec, analyzed(path_or_spec), f"<{path_or_spec.name}>.json", dump_json(path_or_spec))
    return load_spec(path_or_spec)


def load(path_or_spec: str | Path | Spec | IRModel, weights: str | Path | Weights | None = None,
         seed: int | None = None, device: str = "auto", opset: int = DEFAULT_OPSET) -> Model:
    """A model from a spec (.nn/.json/.yaml path, loaded Spec, or IR model) or an ONNX file.

    weights: an nnspec .npz file, or {layer name: arrays in Keras get_weights() order} (what the
    Keras reader gives); None draws fresh ones from the spec's initializers (reproducible with
    `seed`). device: "auto" (CUDA when it really works, else CPU), "cpu" or "cuda"."""
    if isinstance(path_or_spec, (str, Path)) and Path(path_or_spec).suffix.lower() == ".onnx":
        if weights is not None or seed is not None:
            raise ValueError("weights and seed apply to specs; an ONNX model carries its weights")
        proto = read_onnx(path_or_spec)
        spec = spec_from_onnx(proto, str(path_or_spec)) if carries_spec(proto) else None
        return Model(proto, spec, None, device, path=str(path_or_spec))
    spec = _spec(path_or_spec)
    check_memory(spec.analysis.total, WEIGHT_COPIES, "compiling the model")
    if weights is None:
        weights = initial_weights(spec.analysis, seed)
    elif isinstance(weights, (str, Path)):
        weights = load_weights(weights, spec.analysis)
    return Model(compile_spec(spec, weights, opset), spec, weights, device)
