"""pydantic's validation errors, translated into the words of a spec's author."""
from __future__ import annotations

from pydantic import BaseModel, ValidationError

from ..errors import did_you_mean
from .base import Family
from .functions import ACTIVATIONS, CONSTRAINTS, INITIALIZERS, REGULARIZERS
from .layers import LAYERS, RECURRENT
from .training import AUGMENTATIONS, CALLBACKS, DATA_SOURCES, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, TrainConfig

# every family of the IR (messages name their members, the JSON Schema opens them up)
FAMILIES: list[Family] = [LAYERS, RECURRENT, ACTIVATIONS, INITIALIZERS, REGULARIZERS, CONSTRAINTS, LOSSES, METRICS,
                          OPTIMIZERS, SCHEDULES, CALLBACKS, DATA_SOURCES, AUGMENTATIONS]
_TAGGED: dict[str, type[BaseModel]] = {}
for _family in FAMILIES:
    _TAGGED.update(_family.members)


def messages(exc: ValidationError, root: type[BaseModel]) -> list[tuple[tuple, str]]:
    """[(location without union tags, message)] for each problem pydantic found."""
    out = []
    seen = set()
    errors = [(err, *_strip_tags(err["loc"], root)) for err in exc.errors()]
    # a value that fails inside a union member is also "not an object" for the union: one mistake, one message
    explained = {loc for err, loc, _ in errors if err["type"] != "model_attributes_type"}
    for err, loc, owner in errors:
        kind, msg = err["type"], err["msg"]
        if kind.startswith("union_tag") or kind == "model_attributes_type" and loc in explained:
            continue
        if kind == "extra_forbidden":
            field = str(loc[-1])
            what = _owner_name(owner)
            msg = f"{what} has no argument '{field}'{did_you_mean(field, owner.model_fields if owner else [])}"
        elif kind == "missing":
            msg = f"missing required argument '{loc[-1]}'"
        elif kind == "value_error":
            msg = msg.removeprefix("Value error, ")
        elif kind == "literal_error":
            msg = f"{msg[0].lower()}{msg[1:]}, got {err['input']!r}"
            got = err["input"]
            if isinstance(got, str):
                expected = [s.strip("' ") for s in err["ctx"]["expected"].replace(" or ", ",").split(",")]
                msg += did_you_mean(got, [e for e in expected if e])
        else:
            msg = f"{msg[0].lower()}{msg[1:]}, got {err['input']!r}" if "input" in err else msg
        key = (loc, msg)
        if key not in seen:
            seen.add(key)
            out.append((loc, msg))
    return out


def _owner_name(owner: type[BaseModel] | None) -> str:
    if owner is None:
        return "this object"
    tag = owner.model_fields.get("type") or owner.model_fields.get("name")
    return f"{tag.default}()" if tag is not None and isinstance(tag.default, str) else owner.__name__


def _strip_tags(loc: tuple, root: type[BaseModel]) -> tuple[tuple, type[BaseModel] | None]:
    """Drop the discriminator tags pydantic puts in locations; return the model owning the last key."""
    kept, owner, after_tag = [], root, False
    for i, part in enumerate(loc):
        if isinstance(part, str) and part in _TAGGED and not after_tag and i < len(loc) - 1:
            owner, after_tag = _TAGGED[part], True
            continue
        if part == "train":
            owner = TrainConfig
        after_tag = False
        kept.append(part)
    return tuple(kept), owner


def json_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"
