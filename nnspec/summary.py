"""Keras's `model.summary()` table for an analyzed spec."""
from __future__ import annotations

from .ir.model import Analysis


def _is_chain(analysis: Analysis) -> bool:
    previous = analysis.model.inputs[0].name if len(analysis.model.inputs) == 1 else None
    for info in analysis.layers:
        if info.layer.inputs != [previous]:
            return False
        previous = info.layer.name
    return True


def summary(analysis: Analysis, width: int = 65) -> str:
    model = analysis.model
    chain = _is_chain(analysis)
    rows = []
    if not chain:
        rows += [(f"{i.name} (InputLayer)", str(i.type()), "0", "") for i in model.inputs]
    for info in analysis.layers:
        layer = info.layer
        shape = str(info.outputs[0]) if len(info.outputs) == 1 else "[" + ", ".join(map(str, info.outputs)) + "]"
        row = [f"{layer.name} ({layer.type})", shape, f"{info.trainable + info.non_trainable:,}"]
        if not chain:
            row.append(", ".join(layer.inputs))
        rows.append(tuple(row))
    # Keras's column widths, widened where a name or shape would not fit
    columns = [("Layer (type)", 29), ("Output Shape", 26), ("Param #", 10)] + ([] if chain else [("Connected to", 30)])
    columns = [(title, max(w, *(len(r[i]) + 2 for r in rows))) if rows else (title, w)
               for i, (title, w) in enumerate(columns)]
    width = max(width, sum(w for _, w in columns))

    def line(cells) -> str:
        out = ""
        for (_, w), cell in zip(columns, cells):
            out += (" " + cell).ljust(w) if len(cell) < w else " " + cell + " "
        return out.rstrip()

    out = [f'Model: "{model.name}"', "_" * width, line([c for c, _ in columns]), "=" * width]
    for i, row in enumerate(rows):
        out.append(line(row))
        out.append("=" * width if i == len(rows) - 1 else ("_" * width if not chain else ""))
    if not rows:
        out.append("=" * width)
    out = [l for l in out if l != ""]
    out += [
        f"Total params: {analysis.total:,}",
        f"Trainable params: {analysis.trainable:,}",
        f"Non-trainable params: {analysis.non_trainable:,}",
        "_" * width,
    ]
    return "\n".join(out)
