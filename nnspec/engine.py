"""The one training engine: what `nnspec train`, `nnspec evaluate`, `nnspec tune` and the Python API's
`fit`/`evaluate` share, so each of them only gathers its settings.

    model = open_model("mlp.nn")                        # a spec, Keras file or ONNX model, with what it brings
    config = configure(model.spec, {"epochs": 3})       # the spec's train section with overrides
    data, validation = read_data(model.spec, config)    # the spec's data, a path, a source or arrays
    run = fit(model, config, data, validation)          # the compiled step and Keras's fit loop
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import Data, Dataset
from .errors import SpecError
from .ir.training import TrainConfig
from .loader import Spec
from .train.run import Run, configure, load_data, train
from .train.run import evaluate as evaluate_step
from .weights import Weights

__all__ = ["Trainable", "open_model", "configure", "arrays", "read_data", "evaluation_data", "fit", "trained_weights",
           "evaluate", "spec_folder"]


@dataclass
class Trainable:
    """A model to train or evaluate, with what its file brings."""

    spec: Spec
    weights: Weights | None  # None: fresh from the spec's initializers
    notes: list[str] = field(default_factory=list)
    optimizer_weights: dict[str, np.ndarray] | None = None  # a Keras file's optimizer state
    keras_version: str = ""


def open_model(path: str | Path) -> Trainable:
    """A spec (fresh weights), or a Keras file or ONNX model (its weights and, for Keras, its
    optimizer state, to go on training from them)."""
    from .convert import read

    source = read(str(path), fresh=False)
    return Trainable(source.spec(), source.weights, source.notes, source.optimizer_weights, source.keras_version)


def spec_folder(spec: Spec) -> Path:
    """The folder the spec's own data paths are relative to."""
    return Path(spec.path).resolve().parent


def arrays(x: Any, y: Any = None, name: str = "x") -> Dataset:
    """In-memory data for the Python API: x and y each an array or a list of arrays (one per input or output)."""
    xs = [np.asarray(a) for a in (x if isinstance(x, (list, tuple)) else [x])]
    ys = [] if y is None else [np.asarray(a) for a in (y if isinstance(y, (list, tuple)) else [y])]
    return Dataset(xs, ys, source=name)  # checked with the model, as every source is (nnspec.data.for_model)


def read_data(spec: Spec, config: TrainConfig, data: Any = None, validation_data: Any = None, *,
              skip_bad: bool = False) -> tuple[Data, Data | None]:
    """The training and validation data. Each of `data` and `validation_data` may be a path or a source as
    written on the command line (relative to the current folder), a data source, or a `Data` (arrays);
    None takes the spec's (relative to its folder). Without validation data or split, an image folder's
    Keras layout gives it: training on PATH/train validates on PATH/valid."""
    source = _source(spec, config, data)
    train_data = _read(source, spec, skip_bad=skip_bad)
    validation_source = validation_data if validation_data is not None else config.validation_data
    if validation_source is not None:
        return train_data, _read(validation_source, spec, classes=train_data.classes, skip_bad=skip_bad)
    if config.validation_split or isinstance(source, Data):
        return train_data, None
    return train_data, _image_validation(source, spec, train_data, skip_bad)


def evaluation_data(spec: Spec, config: TrainConfig, data: Any = None, classes: list[str] | None = None) -> Data:
    """`data` as read_data takes it, else the spec's; `classes`: the label names the trained model knows."""
    return _read(_source(spec, config, data), spec, classes=classes)


def _source(spec: Spec, config: TrainConfig, data: Any) -> Any:
    source = data if data is not None else config.data
    if source is None:
        raise SpecError(f"{spec.path}: no data: give data (--data) or a `data` line in the train section")
    return source


def _read(source: Any, spec: Spec, **kwargs) -> Data:
    return source if isinstance(source, Data) else load_data(source, spec_folder(spec), spec, **kwargs)


def _image_validation(source: Any, spec: Spec, data: Data, skip_bad: bool) -> Data | None:
    from .data import source_for_path, validation_folder

    base = spec_folder(spec)
    if isinstance(source, (str, Path)):
        source, base = source_for_path(source), Path(".")
    valid = validation_folder(source, base)
    return None if valid is None else load_data(valid, base, spec, classes=data.classes, skip_bad=skip_bad)


def fit(model: Trainable, config: TrainConfig, data: Data, validation: Data | None, *,
        weights: Weights | None = None, fresh_optimizer: bool = False, device: str = "auto",
        checkpoint_dir: Path | None = None, resume: bool = False, callbacks: tuple = (),
        base_dir: Path = Path("."), optimizer_state: tuple[dict[str, np.ndarray], int] | None = None,
        replicas=None) -> Run:
    """Train from `weights` (default: the model's, else fresh from the spec's initializers with the
    run's seed). A Keras file's optimizer state is taken up unless `fresh_optimizer`; `optimizer_state`
    (slots, step count) continues an earlier run of the same optimizer, as Keras's repeated fit does;
    `replicas`: this run is one replica of a data-parallel run (nnspec.distributed.training)."""
    keras_optimizer = None
    if model.optimizer_weights and not fresh_optimizer and optimizer_state is None:
        keras_optimizer = (model.optimizer_weights, model.keras_version)
    return train(model.spec, config, data, validation, weights if weights is not None else model.weights,
                 device=device, seed=config.seed if config.seed is not None else 0, checkpoint_dir=checkpoint_dir,
                 resume=resume, verbose=config.verbose, base_dir=base_dir, callbacks=callbacks,
                 keras_optimizer=keras_optimizer, optimizer_state=optimizer_state, replicas=replicas)


def trained_weights(model: Trainable) -> Weights:
    """The weights the model's file brings; a spec brings none."""
    if model.weights is None:
        raise SpecError(f"{model.spec.path}: a spec has no trained weights: give them (--weights, the .npz that "
                        "nnspec train wrote)")
    return model.weights


def evaluate(model: Trainable, config: TrainConfig, data: Data, weights: Weights | None = None,
             device: str = "auto") -> dict[str, float]:
    """Loss and metrics of the model's weights (or `weights`) on `data`, as Keras's evaluate reports them."""
    return evaluate_step(model.spec, config, data, weights if weights is not None else trained_weights(model),
                         device=device)
