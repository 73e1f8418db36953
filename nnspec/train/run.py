"""`nnspec train` and `nnspec evaluate` as functions: the spec's train section with overrides,
data from disk, the compiled step, the loop, and everything a run leaves behind."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import data as datasets
from ..atomic import write_text
from ..errors import SpecError
from ..ir.training import TrainConfig
from ..loader import Spec, dump_json
from ..weights import Weights, initial_weights, save_weights
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


def load_data(source, spec_dir: Path) -> datasets.Dataset:
    """A data source from the spec (relative to its folder) or a path from the command line."""
    if isinstance(source, (str, Path)):
        return datasets.load_path(source)
    return datasets.load(source, spec_dir)


@dataclass
class Run:
    step: Any
    trainer: Trainer
    history: History
    weights: Weights


def train(spec: Spec, config: TrainConfig, train_data: datasets.Dataset, validation: datasets.Dataset | None,
          weights: Weights | None = None, *, device: str = "auto", seed: int = 0,
          checkpoint_dir: Path | None = None, resume: bool = False, verbose: int = 1,
          base_dir: Path = Path(".")) -> Run:
    from ..backends.onnx.step import OnnxStep
    from ..backends.onnx.training import build

    datasets.check_against_model(train_data, spec.model, spec.analysis)
    if not train_data.ys:
        raise SpecError(f"{train_data.source}: no targets (y) to train on")
    if validation is None and config.validation_split:
        train_data, validation = train_data.split(config.validation_split)
    if validation is not None:
        datasets.check_against_model(validation, spec.model, spec.analysis)
    weights = weights if weights is not None else initial_weights(spec.analysis, seed)
    targets = [(y.shape[1:], str(y.dtype)) for y in train_data.ys]
    graphs = build(spec.analysis, config, weights, targets)
    if graphs.rnn_states and len(train_data) % config.batch_size:
        raise SpecError(f"stateful recurrent layers need every batch full: {len(train_data)} training samples "
                        f"are not a multiple of batch_size {config.batch_size}")
    step = OnnxStep(graphs, weights, device=device, seed=seed, notice=verbose > 0, batch_size=config.batch_size)
    if checkpoint_dir is not None:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(step, config, base_dir=base_dir, save_model=saver(spec),
                      checkpoint_dir=checkpoint_dir, seed=seed, verbose=verbose)
    history = trainer.fit(train_data, validation, resume=resume)
    return Run(step, trainer, history, step.weights())


def evaluate(spec: Spec, config: TrainConfig, data: datasets.Dataset, weights: Weights,
             device: str = "auto") -> dict[str, float]:
    from ..backends.onnx.step import OnnxStep
    from ..backends.onnx.training import build

    datasets.check_against_model(data, spec.model, spec.analysis)
    graphs = build(spec.analysis, config, weights, [(y.shape[1:], str(y.dtype)) for y in data.ys])
    step = OnnxStep(graphs, weights, device=device, notice=False)
    return Trainer(step, config, verbose=0).evaluate(data)


def saver(spec: Spec):
    """How model_checkpoint saves: an ONNX model, or (weights_only, or a .npz path) the weights."""
    from ..atomic import write_bytes
    from ..backends.onnx import compile_spec

    def save(path: Path, weights: Weights, weights_only: bool) -> None:
        if weights_only or path.suffix == ".npz":
            save_weights(path.with_suffix(".npz"), weights, spec.analysis)
        else:
            write_bytes(path, compile_spec(spec, weights).SerializeToString())
    return save


def save_results(spec: Spec, run: Run, onnx_path: Path, history_path: Path) -> None:
    """The trained model, its weights, the history and the resolved spec, each written atomically."""
    from ..backends.onnx import compile_spec
    from ..atomic import write_bytes

    write_bytes(onnx_path, compile_spec(spec, run.weights).SerializeToString())
    save_weights(onnx_path.with_suffix(".npz"), run.weights, spec.analysis)
    write_text(history_path, json.dumps(run.history.history, indent=2) + "\n")
    write_text(onnx_path.with_suffix(".resolved.json"), dump_json(spec.model) + "\n")
