"""Training settings and optimizer state, when a file carries them.

training_config has one form for Keras 2's h5 attr ``training_config`` and Keras 3's
``compile_config``: ``{"loss", "metrics", "weighted_metrics", "loss_weights", "optimizer"}``,
each None when absent; ``optimizer`` is ``{"class_name": "Adam", "config": {...}}`` (a
string such as "adam" becomes the class name; the "Custom>" prefix some tf.keras versions
put on stock optimizers is dropped); losses and metrics are kept as written (strings or
normalized objects).

optimizer_weights is a flat dict: legacy files key it by the stored weight names (e.g.
"adam/iteration", "Adam/dense/kernel/m:0"); Keras 3 weights files, whose optimizer
variables are unnamed, by dataset path (e.g. "optimizer/vars/0").
"""
from __future__ import annotations

import re

import h5py

from . import h5safe
from .normalize import Context, plain

_OPTIMIZERS = {
    "adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad",
    "adadelta": "Adadelta", "adamax": "Adamax", "nadam": "Nadam", "ftrl": "Ftrl", "lion": "Lion",
    "adafactor": "Adafactor", "lamb": "Lamb", "loss_scale_optimizer": "LossScaleOptimizer",
}


def _optimizer(value):
    if value is None:
        return None
    if isinstance(value, str):
        return {"class_name": _OPTIMIZERS.get(value.lower(), value), "config": {}}
    if isinstance(value, dict) and isinstance(value.get("class_name"), str):
        name = value["class_name"].removeprefix("Custom>")
        config = dict(value.get("config") or {})
        if "lr" in config and "learning_rate" not in config:  # Keras < 2.3 spelling
            config["learning_rate"] = config.pop("lr")
        return {"class_name": _OPTIMIZERS.get(name.lower(), name), "config": config}
    return value


def training_config(raw, ctx: Context) -> dict | None:
    if not raw:
        return None
    if not isinstance(raw, dict):
        raise ctx.error("training config is not an object", "training_config")
    cfg = plain(raw, ctx)
    return {
        "loss": cfg.get("loss"),
        "metrics": cfg.get("metrics"),
        "weighted_metrics": cfg.get("weighted_metrics"),
        "loss_weights": cfg.get("loss_weights"),
        "optimizer": _optimizer(cfg.get("optimizer_config", cfg.get("optimizer"))),
    }


def _natural(path: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]


def _all_datasets(group: h5py.Group, source: str, prefix: str) -> dict:
    paths: list[str] = []
    group.visititems(lambda n, o: paths.append(n) if isinstance(o, h5py.Dataset) else None)
    return {f"{prefix}{p}": h5safe.stored(group, p, source) for p in sorted(paths, key=_natural)}


def legacy_optimizer_weights(f: h5py.File, source: str) -> dict | None:
    group = f.get("optimizer_weights")
    if not isinstance(group, h5py.Group):
        return None
    names = h5safe.attr_names(group, "weight_names", source)
    if names is None:
        return _all_datasets(group, source, "") or None
    return {n: h5safe.stored(group, n, source) for n in names} or None


def keras3_optimizer_weights(f: h5py.File, source: str) -> dict | None:
    group = f.get("optimizer")
    if not isinstance(group, h5py.Group):
        return None
    return _all_datasets(group, source, "optimizer/") or None
