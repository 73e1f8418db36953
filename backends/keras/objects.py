"""Serialized Keras objects (initializers, losses, optimizers, ...) -> IR functions, and back.

The IR's families take Keras class names and Keras parameter names, so an object's config
carries over key by key; keys that only say how Keras computes or labels (NEUTRAL) are dropped,
None means "not set" (the IR default), and anything else the IR has no field for is refused.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from ...ir.base import PARAM_ALIASES, Family
from ...ir.validation import messages
from .normalize import Context

ANY = object()  # in a table of neutral settings: every value is harmless
NEUTRAL: dict[str, Any] = {
    "name": ANY, "dtype": ANY, "jit_compile": ANY, "is_legacy_optimizer": ANY, "ema_momentum": ANY,
    "reduction": ("auto", "sum_over_batch_size"), "summation_method": ("interpolation",),
    "multi_label": (False,), "use_ema": (False,),
}


def function(family: Family, name: str, config: dict | None, ctx: Context, what: str) -> BaseModel:
    """A Keras object (its class name or string, and its config) as the family's IR member."""
    try:
        canonical = family.canonical(name)
    except ValueError:
        raise ctx.error(f"{what}: {family.kind} '{name}' has no nnspec equivalent") from None
    member = family.members[canonical]
    params = {}
    for key, value in (config or {}).items():
        field = key if key in member.model_fields else PARAM_ALIASES.get(key, key)
        if value is None or field == family.key:
            continue
        if field in member.model_fields:
            params[field] = value
        elif not (key in NEUTRAL and (NEUTRAL[key] is ANY or value in NEUTRAL[key])):
            raise ctx.error(f"{what}: {family.kind} '{name}' option {key}={value!r} is not supported")
    try:
        return member(**{family.key: canonical}, **params)
    except ValidationError as exc:
        raise ctx.error(f"{what}: {messages(exc, member)[0][1]}") from None


def from_keras(family: Family, value: Any, ctx: Context, what: str) -> BaseModel:
    """A normalized Keras value: a name, or {"class_name", "config"}."""
    if isinstance(value, str):
        return function(family, value, None, ctx, what)
    if isinstance(value, dict) and isinstance(value.get("class_name"), str):
        return function(family, value["class_name"], value.get("config"), ctx, what)
    raise ctx.error(f"{what}: unreadable {family.kind} {value!r}")
