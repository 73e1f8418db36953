"""Keras `fit`/`evaluate` semantics over a compiled training step."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from ..data import Data
from ..ir.training import TrainConfig
from . import checkpoint as ckpt
from .batches import PREFETCH, Batches
from .callbacks import Callback, EarlyStopping, build as build_callbacks
from .progress import Progress
from .schedules import learning_rate


class Step(Protocol):
    """A compiled training graph and its state (parameters and optimizer slots)."""

    metric_names: list[str]

    def rows(self, n: int) -> slice:
        """The rows of a global batch of n this step trains on (a data-parallel replica's shard)."""

    def train(self, xs: list[np.ndarray], ys: list[np.ndarray], sample_weight: np.ndarray, lr: float,
              step: int, n: int | None = None) -> tuple[float, np.ndarray]: ...

    def evaluate(self, xs, ys, sample_weight) -> tuple[float, np.ndarray]: ...

    def finalize(self, sums: np.ndarray) -> dict[str, float]: ...

    def state(self) -> dict[str, np.ndarray]: ...

    def load_state(self, state: dict[str, np.ndarray]) -> None: ...


@dataclass
class History:
    history: dict[str, list[float]] = field(default_factory=dict)
    epochs: list[int] = field(default_factory=list)

    @property
    def epoch(self) -> list[int]:
        """Keras's name: the epochs run, from 0."""
        return self.epochs

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epochs.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))


def sample_weights(ys: list[np.ndarray], class_weight: dict[int, float] | None,
                   given: np.ndarray | None = None) -> np.ndarray:
    """Keras: per-sample weights, times the class weight of each sample's label."""
    n = len(ys[0])
    weights = np.ones(n, np.float32) if given is None else np.asarray(given, np.float32).copy()
    if class_weight:
        y = ys[0]
        labels = y.argmax(-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(n).astype(np.int64)
        weights *= np.array([class_weight.get(int(c), 1.0) for c in labels], np.float32)
    return weights


class Trainer:
    def __init__(self, step: Step, config: TrainConfig, *, base_dir: Path = Path("."), save_model=None,
                 checkpoint_dir: Path | None = None, seed: int = 0, verbose: int = 1, augment=None,
                 prefetch: int = PREFETCH, callbacks: tuple[Callback, ...] = ()):
        self.step = step
        self.config = config
        # the spec's callbacks, then the caller's (nnspec tune's pruning reports each epoch to its trial)
        self.callbacks: list[Callback] = build_callbacks(config.callbacks, base_dir) + list(callbacks)
        for cb in self.callbacks:
            cb.trainer = self
        self.save_model = save_model
        self.checkpoint_dir = checkpoint_dir
        self.seed = seed
        self.verbose = verbose
        self.history = History()
        self.global_step = 0
        self.lr_override: float | None = None
        self.stop_reason: str | None = None
        self.resumed = False
        self.start_epoch = config.initial_epoch
        self.augment = augment  # called as augment(xs, epoch, batch, rows, n) on training batches (nnspec.augment)
        self.prefetch = prefetch  # batches prepared ahead in a thread; 0: none
        self.wait_s = 0.0  # time the loop waited for batches

    # ---- what callbacks use ------------------------------------------------------------------
    def stop(self, reason: str) -> None:
        self.stop_reason = reason

    def current_lr(self) -> float:
        return learning_rate(self.config.optimizer, self.global_step, self.lr_override)

    def set_lr(self, value: float) -> None:
        self.lr_override = float(value)

    def save(self, path: Path, weights_only: bool = False) -> None:
        self.save_model(Path(path), self.step.weights(), weights_only)

    # ---- the loop ------------------------------------------------------------------------------
    def fit(self, train: Data, validation: Data | None = None, resume: bool = False) -> History:
        """`train`, `validation`: any `Data` (nnspec.data): the loop asks only for len() and batch()."""
        cfg = self.config
        start_epoch = cfg.initial_epoch
        if resume:
            start_epoch = self._restore()
        self.start_epoch = start_epoch
        steps = math.ceil(len(train) / cfg.batch_size)
        if cfg.steps_per_epoch:
            steps = min(steps, cfg.steps_per_epoch)
        progress = Progress(self.verbose, cfg.epochs)
        for cb in self.callbacks:
            cb.on_train_begin()
        for epoch in range(start_epoch, cfg.epochs):
            if self.stop_reason:
                break
            for cb in self.callbacks:
                cb.on_epoch_begin(epoch)
            if hasattr(self.step, "reset_states"):  # as Keras's stateful examples do after each epoch
                self.step.reset_states()
            progress.epoch_begin(epoch, steps)
            loss_sum, count, metric_sums = 0.0, 0, None
            batches = Batches(self._preparer(train, epoch), steps, self.prefetch)
            for xs, ys, weights, n in batches:
                loss, stats = self.step.train(xs, ys, weights, self.current_lr(), self.global_step, n)
                self.global_step += 1
                loss_sum += loss * n
                count += n
                metric_sums = stats if metric_sums is None else metric_sums + stats
                logs = {"loss": loss_sum / count, **self.step.finalize(metric_sums)}
                progress.batch_end(logs)
                for cb in self.callbacks:
                    cb.on_batch_end(self.global_step, {"loss": loss})
                if self.stop_reason:
                    break
            batches.close()
            self.wait_s += batches.wait_s
            if validation is not None and len(validation):
                val = self.evaluate(validation, steps=cfg.validation_steps)
                logs.update({f"val_{k}": v for k, v in val.items()})
            progress.epoch_end(logs)
            self.history.append(epoch, logs)
            for cb in self.callbacks:
                cb.on_epoch_end(epoch, logs)
            self._checkpoint(epoch + 1)
            if self.stop_reason and self.verbose:
                print(self.stop_reason)
        for cb in self.callbacks:
            cb.on_train_end()
        return self.history

    def _preparer(self, train: Data, epoch: int):
        """Batch b of an epoch: the step's rows of its samples (shuffled by a generator per epoch, so a
        resumed run shuffles exactly as an unbroken one; a replica reads only its shard), augmented per
        (seed, epoch, b), their weights, and the size of the whole batch."""
        cfg = self.config
        order = np.arange(len(train))
        if cfg.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(len(train))

        def prepare(b: int):
            batch = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            rows = self.step.rows(len(batch))
            idx = batch[rows]
            xs, ys = train.batch(idx)
            if self.augment is not None:
                xs = self.augment(xs, epoch, b, rows, len(batch))
            return xs, ys, sample_weights(ys, cfg.class_weight, train.read_weights(idx)), len(batch)
        return prepare

    def evaluate(self, data: Data, batch_size: int | None = None, steps: int | None = None) -> dict[str, float]:
        """Loss and metrics over `data`, or over its first `steps` batches (Keras's validation_steps)."""
        batch_size = batch_size or self.config.batch_size
        loss_sum, count, sums = 0.0, 0, None

        def prepare(b: int):
            idx = np.arange(b * batch_size, min((b + 1) * batch_size, len(data)))
            xs, ys = data.batch(idx)
            return xs, ys, sample_weights(ys, None, data.read_weights(idx))

        batches = math.ceil(len(data) / batch_size)
        for xs, ys, weights in Batches(prepare, min(batches, steps or batches), self.prefetch):
            loss, stats = self.step.evaluate(xs, ys, weights)
            n = len(weights)
            loss_sum += loss * n
            count += n
            sums = stats if sums is None else sums + stats
        return {"loss": loss_sum / count, **self.step.finalize(sums)}

    # ---- checkpoints ---------------------------------------------------------------------------
    def _checkpoint(self, next_epoch: int) -> None:
        if self.checkpoint_dir is None:
            return
        best = None
        states = []
        for cb in self.callbacks:
            state = dict(cb.state())
            if isinstance(cb, EarlyStopping) and "best_weights" in state:
                best = state.pop("best_weights")
            states.append(state)
        meta = {"epoch": next_epoch, "step": self.global_step, "lr_override": self.lr_override,
                "history": self.history.history, "epochs": self.history.epochs, "callbacks": states,
                "stop_reason": self.stop_reason, "seed": self.seed}
        ckpt.save(self.checkpoint_dir, self.step.state(), meta, best)

    def _restore(self) -> int:
        saved = ckpt.load(self.checkpoint_dir)
        if saved is None:
            print(f"nnspec: no checkpoint in {self.checkpoint_dir} yet; starting from the beginning", file=sys.stderr)
            return self.config.initial_epoch
        state, meta, best = saved
        try:
            self.step.load_state(state)
        except ValueError as exc:  # resumed with another spec, optimizer or flags
            from ..errors import SpecError

            raise SpecError(f"{self.checkpoint_dir / ckpt.FILENAME}: {exc}; resume with the run's own settings") from None
        self.global_step = meta["step"]
        self.lr_override = meta["lr_override"]
        self.history = History(meta["history"], meta["epochs"])
        self.stop_reason = meta["stop_reason"]
        self.seed = meta["seed"]
        for cb, s in zip(self.callbacks, meta["callbacks"]):
            if isinstance(cb, EarlyStopping) and best is not None:
                s = {**s, "best_weights": best}
            cb.load_state(s)
        self.resumed = True
        return meta["epoch"]
