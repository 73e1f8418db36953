"""The Python API, shaped like Keras's, over the engine the `nnspec` command uses (nnspec.engine):

    model = nnspec.load("specs/mnist_mlp.nn", seed=0)      # a spec (fresh weights), .h5, .keras or .onnx
    model.compile(optimizer="adam(learning_rate=1e-3)", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, batch_size=64, validation_split=0.1)
    model.evaluate(x_test, y_test)                           # [loss, accuracy]
    probs = model.predict(x_test, batch_size=128)
    model.save("mlp.onnx")                                   # or .h5, .keras, .nn (weights beside it in .npz)
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

import numpy as np
import onnx

from . import engine
from .backends.onnx.compile import analyzed, read_onnx
from .backends.onnx.emit import DEFAULT_OPSET
from .data import sample_shape_for
from .errors import SpecError
from .ir.model import Model as IRModel
from .ir.training import TrainConfig
from .limits import check_memory
from .loader import Spec, dump_json
from .loader import load as load_spec
from .onnx_file import carries_spec, compile_model, spec_from_onnx
from .summary import summary as summary_table
from .train.callbacks import Callback
from .train.loop import History
from .weights import Weights, check_weights, initial_weights, load_weights, save_weights

if TYPE_CHECKING:
    from .backends.onnx.runtime import Session

__all__ = ["load", "Model", "Layer", "Callback", "History", "InputError"]

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


class Layer:
    """One layer of a model, as Keras's `model.layers` shows it: its name and weights."""

    def __init__(self, model: "Model", name: str, ir: Any):
        self._model, self.name, self.ir = model, name, ir

    def get_weights(self) -> list[np.ndarray]:
        return [np.array(a) for a in self._model.weights.get(self.name, [])]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self._model._replace_weights({**self._model.weights, self.name: [np.asarray(a) for a in weights]})

    def __repr__(self) -> str:
        return f"<nnspec.Layer {self.name!r} ({type(self.ir).__name__})>"


class Model:
    """A model with its weights: `predict` runs it (onnxruntime, on the first call), `fit` and
    `evaluate` train and score it as `nnspec train` and `nnspec evaluate` do.

    `spec` is None only for ONNX files nnspec did not write, until their layers are needed
    (`fit`, `layers`, `get_weights`, `save`), when they are lifted back from the graph."""

    def __init__(self, proto: onnx.ModelProto | None, spec: Spec | None = None, weights: Weights | None = None,
                 device: str = "auto", *, seed: int | None = None, opset: int = DEFAULT_OPSET,
                 origin: engine.Trainable | None = None, path: str | None = None):
        self._proto, self._spec, self._weights, self.device = proto, spec, weights, device
        self.path = path  # the ONNX file it was read from, if any
        self.seed, self.opset = seed, opset
        self._origin = origin  # a Keras file's optimizer state, where training goes on from it
        self._session: Session | None = None
        self._compiled: dict[str, Any] = {}  # compile()'s settings, over the spec's train section
        self._trained: TrainConfig | None = None  # the settings of the last fit
        self._optimizer_state: tuple[dict[str, np.ndarray], int] | None = None  # slots and step count after fit
        self.history: History | None = None

    # ---- what the model is -------------------------------------------------------------------------
    @property
    def spec(self) -> Spec | None:
        return self._spec

    @property
    def weights(self) -> Weights:
        """{layer name: arrays in Keras get_weights() order}; an ONNX file's are lifted from its graph."""
        if self._weights is None:
            self._lift()
        return self._weights

    def _lift(self) -> None:
        from .onnx_file import lift

        lifted = lift(self._proto, self._spec.path if self._spec is not None else "<onnx>")
        if self._spec is None:
            self._spec = Spec(lifted.model, analyzed(lifted.model), "<onnx>", dump_json(lifted.model))
        self._weights = lifted.weights

    def _known_spec(self) -> Spec:
        if self._spec is None:
            self._lift()
        return self._spec

    @property
    def onnx(self) -> onnx.ModelProto:
        if self._proto is None:
            ir, source, path = self._as_saved()
            self._proto = compile_model(ir, self._weights, self.opset, source=source, path=path)
        return self._proto

    def _as_saved(self) -> tuple[IRModel, str, str]:
        """The IR model to write (with the settings of its last fit), its text and the name of its form."""
        from .train.run import as_trained

        if self._trained is None:
            return self._spec.model, self._spec.source, self._spec.path
        trained, resolved = as_trained(self._spec, self._trained)
        return trained, resolved, "resolved.json"

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

    @property
    def inputs(self) -> list[InputInfo]:
        initializers = {i.name for i in self.onnx.graph.initializer}  # old exporters list them as inputs
        return [_input_info(v) for v in self.onnx.graph.input if v.name not in initializers]

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.onnx.graph.output]

    @property
    def layers(self) -> list[Layer]:
        return [Layer(self, info.layer.name, info.layer) for info in self._known_spec().analysis.layers]

    def get_layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer '{name}'; the layers are {[layer.name for layer in self.layers]}")

    def get_weights(self) -> list[np.ndarray]:
        """Every layer's arrays, in layer order, as Keras's model.get_weights() lists them."""
        return [a for layer in self.layers for a in layer.get_weights()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        arrays = list(weights)
        new: Weights = {}
        for info in self._known_spec().analysis.layers:
            count = len(info.layer.weights(info.inputs))
            new[info.layer.name], arrays = [np.asarray(a) for a in arrays[:count]], arrays[count:]
        if arrays:
            raise ValueError(f"{len(weights) - len(arrays)} arrays make up the model's weights, got {len(weights)}")
        self._replace_weights({k: v for k, v in new.items() if v})

    def _replace_weights(self, weights: Weights) -> None:
        spec = self._known_spec()
        check_weights(spec.analysis, weights)
        self._weights = {k: [np.asarray(a, np.float32) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
                             for a in arrays] for k, arrays in weights.items()}
        self._proto = self._session = None  # compiled again on the next predict

    # ---- Keras's compile, fit, evaluate, predict -------------------------------------------------------
    def compile(self, optimizer: Any = None, loss: Any = None, metrics: list | None = None, **settings: Any) -> None:
        """Keras's compile: strings as the spec language writes them ("adam", "adam(learning_rate=1e-3)",
        "categorical_crossentropy(label_smoothing=0.1)") or nnspec's objects (nnspec.ir.training);
        other train settings (batch_size, epochs, ...) by name. Optional when the spec has a train section."""
        given = {"optimizer": _value(optimizer, "optimizer"), "loss": _value(loss, "loss"),
                 "metrics": None if metrics is None else [_value(m, "metrics") for m in metrics], **settings}
        engine.configure(self._known_spec(), {**self._compiled, **given})  # a mistake shows now, not at fit
        self._compiled = {**self._compiled, **{k: v for k, v in given.items() if v is not None}}
        self._optimizer_state = None  # another optimizer starts fresh

    def _config(self, overrides: dict[str, Any]) -> TrainConfig:
        seed = {"seed": self.seed} if self.seed is not None else {}
        return engine.configure(self._known_spec(), {**self._compiled, **seed, **overrides})

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int | None = None,
            verbose: int | str | None = "auto", callbacks: list | None = None, validation_split: float | None = None,
            validation_data: Any = None, shuffle: bool | None = None, class_weight: dict | None = None,
            initial_epoch: int | None = None, steps_per_epoch: int | None = None) -> History:
        """Keras's fit; what is left out comes from compile(), then the spec's train section, then Keras's
        defaults. x: an array, a list of arrays (one per input) or a dict by input name, with y alike;
        or a data path or source as `nnspec train --data` takes it; None: the spec's data.
        validation_data: (x_val, y_val) or a data path or source. callbacks: nnspec.Callback objects,
        or callback settings as the spec writes them ("early_stopping(patience=2)")."""
        spec = self._known_spec()
        hooks = [c for c in callbacks or [] if isinstance(c, Callback)]
        listed = [_value(c, "callbacks") for c in callbacks or [] if not isinstance(c, Callback)]
        base = self._config({})
        config = self._config({
            "batch_size": batch_size, "epochs": epochs, "verbose": None if verbose == "auto" else verbose,
            "validation_split": validation_split, "shuffle": shuffle, "class_weight": class_weight,
            "initial_epoch": initial_epoch, "steps_per_epoch": steps_per_epoch,
            "callbacks": [*base.callbacks, *listed] if listed else None})
        data, validation = engine.read_data(spec, config, self._data(x, y, "x"), self._data(*_pair(validation_data),
                                                                                             "validation_data"))
        run = engine.fit(self._origin or engine.Trainable(spec, None), config, data, validation, weights=self.weights,
                         device=self.device, callbacks=tuple(hooks), optimizer_state=self._optimizer_state)
        slots = set(run.step.graphs.slots)
        self._optimizer_state = ({k: v for k, v in run.step.state().items() if k in slots}, run.trainer.global_step)
        self._replace_weights(run.weights)
        self._trained = run.trainer.config
        self.history = run.history
        return run.history

    def evaluate(self, x: Any = None, y: Any = None, batch_size: int | None = None, verbose: int = 0,
                 return_dict: bool = False) -> float | list[float] | dict[str, float]:
        """Keras's evaluate: the loss, or [loss, *metrics] when there are metrics (a dict with return_dict)."""
        spec = self._known_spec()
        config = self._config({"batch_size": batch_size})
        data = engine.evaluation_data(spec, config, self._data(x, y, "x"))
        logs = engine.evaluate(engine.Trainable(spec, None), config, data, self.weights, device=self.device)
        if verbose:
            from .train.progress import format_logs

            print(format_logs(logs))
        if return_dict:
            return logs
        return logs["loss"] if len(logs) == 1 else list(logs.values())

    def _data(self, x: Any, y: Any, name: str) -> Any:
        """Arrays as the engine's in-memory data (in input order), or a path or source as it is."""
        if x is None or isinstance(x, (str, Path)):
            if y is not None:
                raise InputError(f"y goes with arrays; {name} {x!r} brings its own targets")
            return None if x is None else str(x)
        if isinstance(x, dict):
            names = [i.name for i in self._known_spec().model.inputs]
            if sorted(x) != sorted(names):
                raise InputError(f"the model's inputs are {names}, got {sorted(x)}")
            x = [x[n] for n in names]
        if y is None:
            raise InputError(f"{name}: give the targets (y) with the arrays")
        return engine.arrays(x, y, name)

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
            shape = sample_shape_for(a.shape[1:], info.shape[1:]) if a.ndim else None
            if shape is None:
                shown = ", ".join("None" if d is None else str(d) for d in (None, *info.shape[1:]))
                raise InputError(f"input '{info.name}' takes arrays of shape ({shown}), got {a.shape}")
            arrays.append(a.reshape(len(a), *shape).astype(info.dtype, copy=False))
        if len({len(a) for a in arrays}) > 1:
            raise InputError(f"the inputs have different batch sizes: {[len(a) for a in arrays]}")
        return arrays

    # ---- showing and saving ------------------------------------------------------------------------
    def summary(self, print_fn: Callable[[str], Any] = print) -> None:
        if self._spec is None:
            raise ValueError("this ONNX file carries no nnspec spec to summarize")
        print_fn(summary_table(self._spec.analysis))

    def save(self, path: str | Path) -> list[str]:
        """By extension: .onnx, .h5 (Keras 2), .keras (Keras 3), or .nn (with its weights beside it in
        .npz); each file is written whole or not at all. Returns the files written."""
        from .convert import OUTPUTS, Source, write

        out = Path(path)
        if out.suffix.lower() not in OUTPUTS:
            raise SpecError(f"{out}: cannot write this file type; choose {', '.join(OUTPUTS)}")
        if out.suffix.lower() == ".onnx":
            self.save_onnx(out)
            return [str(out)]
        weights = self.weights
        ir, source, origin = self._as_saved()
        return write(Source(ir, analyzed(ir), weights, origin, source), out)[0]

    def save_onnx(self, path: str | Path) -> None:
        from .atomic import write_bytes

        write_bytes(path, self.onnx.SerializeToString())

    def save_weights(self, path: str | Path) -> None:
        save_weights(path, self.weights, self._known_spec().analysis)

    def __repr__(self) -> str:
        return f"<nnspec.Model {self.onnx.graph.name!r} inputs={self.input_names} outputs={self.output_names}>"


def _value(value: Any, origin: str) -> Any:
    """A setting written as the spec language writes it ("adam(learning_rate=1e-3)"), or an object as it is."""
    if isinstance(value, str):
        from .frontend import parse_value

        return parse_value(value, origin)
    return value


def _pair(validation_data: Any) -> tuple[Any, Any]:
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        return validation_data[0], validation_data[1]
    if validation_data is None or isinstance(validation_data, (str, Path)):
        return validation_data, None
    raise InputError("validation_data: give (x_val, y_val) or a data path or source")


def _spec(path_or_spec: str | Path | Spec | IRModel) -> Spec:
    if isinstance(path_or_spec, Spec):
        return path_or_spec
    if isinstance(path_or_spec, IRModel):
        return Spec(path_or_spec, analyzed(path_or_spec), f"<{path_or_spec.name}>.json", dump_json(path_or_spec))
    return load_spec(path_or_spec)


def _is_spec_path(path: Path) -> bool:
    from .convert import model_kind
    from .loader import SPEC_SUFFIXES

    return path.suffix.lower() in SPEC_SUFFIXES and (not path.is_file() or model_kind(str(path)) == "spec")


def load(path_or_spec: str | Path | Spec | IRModel, weights: str | Path | Weights | None = None,
         seed: int | None = None, device: str = "auto", opset: int = DEFAULT_OPSET) -> Model:
    """A model from a spec (.nn/.json/.yaml path, loaded Spec, or IR model), a Keras file (.h5,
    .keras, model.to_json()) or an ONNX file.

    weights (specs only): an nnspec .npz file, or {layer name: arrays in Keras get_weights() order};
    None draws fresh ones from the spec's initializers (reproducible with `seed`; seed=0 draws what
    `nnspec train` does without --seed, and `fit` then shuffles as it does). device: "auto" (CUDA
    when it really works, else CPU), "cpu" or "cuda"."""
    if isinstance(path_or_spec, (str, Path)) and not _is_spec_path(Path(path_or_spec)):
        if weights is not None:
            raise ValueError("weights apply to specs; Keras files and ONNX models carry their weights")
        if Path(path_or_spec).suffix.lower() == ".onnx":
            if seed is not None:
                raise ValueError("weights and seed apply to specs; an ONNX model carries its weights")
            proto = read_onnx(path_or_spec)
            spec = spec_from_onnx(proto, str(path_or_spec)) if carries_spec(proto) else None
            return Model(proto, spec, None, device, opset=opset, path=str(path_or_spec))
        origin = engine.open_model(path_or_spec)  # an architecture alone (Keras JSON) draws fresh weights
        weights = origin.weights if origin.weights is not None else initial_weights(origin.spec.analysis, seed)
        return Model(None, origin.spec, weights, device, seed=seed, opset=opset, origin=origin)
    spec = _spec(path_or_spec)
    check_memory(spec.analysis.total, WEIGHT_COPIES, "compiling the model")
    if weights is None:
        weights = initial_weights(spec.analysis, seed)
    elif isinstance(weights, (str, Path)):
        weights = load_weights(weights, spec.analysis)
    else:
        check_weights(spec.analysis, weights)
    model = Model(None, spec, weights, device, seed=seed, opset=opset)
    model.onnx  # compiled now: a spec that cannot compile fails at load, as it always has
    return model
