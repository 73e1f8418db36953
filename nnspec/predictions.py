"""What `nnspec predict` prints: a table of classes (with names and probabilities) or of values,
a readable number of rows long; and class indices as Keras's predict_classes gives them."""
from __future__ import annotations

import numpy as np
import onnx

ROWS = 20  # rows printed per output; -o writes every prediction
VALUES = 6  # values printed per sample of a regression output
PROBABILITIES = ("Softmax", "Sigmoid")  # ops whose output is class probabilities
_PASS_THROUGH = ("Identity",)  # ops converters put between the probabilities and the graph's output


def probability_outputs(proto: onnx.ModelProto) -> set[str]:
    """The graph outputs computed by a softmax or sigmoid (through Identity nodes)."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    found = set()
    for output in proto.graph.output:
        node = producer.get(output.name)
        while node is not None and node.op_type in _PASS_THROUGH:
            node = producer.get(node.input[0])
        if node is not None and node.op_type in PROBABILITIES:
            found.add(output.name)
    return found


def class_indices(y: np.ndarray) -> np.ndarray:
    """Keras's predict_classes: the argmax over the last axis, or for a single unit its value
    above 0.5 (that axis dropped in both cases)."""
    y = np.asarray(y)
    if y.ndim == 1:  # one value per sample: a single unit
        y = y[:, None]
    if y.shape[-1] > 1:
        return np.argmax(y, axis=-1)
    return (y[..., 0] > 0.5).astype(np.int64)


def class_names(indices: np.ndarray, classes: list[str]) -> np.ndarray:
    """The name of each class index (a string array, which .npy and .npz hold without pickling)."""
    table = np.array(classes + [""])
    return table[np.where((indices >= 0) & (indices < len(classes)), indices, len(classes))]


def is_classifier(y: np.ndarray, probabilities: bool, classes: list[str] | None) -> bool:
    """A (samples, classes) output of probabilities, or one with as many columns as known class names."""
    return y.ndim == 2 and (probabilities or (classes is not None and y.shape[1] == len(classes) > 1))


def table(y: np.ndarray, classifier: bool, classes: list[str] | None, with_probability: bool = True,
          rows: int = ROWS) -> str:
    """One row per sample: index, class, name and probability for a classifier, else the values."""
    y = np.asarray(y)
    shown = y[:rows]
    if classifier:
        k = class_indices(shown)
        header = ["index", "class"] + (["name"] if classes else []) + (["probability"] if with_probability else [])
        cells = [[str(i), str(int(c))] for i, c in enumerate(k)]
        if classes:
            for row, name in zip(cells, class_names(k, classes)):
                row.append(str(name))
        if with_probability:
            if y.shape[1] == 1:  # a single unit gives P(class 1)
                p = np.where(k == 1, shown[:, 0], 1 - shown[:, 0])
            else:
                p = shown[np.arange(len(k)), k]
            for row, value in zip(cells, p):
                row.append(f"{float(value):.4f}")
    else:
        flat = shown.reshape(len(shown), -1)
        header = ["index", "value" if flat.shape[1] == 1 else f"values (shape {tuple(y.shape[1:])})"]
        cells = [[str(i), "  ".join(f"{float(v):.4g}" for v in row[:VALUES])
                  + (f"  ... ({row.size - VALUES} more)" if row.size > VALUES else "")] for i, row in enumerate(flat)]
    widths = [max(len(h), *(len(r[c]) for r in cells)) if cells else len(h) for c, h in enumerate(header)]
    numeric = [h in ("index", "class", "probability") for h in header]  # right-aligned; names and values left
    lines = ["  ".join(h.rjust(w) if n else h.ljust(w) for h, w, n in zip(header, widths, numeric)).rstrip()]
    lines += ["  ".join(cell.rjust(w) if n else cell.ljust(w) for cell, w, n in zip(row, widths, numeric)).rstrip()
              for row in cells]
    if len(y) > rows:
        lines.append(f"... {len(y) - rows:,} more (-o FILE.npy writes all {len(y):,})")
    return "\n".join(lines)
