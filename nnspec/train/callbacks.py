"""Keras's callbacks, built from the spec's callback entries. Each keeps its state in a dict so a
checkpoint can save and restore it."""
from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..ir import training as spec
from .schedules import schedule_value


class Callback:
    def __init__(self):
        self.trainer = None  # set by the loop: gives access to weights, the learning rate, stopping

    def on_train_begin(self) -> None: ...
    def on_batch_end(self, step: int, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self) -> None: ...

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None: ...


def _mode(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "max" if any(k in monitor for k in ("acc", "auc", "precision", "recall")) else "min"


class _Monitor(Callback):
    """Tracks the best value of a monitored log entry (the logic EarlyStopping and friends share)."""

    def __init__(self, monitor: str, mode: str, min_delta: float):
        super().__init__()
        self.monitor = monitor
        self.sign = 1.0 if _mode(monitor, mode) == "min" else -1.0
        self.min_delta = abs(min_delta)
        self.best = math.inf
        self.wait = 0

    def _improved(self, logs: dict) -> bool | None:
        value = logs.get(self.monitor)
        if value is None:
            return None
        if self.sign * value < self.best - self.min_delta:
            self.best = self.sign * value
            return True
        return False

    def state(self) -> dict:
        return {"best": self.best, "wait": self.wait}

    def load_state(self, state: dict) -> None:
        self.best, self.wait = state["best"], state["wait"]


class EarlyStopping(_Monitor):
    def __init__(self, cfg: spec.EarlyStopping):
        super().__init__(cfg.monitor, cfg.mode, cfg.min_delta)
        self.cfg = cfg
        if cfg.baseline is not None:
            self.best = self.sign * cfg.baseline
        self.best_weights = None

    def on_epoch_end(self, epoch, logs):
        if epoch < self.cfg.start_from_epoch:
            return
        improved = self._improved(logs)
        if improved is None:
            return
        if improved:
            self.wait = 0
            if self.cfg.restore_best_weights:
                self.best_weights = self.trainer.step.state()
        else:
            self.wait += 1
            if self.wait >= self.cfg.patience:
                self.trainer.stop(f"early stopping: {self.monitor} did not improve for {self.wait} epoch(s)")

    def on_train_end(self):
        if self.cfg.restore_best_weights and self.best_weights is not None:
            self.trainer.step.load_state(self.best_weights)

    def state(self):
        out = super().state()
        if self.best_weights is not None:
            out["best_weights"] = self.best_weights  # arrays: the checkpoint stores them separately
        return out

    def load_state(self, state):
        super().load_state(state)
        self.best_weights = state.get("best_weights")


class ModelCheckpoint(_Monitor):
    def __init__(self, cfg: spec.ModelCheckpoint, base_dir: Path):
        super().__init__(cfg.monitor, cfg.mode, 0.0)
        self.cfg = cfg
        self.base_dir = base_dir

    def on_epoch_end(self, epoch, logs):
        if self.cfg.save_best_only and not self._improved(logs):
            return
        path = self.base_dir / self.cfg.filepath.format(epoch=epoch + 1, **logs)
        self.trainer.save(path, weights_only=self.cfg.save_weights_only)


class ReduceLROnPlateau(_Monitor):
    def __init__(self, cfg: spec.ReduceLROnPlateau):
        super().__init__(cfg.monitor, cfg.mode, cfg.min_delta)
        self.cfg = cfg
        self.cooldown = 0

    def on_epoch_end(self, epoch, logs):
        improved = self._improved(logs)
        if improved is None:
            return
        if self.cooldown > 0:
            self.cooldown -= 1
            self.wait = 0
        if improved:
            self.wait = 0
        elif self.cooldown <= 0:
            self.wait += 1
            if self.wait >= self.cfg.patience:
                old = self.trainer.current_lr()
                if old > self.cfg.min_lr:
                    self.trainer.set_lr(max(old * self.cfg.factor, self.cfg.min_lr))
                    self.cooldown = self.cfg.cooldown
                    self.wait = 0

    def state(self):
        return {**super().state(), "cooldown": self.cooldown}

    def load_state(self, state):
        super().load_state(state)
        self.cooldown = state["cooldown"]


class LearningRateScheduler(Callback):
    """Sets the rate at the start of each epoch from a schedule whose steps count epochs."""

    def __init__(self, cfg: spec.LearningRateScheduler):
        super().__init__()
        self.cfg = cfg

    def on_epoch_begin(self, epoch):
        self.trainer.set_lr(schedule_value(self.cfg.schedule, epoch))


class CSVLogger(Callback):
    def __init__(self, cfg: spec.CSVLogger, base_dir: Path):
        super().__init__()
        self.path = base_dir / cfg.filename
        self.cfg = cfg

    def on_train_begin(self):
        if not self.cfg.append and not self.trainer.resumed and self.path.exists():
            self.path.unlink()

    def on_epoch_end(self, epoch, logs):
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f, delimiter=self.cfg.separator)
            if new:
                writer.writerow(["epoch", *logs])
            writer.writerow([epoch, *(f"{v:.10g}" for v in logs.values())])
            f.flush()
            os.fsync(f.fileno())


class TerminateOnNaN(Callback):
    def on_batch_end(self, step, logs):
        loss = logs.get("loss")
        if loss is not None and not np.isfinite(loss):
            self.trainer.stop(f"batch {step}: invalid loss, terminating training")


class TensorBoard(Callback):
    """Keras's TensorBoard callback: event files that `tensorboard --logdir LOG_DIR` opens. Scalars per
    epoch as Keras names them (epoch_loss, epoch_accuracy, ...) in LOG_DIR/train and, for validation,
    under the same names in LOG_DIR/validation, so TensorBoard draws both on one chart; the learning
    rate as epoch_learning_rate; with histogram_freq N, a histogram of every weight each N epochs (and
    with write_images, each weight drawn as an image, as Keras draws it); with write_graph (Keras's
    default), the inference model's ONNX graph in the Graphs tab. Written with tensorboardX (pure Python, no TensorFlow); a resumed run drops what the killed one
    wrote after its checkpoint."""

    def __init__(self, cfg: spec.TensorBoard, base_dir: Path):
        super().__init__()
        self.cfg = cfg
        self.log_dir = base_dir / cfg.log_dir
        self.writers: dict = {}

    def _writer(self, name: str):
        if name not in self.writers:
            from tensorboardX import SummaryWriter

            purge = self.trainer.start_epoch if self.trainer.resumed else None
            # tensorboardX names files by the second: a suffix keeps a quick resume from overwriting
            # the killed run's file (and sorts after it, so TensorBoard reads them in order)
            suffix = f".{time.time_ns()}.{os.getpid()}"
            self.writers[name] = SummaryWriter(str(self.log_dir / name), purge_step=purge, flush_secs=10,
                                               filename_suffix=suffix)
        return self.writers[name]

    def on_train_begin(self):
        train = self._writer("train")
        if self.cfg.write_graph and not self.trainer.resumed:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.onnx"
                self.trainer.save(path)
                with contextlib.redirect_stdout(io.StringIO()):  # tensorboardX prints every node's name
                    train.add_onnx_graph(str(path))

    def on_epoch_end(self, epoch, logs):
        train = self._writer("train")
        for key, value in logs.items():
            if key.startswith("val_"):
                self._writer("validation").add_scalar(f"epoch_{key[4:]}", float(value), epoch)
            else:
                train.add_scalar(f"epoch_{key}", float(value), epoch)
        train.add_scalar("epoch_learning_rate", float(self.trainer.current_lr()), epoch)
        if self.cfg.histogram_freq and (epoch + 1) % self.cfg.histogram_freq == 0:
            for tag, values in self._weights():
                train.add_histogram(tag, values, epoch)
                image = weight_image(values) if self.cfg.write_images else None
                if image is not None:
                    train.add_images(f"{tag}/image", image, epoch, dataformats="NHWC")
        for writer in self.writers.values():
            writer.flush()

    def _weights(self):
        step = self.trainer.step
        params = getattr(getattr(step, "graphs", None), "params", None)
        weights = step.weights()
        for layer, arrays in weights.items():
            names = [p.name.split(":", 1)[1] for p in params if p.layer == layer] if params else []
            for i, array in enumerate(arrays):
                yield f"{layer}/{names[i] if i < len(names) else i}", np.asarray(array, np.float64)

    def on_train_end(self):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


def weight_image(weight: np.ndarray) -> np.ndarray | None:
    """A weight as Keras's TensorBoard draws it (NHWC, values in [0, 1] shown, the rest clipped): a bias
    as a column, a kernel as a matrix with its longer side across, a 3-d kernel one image per filter, a
    4-d one as it is when its last axis can be channels; None for what Keras does not draw."""
    w = np.squeeze(weight)
    if w.ndim == 1:
        w = w.reshape(1, len(w), 1, 1)
    elif w.ndim == 2:
        w = (w.T if w.shape[0] > w.shape[1] else w)[None, ..., None]
    elif w.ndim == 3:
        w = np.transpose(w, (2, 0, 1))[..., None]
    return w if w.ndim == 4 and w.shape[-1] in (1, 3, 4) else None


def build(configs: list, base_dir: Path) -> list[Callback]:
    out = []
    for cfg in configs:
        if isinstance(cfg, spec.EarlyStopping):
            out.append(EarlyStopping(cfg))
        elif isinstance(cfg, spec.ModelCheckpoint):
            out.append(ModelCheckpoint(cfg, base_dir))
        elif isinstance(cfg, spec.ReduceLROnPlateau):
            out.append(ReduceLROnPlateau(cfg))
        elif isinstance(cfg, spec.LearningRateScheduler):
            out.append(LearningRateScheduler(cfg))
        elif isinstance(cfg, spec.CSVLogger):
            out.append(CSVLogger(cfg, base_dir))
        elif isinstance(cfg, spec.TensorBoard):
            out.append(TensorBoard(cfg, base_dir))
        elif isinstance(cfg, spec.TerminateOnNaN):
            out.append(TerminateOnNaN())
        elif isinstance(cfg, spec.HistoryCallback):
            continue  # the history is always kept and returned
        else:
            from ..errors import SpecError

            raise SpecError(f"the {cfg.name} callback is not supported by `nnspec train` yet")
    return out
