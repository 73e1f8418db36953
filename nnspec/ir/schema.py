"""The JSON Schema of JSON/YAML specs, for editors: pydantic's schema of the IR, widened to every form
the loader accepts. Each family (layers, activations, losses, ...) is a discriminated union in the
IR, but a spec may write a member by any of its spellings (`Dense`, `dense`), as a bare name
(`"relu"`), as a call in a string (`"adam(lr=0.01)"`), in Keras's `{"class_name", "config"}` form,
and with Keras's other parameter names (`lr`); the schema says so, from the families' own tables."""
from __future__ import annotations

from typing import Any

from .base import PARAM_ALIASES, Family
from .model import Model
from .validation import FAMILIES

DIALECT = "https://json-schema.org/draft/2020-12/schema"
CALL_IN_TEXT = r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*\("  # what Family.coerce reads as a call


def spec_schema() -> dict[str, Any]:
    schema = Model.model_json_schema()
    return {"$schema": DIALECT, "title": "nnspec model spec", **_widen(schema, schema["$defs"])}


def _widen(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with every family opened up; member definitions are edited in place, once each."""
    if isinstance(node, list):
        return [_widen(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    for key, value in node.items():
        node[key] = _widen(value, definitions)
    return _family_forms(node, definitions) if "discriminator" in node else node


def _family_of(discriminator: dict[str, Any]) -> Family:
    names = set(discriminator["mapping"])
    for family in FAMILIES:
        if family.key == discriminator["propertyName"] and set(family.members) == names:
            return family
    raise LookupError(f"no family has the members {sorted(names)}; add it to nnspec.ir.validation.FAMILIES")


def _family_forms(node: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """A discriminated union as every form Family.coerce accepts."""
    family = _family_of(node["discriminator"])
    key = family.key
    for canonical, reference in node["discriminator"]["mapping"].items():
        member = definitions[reference.rsplit("/", 1)[1]]
        properties = member["properties"]
        properties[key] = {"enum": _spellings(family, canonical)}
        member["required"] = sorted({key, *member.get("required", ())})
        for other, field in PARAM_ALIASES.items():
            if field in properties:
                properties[other] = properties[field]
    every_spelling = _spellings(family)
    forms = [
        {"type": "string", "enum": every_spelling},
        {"type": "string", "pattern": CALL_IN_TEXT},
        *node["oneOf"],
        {"type": "object", "properties": {"class_name": {"enum": every_spelling}, "config": {"type": "object"}},
         "required": ["class_name"]},
    ]
    kept = {k: v for k, v in node.items() if k not in ("discriminator", "oneOf")}
    return {**kept, "anyOf": forms}


def _spellings(family: Family, canonical: str | None = None) -> list[str]:
    """The names that Family.canonical takes to `canonical` (to any member when None): the table's
    spellings and, since it also reads CamelCase as snake_case, their CamelCase forms."""
    camel = {"".join(part[:1].upper() + part[1:] for part in name.split("_")) for name in family.names}
    found = set()
    for spelling in {*family.names, *camel}:
        try:
            target = family.canonical(spelling)
        except ValueError:
            continue
        if canonical in (None, target):
            found.add(spelling)
    return sorted(found)
