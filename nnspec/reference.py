"""The language reference, generated from the IR so the README cannot drift from the code."""
from __future__ import annotations

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .ir.base import Family
from .ir.functions import ACTIVATIONS, CONSTRAINTS, INITIALIZERS, REGULARIZERS
from .ir.layers import LAYERS, Layer
from .ir.training import AUGMENTATIONS, CALLBACKS, DATA_SOURCES, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, _Source

BEGIN, END = "<!-- reference:begin -->", "<!-- reference:end -->"
_COMMON = set(Layer.model_fields)  # type, name, inputs, trainable: documented once


def _value(v) -> str:
    if isinstance(v, BaseModel):
        name = getattr(v, "name", None)
        return str(name) if isinstance(name, str) else type(v).__name__
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return v
    return "none" if v is None else str(v)


def _arguments(member: type[BaseModel], key: str, shared: type[BaseModel] | None = None) -> str:
    """`shared`: a base class whose fields are documented once (skipped here unless the default differs)."""
    parts = []
    positional = getattr(member, "positional", ())
    fields = sorted(member.model_fields.items(),
                    key=lambda kv: (kv[0] not in positional, positional.index(kv[0]) if kv[0] in positional else 0))
    for field, info in fields:
        if field == key or (member is not None and issubclass(member, Layer) and field in _COMMON):
            continue
        if shared is not None and field in shared.model_fields and shared.model_fields[field].default == info.default:
            continue
        if info.default is PydanticUndefined and info.default_factory is None:
            parts.append(f"**{field}**")
        else:
            default = info.default if info.default_factory is None else info.default_factory()
            parts.append(f"{field}={_value(default)}")
    return ", ".join(parts) + (f" (positional: {', '.join(positional)})" if positional else "")


def _table(family: Family, title: str, spelled, shared: type[BaseModel] | None = None,
           note: str | None = None) -> list[str]:
    rows = [f"### {title}", ""] + ([note, ""] if note else []) + ["| name | also | arguments (**required**) |",
                                                                  "| --- | --- | --- |"]
    for canonical, member in family.members.items():
        spellings = [canonical, *member.aliases]
        primary = spelled(canonical, member)
        others = ", ".join(s for s in dict.fromkeys(spellings) if s != primary)
        rows.append(f"| `{primary}` | {others} | {_arguments(member, family.key, shared) or '—'} |")
    return rows + [""]


def reference_markdown() -> str:
    lines = _table(LAYERS, "Layers", lambda canonical, m: m.aliases[0] if m.aliases else canonical)
    lines[1:1] = ["", "Every layer also takes `name=\"...\"` and `trainable=false`. A layer's first positional "
                  "arguments may be tensor names in graphs: `add(h1, h2)`, `dense(x, 10)`. Activations may be "
                  "written as layers: `relu()`, `softmax(axis=1)`."]
    for family, title in [(ACTIVATIONS, "Activations"), (INITIALIZERS, "Initializers"),
                          (REGULARIZERS, "Regularizers"), (CONSTRAINTS, "Constraints"), (LOSSES, "Losses"),
                          (METRICS, "Metrics"), (OPTIMIZERS, "Optimizers"), (SCHEDULES, "Learning-rate schedules"),
                          (CALLBACKS, "Callbacks")]:
        lines += _table(family, title, lambda canonical, m: canonical)
    lines += _table(DATA_SOURCES, "Data sources", lambda canonical, m: canonical, shared=_Source,
                    note="Every source also takes rescale=none, mean=none, std=none (x * rescale, then (x - mean) / "
                         "std, per channel for lists), reshape=none (each sample's new shape, `[784]`; one -1 takes "
                         "the rest, so `[-1]` flattens), one_hot=none (labels as one-hot rows, class indices, or, "
                         "by default, what the loss wants) and positive=none (binary labels: 1 for this class, "
                         "an index or a class name, else 0).")
    lines += _table(AUGMENTATIONS, "Augmentation (the `augment` setting)", lambda canonical, m: canonical)
    return "\n".join(lines).rstrip() + "\n"
