"""`nnspec train` and `nnspec evaluate` as functions: the spec's train section with overrides,
data from disk, the compiled step, the loop, and everything a run leaves behind."""
from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import data as datasets
from ..atomic import output_set, write_text
from ..errors import SpecError
from ..ir.training import TrainConfig
from ..limits import check_memory
from ..loader import Spec, dump_json
from ..weights import Weights, initial_weights, save_weights
from . import checkpoint
from .batches import PREFETCH
from .loop import History, Trainer


def configure(spec: Spec, overrides: dict[str, Any]) -> TrainConfig:
    """The spec's train section (Keras's defaults where it has none) with command-line overrides."""
    base = spec.model.train.model_dump(exclude_unset=True) if spec.model.train else {}
    merged = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    from pydantic import ValidationError

    from ..ir.validation import messages

    try:
        return TrainConfig(**merged)
    except ValidationError as exc:
        loc, msg = messages(exc, TrainConfig)[0]
        raise SpecError(f"{loc[0] if loc else 'train'}: {msg}") from None


def load_data(source, spec_dir: Path, spec: Spec | None = None, *, classes: list[str] | None = None,
              skip_bad: bool = False) -> datasets.Data:
    """A data source from the spec (relative to its folder) or a path or source from the command line.
    With `spec`, image folders take the model's input size; `classes`: the label names a trained
    model knows; `skip_bad`: skip unreadable images (counted in the data's notes)."""
    inputs = spec.model.inputs if spec is not None else None
    if isinstance(source, (str, Path)):
        template = spec.model.train.data if spec is not None and spec.model.train else None
        return datasets.load_path(source, template, inputs=inputs, classes=classes, skip_bad=skip_bad)
    return datasets.load(source, spec_dir, inputs=inputs, classes=classes, skip_bad=skip_bad)


def first_loss(config: TrainConfig):
    return config.loss[0] if isinstance(config.loss, list) else config.loss


def fit_data(spec: Spec, config: TrainConfig, data: datasets.Data) -> datasets.Data:
    """The data checked against the model and shaped as it takes it (nnspec.data.for_model)."""
    return datasets.for_model(data, spec.model, spec.analysis, config.loss, one_hot=data.one_hot)


TRAINING_COPIES = 8  # weights, gradients, two optimizer slots, the step graph's copies and the session's


@dataclass
class Run:
    step: Any
    trainer: Trainer
    history: History
    weights: Weights
    classes: list[str] | None = None


def train(spec: Spec, config: TrainConfig, train_data: datasets.Data, validation: datasets.Data | None,
          weights: Weights | None = None, *, device: str = "auto", seed: int = 0,
          checkpoint_dir: Path | None = None, resume: bool = False, verbose: int = 1,
          base_dir: Path = Path("."), prefetch: int = PREFETCH, callbacks: tuple = (),
          keras_optimizer: tuple[dict, str] | None = None,
          optimizer_state: tuple[dict[str, np.ndarray], int] | None = None, replicas=None) -> Run:
    """`replicas`: this run is one of several data-parallel replicas (nnspec.distributed.training); replica 0
    writes the checkpoints, the others keep theirs (and their callbacks' files) in their scratch folder."""
    from ..backends.onnx.step import OnnxStep
    from ..backends.onnx.training import build

    if config.loss is None:
        raise SpecError("no loss: give one in the spec's train section, with --loss, or to compile(loss=...)")
    train_data = fit_data(spec, config, train_data)
    if not train_data.has_targets:
        raise SpecError(f"{train_data.source}: no targets (y) to train on")
    if validation is None and config.validation_split:
        train_data, validation = train_data.split(config.validation_split)
    elif validation is not None:
        validation = fit_data(spec, config, validation)
    augment = None
    if config.augment is not None:
        from ..augment import Augmenter, check_inputs

        problem = check_inputs([s.shape for s in train_data.x_samples()])
        if problem:
            raise SpecError(f"augment: {problem}")
        augment = Augmenter(config.augment, seed)
    check_memory(spec.analysis.total, TRAINING_COPIES, "training")
    weights = weights if weights is not None else initial_weights(spec.analysis, seed)
    targets = [(s.shape, str(s.dtype)) for s in train_data.y_samples()]
    graphs = build(spec.analysis, config, targets, split=replicas is not None)
    if replicas is not None:
        _check_shards(len(train_data), config.batch_size, replicas.size, bool(graphs.rnn_states))
    if graphs.rnn_states and len(train_data) % config.batch_size:
        raise SpecError(f"stateful recurrent layers need every batch full: {len(train_data)} training samples "
                        f"are not a multiple of batch_size {config.batch_size}")
    step = OnnxStep(graphs, weights, device=device, seed=seed, notice=verbose > 0, batch_size=config.batch_size,
                    replicas=replicas)
    if replicas is not None and replicas.rank:
        base_dir = replicas.scratch
        checkpoint_dir = _replica_checkpoints(base_dir, checkpoint_dir, resume)
    iterations = _keras_optimizer_state(step, graphs, config, keras_optimizer, verbose) if keras_optimizer else 0
    if optimizer_state is not None:  # an earlier run's slots and step count: training goes on from them
        slots, iterations = optimizer_state
        step.load_state({**step.state(), **slots})
    if checkpoint_dir is not None:  # the folder itself appears with the first checkpoint
        from .checkpoint import clear_temporaries

        clear_temporaries(checkpoint_dir)
    trainer = Trainer(step, config, base_dir=base_dir, save_model=saver(spec),
                      checkpoint_dir=checkpoint_dir, seed=seed, verbose=verbose, augment=augment, prefetch=prefetch,
                      callbacks=callbacks)
    trainer.global_step = iterations  # Keras's step count: bias corrections and schedules go on from it
    history = trainer.fit(train_data, validation, resume=resume)
    return Run(step, trainer, history, step.weights(), train_data.classes)


def _check_shards(samples: int, batch_size: int, replicas: int, stateful: bool) -> None:
    """Every replica needs a sample of every batch (a shard's loss and statistics are never empty)."""
    if stateful:
        raise SpecError("stateful recurrent layers carry their state from batch to batch: train them without --workers")
    last = samples % batch_size or batch_size
    if min(batch_size, last, samples) < replicas:
        raise SpecError(f"--workers {replicas}: every batch needs a sample per replica, but batch_size {batch_size} "
                        f"over {samples} training samples leaves a batch of {min(batch_size, last, samples)}")


def _replica_checkpoints(scratch: Path, checkpoint_dir: Path | None, resume: bool) -> Path | None:
    """A replica's own checkpoint folder, holding a copy of the run's checkpoint to resume from."""
    if checkpoint_dir is None:
        return None
    folder = scratch / "checkpoint"
    folder.mkdir(exist_ok=True)
    if resume and (checkpoint_dir / checkpoint.FILENAME).exists():
        shutil.copy(checkpoint_dir / checkpoint.FILENAME, folder / checkpoint.FILENAME)
    return folder


def _keras_optimizer_state(step, graphs, config: TrainConfig, keras_optimizer: tuple[dict, str], verbose: int) -> int:
    """Load a Keras file's optimizer slots into the step; returns Keras's step count (0 if unusable)."""
    from ..backends.keras.optimizer_state import optimizer_state
    from ..backends.onnx import optimizers

    stored, version = keras_optimizer
    params = [(p.name, p.shape) for p in graphs.params if p.trainable]
    state = optimizer_state(stored, version, optimizers.slot_names(config.optimizer), params)
    if isinstance(state, str):
        if verbose:
            print(f"nnspec: note: the file's optimizer state is not used ({state}); the optimizer starts fresh",
                  file=sys.stderr)
        return 0
    slots, iterations = state
    step.load_state({**step.state(), **slots})
    return iterations


def evaluate(spec: Spec, config: TrainConfig, data: datasets.Data, weights: Weights,
             device: str = "auto") -> dict[str, float]:
    from ..backends.onnx.step import OnnxStep
    from ..backends.onnx.training import build

    data = fit_data(spec, config, data)
    if not data.has_targets:
        raise SpecError(f"{data.source}: no targets (y) to evaluate against")
    graphs = build(spec.analysis, config, [(s.shape, str(s.dtype)) for s in data.y_samples()])
    step = OnnxStep(graphs, weights, device=device, notice=False)
    return Trainer(step, config, verbose=0).evaluate(data)


def saver(spec: Spec):
    """How model_checkpoint saves: an ONNX model, or (weights_only, or a .npz path) the weights."""
    def save(path: Path, weights: Weights, weights_only: bool) -> None:
        if weights_only or path.suffix == ".npz":
            save_weights(path.with_suffix(".npz"), weights, spec.analysis)
        else:  # the ONNX file reader and writer load only when a model is saved, not before the first step
            from ..atomic import write_bytes
            from ..onnx_file import compile_spec

            write_bytes(path, compile_spec(spec, weights).SerializeToString())
    return save


CLASSES_KEY = "nnspec.classes"


def classes_path(weights_or_model: Path) -> Path:
    """The sidecar that holds a trained model's class names: beside it, .classes.json."""
    return Path(weights_or_model).with_suffix(".classes.json")


def read_classes(path: Path) -> list[str] | None:
    """The class names saved beside a trained model or weights file, if any."""
    sidecar = classes_path(path)
    if not sidecar.exists():
        return None
    try:
        names = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpecError(f"{sidecar}: unreadable class names ({exc})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise SpecError(f"{sidecar}: expected a JSON list of class names")
    return names


def as_trained(spec: Spec, config: TrainConfig):
    """The model as it was trained (its train section holds the settings the run really used), and
    that model's resolved JSON, which repeats the run exactly."""
    trained = spec.model.model_copy(update={"train": config})
    return trained, dump_json(trained)


def save_results(spec: Spec, run: Run, onnx_path: Path, history_path: Path, plot: bool = True) -> list[Path]:
    """The trained model, its weights, the history (JSON and, with `plot`, a picture beside it), the
    class names (in the model's metadata and a .classes.json sidecar) and the resolved spec, written as
    one set: all of them or, on any failure, none. Returns the paths written."""
    with output_set():
        return _save_results(spec, run, onnx_path, history_path, plot)


def _save_results(spec: Spec, run: Run, onnx_path: Path, history_path: Path, plot: bool) -> list[Path]:
    import onnx

    from ..onnx_file import compile_model
    from ..atomic import write_bytes

    trained, resolved = as_trained(spec, run.trainer.config)
    proto = compile_model(trained, run.weights, source=resolved, path="resolved.json")
    written = [onnx_path, onnx_path.with_suffix(".npz"), history_path]
    if run.classes:
        onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props},
                                            CLASSES_KEY: json.dumps(run.classes)})
        write_text(classes_path(onnx_path), json.dumps(run.classes) + "\n")
        written.append(classes_path(onnx_path))
    write_bytes(onnx_path, proto.SerializeToString())
    save_weights(onnx_path.with_suffix(".npz"), run.weights, spec.analysis)
    write_text(history_path, json.dumps(run.history.history, indent=2) + "\n")
    write_text(onnx_path.with_suffix(".resolved.json"), resolved + "\n")
    if plot and run.history.history:
        from ..plots import plot_history

        picture = history_path.with_suffix(".png")
        plot_history(run.history.history, picture, title=spec.model.name, epochs=run.history.epochs)
        written.append(picture)
    return written
