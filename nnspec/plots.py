"""Pictures: the training history, the network (like Keras's plot_model, without Graphviz) and a
grid of predictions. matplotlib draws them off-screen (its Agg canvas: no display, no global
backend switch); the file's suffix picks the format (.png, .svg, .pdf)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_path, write_text
from .errors import SpecError
from .graph_layout import Layout, layered_layout
from .ir.model import tensor_source


DPI = 200  # sharp on a high-density screen and in print


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path, tight: bool = True) -> Path:
    """`tight`: crop to what is drawn (a picture laid out to the inch keeps its own margins)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".") or "png"
    if fmt not in ("png", "svg", "pdf", "jpg", "jpeg"):
        raise SpecError(f"{path}: pictures are written as .png, .svg, .pdf or .jpg (a network also as .dot)")
    import matplotlib

    with atomic_path(path) as tmp, matplotlib.rc_context({"svg.fonttype": "none"}):  # SVG text stays text
        fig.savefig(tmp, format=fmt, bbox_inches="tight" if tight else None)
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
    return _save(fig, path, tight=False)  # laid out to fit already: cropping would draw it twice


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

TITLE_PT, BODY_PT = 10, 9  # at DPI, the size of a printed page's text
PAD_X, PAD_Y = 0.14, 0.08  # inches between a box's text and its edge
MARGIN = 0.25
MAX_PIXELS = 60_000  # Agg draws at most 2**16 pixels a side: a very long model is drawn at a lower dpi


def model_nodes(analysis) -> tuple[list[dict], list[tuple[int, int]]]:
    """Boxes (inputs, then layers: title, input and output shapes, parameters) and edges between them."""
    nodes, owner = [], {}
    for spec in analysis.model.inputs:
        owner[spec.name] = len(nodes)
        shape = str(spec.type())
        nodes.append({"title": f"{spec.name} (InputLayer)", "in": [shape], "out": [shape], "params": 0})
    edges = []
    for info in analysis.layers:
        layer = info.layer
        index = len(nodes)
        nodes.append({"title": f"{layer.name} ({layer.type})", "in": [str(t) for t in info.inputs],
                      "out": [str(t) for t in info.outputs], "params": info.trainable + info.non_trainable})
        for tensor in layer.inputs:
            source = owner.get(tensor_source(tensor, owner)[0])
            if source is not None:
                edges.append((source, index))
        owner[layer.name] = index
    return nodes, edges


def node_lines(node: dict) -> list[str]:
    """A box's text below its title: shapes on one line each where several would make it wide."""
    lines = []
    for label, shapes in (("input", node["in"]), ("output", node["out"])):
        joined = ", ".join(shapes)
        if len(shapes) > 1 and len(joined) > 32:
            lines += [f"{label} {i}: {shape}" for i, shape in enumerate(shapes, 1)]
        else:
            lines.append(f"{label}: {joined}")
    return lines + [f"params: {node['params']:,}"]


@dataclass
class ModelPicture:
    """The network's drawing in inches, y down from the top of the first layer: the layout, each
    box's text lines, and the figure around it (margins, the title line above the boxes)."""

    layout: Layout
    texts: list[list[tuple[str, float, float, float]]]  # per box: (text, centre y below its top, width, points)
    inputs: list[bool]  # per box: an input of the model
    title: str
    width: float  # the figure
    height: float
    left: float  # x of the figure's left edge
    top: float  # y of the figure's top edge


def model_picture(analysis, renderer, dpi: float) -> ModelPicture:
    """Boxes sized to their text as the renderer draws it, laid out in layers (graph_layout.py)."""
    from matplotlib.font_manager import FontProperties

    def width(text: str, size: float, weight: str = "normal") -> float:
        return renderer.get_text_width_height_descent(text, FontProperties(size=size, weight=weight), False)[0] / dpi

    nodes, edges = model_nodes(analysis)
    sizes, texts = [], []
    for node in nodes:
        lines = [(node["title"], TITLE_PT, "bold")] + [(line, BODY_PT, "normal") for line in node_lines(node)]
        placed, y = [], PAD_Y
        for text, size, weight in lines:
            step = size * 1.4 / 72
            placed.append((text, y + step / 2, width(text, size, weight), size))
            y += step
        sizes.append((max(w for _, _, w, _ in placed) + 2 * PAD_X, y + PAD_Y))
        texts.append(placed)
    layout = layered_layout(sizes, edges)
    model = analysis.model
    title = f'Model "{model.name}": {analysis.total:,} parameters ({analysis.trainable:,} trainable)'
    inner = max(layout.width, width(title, TITLE_PT + 1))
    header = (TITLE_PT + 1) * 2.4 / 72
    return ModelPicture(layout, texts, [n["title"].endswith("(InputLayer)") for n in nodes], title,
                        inner + 2 * MARGIN, layout.height + header + 2 * MARGIN,
                        (layout.width - inner) / 2 - MARGIN, -header - MARGIN)


def plot_model(analysis, path: str | Path) -> Path:
    """The network as boxes and arrows, top to bottom, like Keras's plot_model(show_shapes=True):
    each box names the layer and its type, its input and output shapes and its parameter count.
    A .dot path gets the graph in Graphviz's language instead."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    if Path(path).suffix.lower() == ".dot":
        return write_dot(analysis, path)
    fig = _figure(1, 1)
    picture = model_picture(analysis, fig.canvas.get_renderer(), fig.dpi)
    fig.set_size_inches(picture.width, picture.height)
    fig.set_dpi(min(DPI, MAX_PIXELS / max(picture.width, picture.height)))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(picture.left, picture.left + picture.width)
    ax.set_ylim(picture.top + picture.height, picture.top)  # y down, in inches
    ax.axis("off")
    for box, lines, is_input in zip(picture.layout.boxes, picture.texts, picture.inputs):
        ax.add_patch(FancyBboxPatch((box.left, box.y), box.width, box.height, linewidth=1,
                                    boxstyle="round,pad=0,rounding_size=0.06", edgecolor="#333333",
                                    facecolor="#e8e8e8" if is_input else "#dbe9f6"))
        for i, (text, y, _, size) in enumerate(lines):
            ax.text(box.x, box.y + y, text, ha="center", va="center", fontsize=size,
                    weight="normal" if i else "bold", color="#222222" if i else "black")
    for line in picture.layout.edges:
        xs, ys = zip(*line)
        ax.plot(xs[:-1], ys[:-1], color="#555555", linewidth=1, solid_joinstyle="round")
        ax.add_patch(FancyArrowPatch(line[-2], line[-1], arrowstyle="-|>", mutation_scale=10, linewidth=1,
                                     color="#555555", shrinkA=0, shrinkB=0))
    ax.text(picture.layout.width / 2, picture.top + MARGIN + (picture.height - picture.layout.height
            - 2 * MARGIN) / 2, picture.title, ha="center", va="center", fontsize=TITLE_PT + 1)
    return _save(fig, path, tight=False)


def write_dot(analysis, path: str | Path) -> Path:
    """The network in Graphviz's DOT language (`dot -Tpng model.dot -o model.png`)."""
    nodes, edges = model_nodes(analysis)
    out = [f"digraph {_dot_quote(analysis.model.name)} {{", "  rankdir=TB;",
           '  node [shape=box, style="rounded,filled", fillcolor="#dbe9f6", fontname="Helvetica", fontsize=10];']
    for i, node in enumerate(nodes):
        label = "\\n".join(_dot_escape(line) for line in [node["title"], *node_lines(node)])
        fill = ', fillcolor="#e8e8e8"' if node["title"].endswith("(InputLayer)") else ""
        out.append(f'  n{i} [label="{label}"{fill}];')
    out += [f"  n{src} -> n{dst};" for src, dst in edges]
    write_text(path, "\n".join(out + ["}"]) + "\n")
    return Path(path)


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _dot_quote(text: str) -> str:
    return f'"{_dot_escape(text)}"'


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
