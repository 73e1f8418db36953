"""Pictures: the training history, the network (like Keras's plot_model, without Graphviz) and a
grid of predictions. matplotlib draws them off-screen (its Agg canvas: no display, no global
backend switch); the file's suffix picks the format (.png, .svg, .pdf)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_path
from .errors import SpecError


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    if fmt not in ("png", "svg", "pdf", "jpg", "jpeg"):
        raise SpecError(f"{path}: pictures are written as .png, .svg, .pdf or .jpg")
    import matplotlib

    with atomic_path(path) as tmp, matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text
        fig.savefig(tmp, format=fmt, bbox_inches="tight")
    return path


# ---- history ---------------------------------------------------------------------------------------

def history_panels(history: dict[str, list[float]]) -> list[tuple[str, str | None, str | None]]:
    """(metric, training key, validation key) per panel: loss first, then each metric in order."""
    bases = []
    for key in history:
        base = key[4:] if key.startswith("val_") else key
        if base not in bases:
            bases.append(base)
    bases.sort(key=lambda b: b != "loss")
    return [(b, b if b in history else None, f"val_{b}" if f"val_{b}" in history else None) for b in bases]


def plot_history(history: dict[str, list[float]], path: str | Path, title: str | None = None,
                 epochs: Sequence[int] | None = None) -> Path:
    """One panel per metric (loss first), training and validation curves against the epoch (from 1)."""
    panels = history_panels(history)
    if not panels:
        raise SpecError(f"{path}: the history is empty: nothing to plot")
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig = _figure(4.2 * cols, 3.2 * rows)
    for i, (base, train_key, val_key) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        for key, label, style in ((train_key, "training", "-"), (val_key, "validation", "--")):
            if key is None:
                continue
            values = history[key]
            x = [e + 1 for e in epochs] if epochs is not None and len(epochs) == len(values) \
                else list(range(1, len(values) + 1))
            ax.plot(x, values, style, marker="o" if len(values) <= 30 else None, markersize=3, label=label)
        ax.set_title(base)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def read_history(path: str | Path) -> dict[str, list[float]]:
    """A history JSON as `nnspec train` writes it: {"loss": [...], "val_loss": [...], ...}."""
    import json

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"{path}: not a history JSON ({exc})") from None
    if not is_history(data):
        raise SpecError(f"{path}: not a training history (expected {{\"loss\": [numbers per epoch], ...}})")
    return data


def is_history(data) -> bool:
    return isinstance(data, dict) and bool(data) and all(
        isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in data.values())


# ---- the network -------------------------------------------------------------------------------------

def model_nodes(analysis) -> tuple[list[dict], list[tuple[int, int]]]:
    """Boxes (inputs, then layers: title, input and output shapes, parameters) and edges between them."""
    nodes, owner = [], {}
    for spec in analysis.model.inputs:
        owner[spec.name] = len(nodes)
        shape = str(spec.type())
        nodes.append({"title": f"{spec.name} (InputLayer)", "in": shape, "out": shape, "params": 0})
    edges = []
    for info in analysis.layers:
        layer = info.layer
        index = len(nodes)
        ins = ", ".join(map(str, info.inputs))
        outs = ", ".join(map(str, info.outputs))
        nodes.append({"title": f"{layer.name} ({layer.type})", "in": ins, "out": outs,
                      "params": info.trainable + info.non_trainable})
        for tensor in layer.inputs:
            source = owner.get(tensor, owner.get(tensor.split(":")[0]))
            if source is not None:
                edges.append((source, index))
        owner[layer.name] = index
    return nodes, edges


def plot_model(analysis, path: str | Path) -> Path:
    """The network as boxes and arrows, top to bottom, like Keras's plot_model(show_shapes=True):
    each box names the layer and its type, its input and output shapes and its parameter count."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    nodes, edges = model_nodes(analysis)
    depth = [0] * len(nodes)
    for src, dst in sorted(edges, key=lambda e: e[1]):  # layers come after the layers they read
        depth[dst] = max(depth[dst], depth[src] + 1)
    rows: dict[int, list[int]] = {}
    for i, d in enumerate(depth):
        rows.setdefault(d, []).append(i)
    box_w, box_h, gap_x, gap_y = 3.6, 0.78, 0.4, 0.5
    widest = max(len(r) for r in rows.values())
    levels = len(rows)
    width = widest * box_w + (widest - 1) * gap_x
    height = levels * box_h + (levels - 1) * gap_y
    margin = 0.9 if any(depth[d] - depth[s] > 1 for s, d in edges) else 0.2  # room for skip connections
    fig = _figure(max(width, box_w) + 0.2 + margin, height + 0.9)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-width / 2 - 0.2, width / 2 + margin)
    ax.set_ylim(-height - 0.2, 0.7)
    ax.axis("off")
    centre = {}
    for d, members in rows.items():
        span = len(members) * box_w + (len(members) - 1) * gap_x
        for k, i in enumerate(members):
            x = -span / 2 + k * (box_w + gap_x) + box_w / 2
            y = -d * (box_h + gap_y) - box_h / 2
            centre[i] = (x, y)
            node = nodes[i]
            ax.add_patch(FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h,
                                        boxstyle="round,pad=0.02,rounding_size=0.08", linewidth=1,
                                        edgecolor="#333333", facecolor="#dbe9f6" if "InputLayer" not in node["title"]
                                        else "#e8e8e8"))
            ax.text(x, y + 0.2, node["title"], ha="center", va="center", fontsize=8.5, weight="bold")
            ax.text(x, y - 0.04, f"input: {node['in']}   output: {node['out']}", ha="center", va="center",
                    fontsize=7)
            ax.text(x, y - 0.24, f"params: {node['params']:,}", ha="center", va="center", fontsize=7,
                    color="#555555")
    skips = 0
    for src, dst in edges:
        (x0, y0), (x1, y1) = centre[src], centre[dst]
        if depth[dst] - depth[src] > 1:  # a skip connection: around the boxes between, on the right
            arm = 14 + 9 * (skips % 4)
            skips += 1
            ax.add_patch(FancyArrowPatch((x0 + box_w / 2, y0), (x1 + box_w / 2, y1), arrowstyle="-|>",
                                         mutation_scale=10, linewidth=1, color="#555555",
                                         connectionstyle=f"arc,angleA=0,angleB=0,armA={arm},armB={arm},rad=6"))
            continue
        ax.add_patch(FancyArrowPatch((x0, y0 - box_h / 2), (x1, y1 + box_h / 2), arrowstyle="-|>",
                                     mutation_scale=10, linewidth=1, color="#333333"))
    model = analysis.model
    ax.text(0, 0.35, f'Model "{model.name}": {analysis.total:,} parameters ({analysis.trainable:,} trainable)',
            ha="center", va="center", fontsize=9)
    return _save(fig, path)


# ---- predictions ----------------------------------------------------------------------------------------

def as_images(x: np.ndarray) -> np.ndarray:
    """Samples as pictures: (n, h, w) or (n, h, w, 1|3|4); flat samples of a square size become squares."""
    if x.ndim == 2 and math.isqrt(x.shape[1]) ** 2 == x.shape[1]:
        side = math.isqrt(x.shape[1])
        return x.reshape(len(x), side, side)
    if x.ndim == 3 or (x.ndim == 4 and x.shape[-1] in (1, 3, 4)):
        return x[..., 0] if x.ndim == 4 and x.shape[-1] == 1 else x
    raise SpecError(f"inputs of shape {tuple(x.shape[1:])} are not images: --show draws (height, width[, 1|3|4]) "
                    "samples or flat squares")


def label_of(row: np.ndarray, classes: list[str] | None) -> tuple[str, int | None]:
    """A prediction or target as text, and its class index when it is a class."""
    row = np.asarray(row).reshape(-1)
    if row.size > 1:
        k = int(np.argmax(row))
    elif row.dtype.kind in "iu" or (classes and len(classes) > 1 and row.size == 1 and row[0] == round(float(row[0]))
                                     and row.dtype.kind != "f"):
        k = int(row[0])
    elif classes and len(classes) == 2:
        k = int(row[0] >= 0.5)
    else:
        return f"{float(row[0]):.3g}", None
    name = classes[k] if classes and 0 <= k < len(classes) else str(k)
    return name, k


def plot_predictions(x: np.ndarray, predicted: np.ndarray, path: str | Path, true: np.ndarray | None = None,
                     classes: list[str] | None = None, columns: int | None = None) -> Path:
    """A grid of input images titled with the predicted label (and the true one, green when they agree)."""
    images = as_images(np.asarray(x))
    n = len(images)
    cols = columns or min(n, max(1, math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    fig = _figure(1.8 * cols, 2.0 * rows)
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        image = images[i].astype(np.float64)
        lo, hi = float(image.min()), float(image.max())
        if image.ndim == 3:  # colour: into [0, 1]
            image = (image - lo) / (hi - lo) if hi > lo and (lo < 0 or hi > 1) else image
            ax.imshow(np.clip(image, 0, 1), interpolation="nearest")
        else:
            ax.imshow(image, cmap="gray", interpolation="nearest")
        pred, k = label_of(predicted[i], classes)
        text, color = f"pred: {pred}", "black"
        if true is not None:
            truth, t = label_of(true[i], classes)
            text += f"\ntrue: {truth}"
            color = "green" if (k is not None and k == t) or pred == truth else "red"
        ax.set_title(text, fontsize=8, color=color)
        ax.axis("off")
    fig.tight_layout()
    return _save(fig, path)
