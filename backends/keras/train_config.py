"""Keras's compile settings (the reader's normalized training_config) <-> the IR's TrainConfig.

Only what `compile` says travels: loss, metrics, optimizer (with its config and learning-rate
schedule). fit's settings (batch size, epochs, ...) are not in Keras files, so an imported
TrainConfig has Keras's defaults for them.
"""
from __future__ import annotations

from ...ir.training import LOSSES, METRICS, OPTIMIZERS, SCHEDULES, TrainConfig
from .errors import KerasFormatError
from .layer_export import keras_object
from .normalize import Context
from .objects import from_keras


def _per_output(value, outputs: list[str], what: str, ctx: Context) -> list:
    """A Keras per-output setting (one value, a list, or a dict by output name) as a list."""
    if isinstance(value, dict) and "class_name" not in value:
        missing = [o for o in outputs if o not in value]
        if missing:
            raise ctx.error(f"{what} names no value for output(s) {missing}")
        return [value[o] for o in outputs]
    return value if isinstance(value, list) else [value]


def _metrics(value, outputs: list[str], ctx: Context) -> list:
    flat = []
    for entry in _per_output(value, outputs, "metrics", ctx) if value else []:
        flat.extend(entry if isinstance(entry, list) else [entry])
    unique = []
    for m in (from_keras(METRICS, v, ctx, "metrics") for v in flat if v is not None):
        if m not in unique:  # Keras repeats a metric list once per output
            unique.append(m)
    return unique


def _optimizer(value, ctx: Context):
    config = dict(value.get("config") or {})
    if isinstance(config.get("learning_rate"), dict):
        config["learning_rate"] = from_keras(SCHEDULES, config["learning_rate"], ctx, "learning_rate")
    return from_keras(OPTIMIZERS, {"class_name": value["class_name"], "config": config}, ctx, "optimizer")


def import_train(training: dict | None, outputs: list[str], ctx: Context) -> tuple[TrainConfig | None, list[str]]:
    """(TrainConfig or None, notes on what could not be kept)."""
    if not training or all(v in (None, [], {}) for v in training.values()):
        return None, []
    unkept = [k for k in ("loss_weights", "weighted_metrics") if training.get(k) not in (None, [], {})]
    if unkept:
        return None, [f"training settings not kept: {', '.join(unkept)} have no nnspec equivalent"]
    try:
        fields = {}
        if training.get("loss") is not None:
            losses = [from_keras(LOSSES, v, ctx, "loss") for v in _per_output(training["loss"], outputs, "loss", ctx)]
            fields["loss"] = losses[0] if len(losses) == 1 else losses
        fields["metrics"] = _metrics(training.get("metrics"), outputs, ctx)
        if training.get("optimizer") is not None:
            fields["optimizer"] = _optimizer(training["optimizer"], ctx)
        return TrainConfig(**fields), []
    except KerasFormatError as exc:
        return None, [f"training settings not kept: {exc.problem}"]


def _named_or_object(fn, module: str):
    """A loss or metric: its name where every parameter is the default, else a Keras object."""
    if fn == type(fn)(name=fn.name):
        return fn.name
    return keras_object(fn, module)


def _keras_optimizer(opt) -> dict:
    obj = keras_object(opt, "keras.optimizers")
    del obj["config"]["decay"]  # Keras 2.11+ and 3 optimizers refuse it; export_train checks it is 0
    if not isinstance(opt.learning_rate, float):
        obj["config"]["learning_rate"] = keras_object(opt.learning_rate, "keras.optimizers.schedules")
    return obj


def export_train(train: TrainConfig | None, major: int) -> tuple[dict | None, list[str]]:
    """Keras 2's training_config or Keras 3's compile_config, and notes on what Keras cannot say."""
    if train is None or train.loss is None:
        return None, []
    if train.optimizer.decay:
        return None, ["training settings not written: Keras 2.11+ and 3 optimizers have no 'decay'"]
    losses = train.loss if isinstance(train.loss, list) else [train.loss]
    loss = [_named_or_object(l, "keras.losses") for l in losses]
    fields = {"loss": loss if isinstance(train.loss, list) else loss[0],
              "metrics": [_named_or_object(m, "keras.metrics") for m in train.metrics],
              "weighted_metrics": None, "loss_weights": None}
    if major == 2:
        return {**fields, "optimizer_config": _keras_optimizer(train.optimizer)}, []
    return {"optimizer": _keras_optimizer(train.optimizer), **fields, "run_eagerly": False,
            "steps_per_execution": 1, "jit_compile": False}, []
