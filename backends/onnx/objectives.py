"""Losses and metrics with Keras's exact formulas, written in primitives (so they differentiate and
lower like everything else). Losses give one value per sample; metrics give sufficient statistics
that the training loop sums over batches and `finalize` turns into Keras's reported numbers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...ir import training as spec
from . import primitives as P

EPSILON = 1e-7  # Keras's backend epsilon


def _mean_last(x):
    return P.reduce_mean(x, axes=(-1,), keepdims=False)


def _sum_last(x):
    return P.reduce_sum(x, axes=(-1,), keepdims=False)


def _clip(x, low, high):
    return P.clip(x, min=low, max=high)


def one_hot(labels, classes: int):
    """Sparse integer labels (N,) or (N, 1) -> one-hot float32 (N, classes)."""
    if labels.rank == 2:
        labels = P.reshape(labels, shape=(0,))
    indices = P.cast(labels, dtype="int64")
    columns = labels.graph.const(np.arange(classes, dtype=np.int64))
    return P.cast(P.equal(P.reshape(indices, shape=(-1, 1)), columns), dtype="float32")


def log_probs(pred, logits, axis=-1):
    """log softmax from logits where we have them (Keras does the same: `_keras_logits`)."""
    if logits is not None:
        return P.log_softmax(logits, axis=axis)
    probs = pred / P.reduce_sum(pred, axes=(axis,), keepdims=True)
    return P.log(_clip(probs, EPSILON, 1.0 - EPSILON))


def per_sample_loss(loss, y_true, y_pred, logits=None):
    """One loss value per sample. `logits`: the pre-activation of a final softmax/sigmoid, if any."""
    name = loss.name
    if name == "mean_squared_error":
        d = y_pred - y_true
        return _mean_last(d * d)
    if name == "mean_absolute_error":
        return _mean_last(P.abs(y_pred - y_true))
    if name == "mean_absolute_percentage_error":
        return 100.0 * _mean_last(P.abs((y_true - y_pred) / P.maximum(P.abs(y_true), EPSILON)))
    if name == "mean_squared_logarithmic_error":
        d = P.log(P.maximum(y_pred, EPSILON) + 1.0) - P.log(P.maximum(y_true, EPSILON) + 1.0)
        return _mean_last(d * d)
    if name == "huber":
        err = y_pred - y_true
        a = P.abs(err)
        quadratic = P.minimum(a, loss.delta)
        return _mean_last(0.5 * quadratic * quadratic + loss.delta * (a - quadratic))
    if name == "log_cosh":
        d = y_pred - y_true
        return _mean_last(d + P.softplus(-2.0 * d) - float(np.log(2.0)))
    if name in ("hinge", "squared_hinge"):
        signed = 2.0 * y_true - 1.0  # Keras maps 0/1 labels to -1/1
        margin = P.maximum(1.0 - signed * y_pred, 0.0)
        return _mean_last(margin if name == "hinge" else margin * margin)
    if name == "categorical_hinge":
        pos = _sum_last(y_true * y_pred)
        neg = P.reduce_max((1.0 - y_true) * y_pred, axes=(-1,), keepdims=False)
        return P.maximum(neg - pos + 1.0, 0.0)
    if name == "binary_crossentropy":
        y = y_true if not loss.label_smoothing else y_true * (1.0 - loss.label_smoothing) + 0.5 * loss.label_smoothing
        z = y_pred if loss.from_logits else logits
        if z is not None:  # sigmoid cross-entropy on logits, as TensorFlow computes it
            return _mean_last(P.maximum(z, 0.0) - z * y + P.softplus(-P.abs(z)))
        p = _clip(y_pred, EPSILON, 1.0 - EPSILON)
        return _mean_last(-(y * P.log(p + EPSILON) + (1.0 - y) * P.log(1.0 - p + EPSILON)))
    if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        classes = y_pred.shape[-1]
        y = one_hot(y_true, classes) if name.startswith("sparse") else y_true
        smoothing = getattr(loss, "label_smoothing", 0.0)
        if smoothing:
            y = y * (1.0 - smoothing) + smoothing / classes
        z = y_pred if loss.from_logits else logits
        return -_sum_last(y * log_probs(None if loss.from_logits else y_pred, z))
    if name == "kl_divergence":
        t = _clip(y_true, EPSILON, 1.0)
        p = _clip(y_pred, EPSILON, 1.0)
        return _sum_last(t * P.log(t / p))
    if name == "poisson":
        return _mean_last(y_pred - y_true * P.log(y_pred + EPSILON))
    if name == "cosine_similarity":
        def normalize(x):
            return x / P.sqrt(P.maximum(P.reduce_sum(x * x, axes=(loss.axis,), keepdims=True), 1e-12))
        return -P.reduce_sum(normalize(y_true) * normalize(y_pred), axes=(loss.axis,), keepdims=False)
    raise NotImplementedError(f"loss {name}")


# ---- metrics -------------------------------------------------------------------------------------------


@dataclass
class MetricGraph:
    """A metric's in-graph statistics and how the host turns their sums into the reported value."""

    name: str
    stats: Callable  # (y_true, y_pred, weights) -> list of scalar (or vector) Vars
    finalize: Callable[[list[np.ndarray]], float]


def _weighted_mean(name: str, per_sample: Callable, post=lambda v: v) -> MetricGraph:
    def stats(y_true, y_pred, w):
        return [P.reduce_sum(per_sample(y_true, y_pred) * w, axes=(0,), keepdims=False),
                P.reduce_sum(w, axes=(0,), keepdims=False)]
    return MetricGraph(name, stats, lambda s: float(post(s[0] / max(s[1], 1e-30))))


def _argmax(x):
    return P.argmax(x, axis=-1, keepdims=False)


def _categorical_accuracy(y_true, y_pred):
    return P.cast(P.equal(_argmax(y_true), _argmax(y_pred)), dtype="float32")


def _sparse_accuracy(y_true, y_pred):
    labels = P.cast(P.reshape(y_true, shape=(-1,)), dtype="int64")
    return P.cast(P.equal(labels, _argmax(y_pred)), dtype="float32")


def _top_k(k, sparse):
    def per_sample(y_true, y_pred):
        y = one_hot(y_true, y_pred.shape[-1]) if sparse else y_true
        true_score = P.reduce_sum(y * y_pred, axes=(-1,), keepdims=True)
        higher = P.reduce_sum(P.cast(P.greater(y_pred, true_score), dtype="float32"), axes=(-1,), keepdims=False)
        return P.cast(P.less(higher, float(k)), dtype="float32")
    return per_sample


def _binary_accuracy(threshold):
    def per_sample(y_true, y_pred):
        predicted = P.cast(P.greater(y_pred, threshold), dtype="float32")
        return _mean_last(P.cast(P.equal(predicted, y_true), dtype="float32"))
    return per_sample


def _confusion(threshold, columns: tuple[str, ...]):
    """Weighted counts of true/false positives/negatives over every element."""
    def stats(y_true, y_pred, w):
        w = P.reshape(w, shape=(-1,) + (1,) * (y_pred.rank - 1))
        predicted = P.cast(P.greater(y_pred, threshold), dtype="float32")
        parts = {"tp": predicted * y_true, "fp": predicted * (1.0 - y_true),
                 "fn": (1.0 - predicted) * y_true, "tn": (1.0 - predicted) * (1.0 - y_true)}
        return [P.reduce_sum(parts[c] * w, axes=tuple(range(y_pred.rank)), keepdims=False) for c in columns]
    return stats


def _auc(cfg: spec.AUC) -> MetricGraph:
    n = cfg.num_thresholds
    thresholds = np.array([-EPSILON] + [(i + 1) / (n - 1) for i in range(n - 2)] + [1.0 + EPSILON], np.float32)

    def stats(y_true, y_pred, w):
        flat_pred = P.reshape(y_pred, shape=(-1, 1))
        flat_true = P.reshape(y_true, shape=(-1, 1))
        flat_w = P.reshape(P.tile(P.reshape(w, shape=(-1, 1)), reps=(1, int(np.prod(y_pred.shape[1:])))),
                           shape=(-1, 1))
        above = P.cast(P.greater(flat_pred, y_pred.graph.const(thresholds)), dtype="float32")
        parts = [above * flat_true, above * (1.0 - flat_true), (1.0 - above) * flat_true,
                 (1.0 - above) * (1.0 - flat_true)]
        return [P.reduce_sum(p * flat_w, axes=(0,), keepdims=False) for p in parts]

    def finalize(s):
        tp, fp, fn, tn = (np.asarray(x, np.float64) for x in s)
        if cfg.curve == "ROC":
            x, y = fp / np.maximum(fp + tn, 1e-30), tp / np.maximum(tp + fn, 1e-30)
        else:
            x, y = tp / np.maximum(tp + fn, 1e-30), tp / np.maximum(tp + fp, 1e-30)
        return float(np.sum((x[:-1] - x[1:]) * (y[:-1] + y[1:]) / 2))

    return MetricGraph("auc", stats, finalize)


def resolve_accuracy(loss, output_classes: int, sparse_targets: bool) -> str:
    """Keras's reading of 'accuracy': from the loss, else from the output and target shapes."""
    if loss is not None and loss.name == "binary_crossentropy" or output_classes == 1:
        return "binary_accuracy"
    if sparse_targets or (loss is not None and loss.name == "sparse_categorical_crossentropy"):
        return "sparse_categorical_accuracy"
    return "categorical_accuracy"


def metric_graph(cfg, loss, output_classes: int, sparse_targets: bool) -> MetricGraph:
    name = cfg.name
    reported = name
    if name == "accuracy":
        name = resolve_accuracy(loss, output_classes, sparse_targets)
        cfg = spec.BinaryAccuracy() if name == "binary_accuracy" else cfg
    if name == "binary_accuracy":
        return _weighted_mean(reported, _binary_accuracy(getattr(cfg, "threshold", 0.5)))
    if name == "categorical_accuracy":
        return _weighted_mean(reported, _categorical_accuracy)
    if name == "sparse_categorical_accuracy":
        return _weighted_mean(reported, _sparse_accuracy)
    if name == "top_k_categorical_accuracy":
        return _weighted_mean(reported, _top_k(cfg.k, sparse=False))
    if name == "sparse_top_k_categorical_accuracy":
        return _weighted_mean(reported, _top_k(cfg.k, sparse=True))
    if name in ("mse", "mae", "mape", "msle", "rmse"):
        loss_name = {"mse": "mean_squared_error", "rmse": "mean_squared_error", "mae": "mean_absolute_error",
                     "mape": "mean_absolute_percentage_error", "msle": "mean_squared_logarithmic_error"}[name]
        fn = spec.LOSSES.make(loss_name)
        return _weighted_mean(reported, lambda t, p: per_sample_loss(fn, t, p),
                              np.sqrt if name == "rmse" else (lambda v: v))
    if name == "precision":
        return MetricGraph(reported, _confusion(cfg.thresholds, ("tp", "fp")),
                           lambda s: float(s[0] / max(s[0] + s[1], 1e-30)))
    if name == "recall":
        return MetricGraph(reported, _confusion(cfg.thresholds, ("tp", "fn")),
                           lambda s: float(s[0] / max(s[0] + s[1], 1e-30)))
    if name == "auc":
        return _auc(cfg)
    raise NotImplementedError(f"metric {name}")
