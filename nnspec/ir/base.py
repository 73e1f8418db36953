"""Building blocks of the IR: named function-like specs, their families, tensor types and weights."""

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Union

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, GetJsonSchemaHandler, TypeAdapter, ValidationError
from pydantic_core import PydanticKnownError, core_schema

from ..errors import did_you_mean


class ShapeError(ValueError):
    """A layer cannot accept the tensors it is given."""


@dataclass(frozen=True)
class TensorType:
    """A tensor flowing between layers; `shape` excludes the implicit batch dimension."""

    dtype: str
    shape: tuple[int | None, ...]
    masked: bool = False  # carries a Keras mask (Embedding(mask_zero) / Masking)

    def __str__(self) -> str:
        return "(" + ", ".join("None" if d is None else str(d) for d in (None, *self.shape)) + ")"


@dataclass
class Weight:
    """One parameter array of a layer, in Keras `get_weights()` order."""

    name: str
    shape: tuple[int, ...]
    initializer: Any
    trainable: bool = True
    regularizer: Any = None
    constraint: Any = None

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class Call:
    """A call written in a spec (`l2(1e-4)`), before validation; spans point into the source."""

    name: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    span: Any = None
    arg_spans: dict[str | int, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # as written, since messages show it: `got sgd(learning_rate=-1)`
        args = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(args)})"


class Fn(BaseModel):
    """A named, parameterised spec such as `l2(0.01)` or `adam(learning_rate=1e-3)`.

    Subclasses declare `name: Literal[...]`, their parameters as fields, and which parameters
    may be given positionally.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    positional: ClassVar[tuple[str, ...]] = ()
    aliases: ClassVar[tuple[str, ...]] = ()  # other spellings: Keras class names, short forms


class Family:
    """All members of one kind of spec (activations, losses, ...): one place that maps names,
    aliases and Keras spellings to pydantic models, for the .nn, JSON and Keras frontends alike."""

    def __init__(self, kind: str, members: list[type[BaseModel]], key: str = "name"):
        self.kind = kind
        self.key = key
        self.members = {m.model_fields[key].default: m for m in members}
        self.names: dict[str, str] = {}
        for canonical, member in self.members.items():
            for spelling in (canonical, *member.aliases):
                self.names[spelling] = canonical
                self.names[_snake(spelling)] = canonical
        self.union = Annotated[Union[tuple(self.members.values())], Field(discriminator=key)]
        self.type = Annotated[self.union, self]
        self._describing = False

    # pydantic builds a member's validator when a spec first uses it (members defer_build), not the
    # whole union's at import: `nnspec check` of a small spec builds the few classes it names.
    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler):
        """The whole union's schema, once, as a definition: a member may hold its own family
        (TimeDistributed holds a layer), so a use inside it refers to that definition."""
        reference = core_schema.definition_reference_schema(f"nnspec.{self.kind}")
        if self._describing:
            return handler(reference)
        self._describing = True
        try:
            union = {**TypeAdapter(self.union).core_schema, "ref": f"nnspec.{self.kind}"}
            return handler(core_schema.definitions_schema(reference, [union]))
        finally:
            self._describing = False

    def validate(self, value: Any) -> BaseModel:
        """What pydantic's discriminated union does, one member at a time; error locations keep the
        member's tag (`layers.0.Dense.units`) as the union's do."""
        value = self.coerce(value)
        if not isinstance(value, (dict, BaseModel)):
            raise PydanticKnownError("model_attributes_type")
        tag = value.get(self.key) if isinstance(value, dict) else getattr(value, self.key, None)
        if tag is None:
            raise PydanticKnownError("union_tag_not_found", {"discriminator": repr(self.key)})
        if not isinstance(tag, str) or tag not in self.members:
            expected = ", ".join(repr(name) for name in self.members)
            raise PydanticKnownError("union_tag_invalid", {"discriminator": repr(self.key), "tag": str(tag),
                                                           "expected_tags": expected})
        try:
            return self.members[tag].model_validate(value)
        except ValidationError as exc:
            raise ValidationError.from_exception_data(exc.title, [_under(tag, e) for e in exc.errors()]) from None

    def canonical(self, name: str) -> str:
        found = self.find(name)
        if found is None:
            raise ValueError(f"unknown {self.kind} '{name}'{did_you_mean(name, self.names)}")
        return found

    def find(self, name: str) -> str | None:
        """The member's canonical name, or None (no suggestions computed: callers try several families)."""
        return self.names.get(name) or self.names.get(_snake(name))

    def coerce(self, value: Any) -> Any:
        """Accept `"relu"`, `{"name": "relu"}`, Keras's `{"class_name": ..., "config": ...}`, Calls, and
        calls written as text in JSON/YAML (`"adam(lr=0.01)"`, `'mnist("digits", stop=3000)'`)."""
        key = self.key
        if isinstance(value, BaseModel):
            return value
        if isinstance(value, str) and "(" in value:
            return self.from_call(_call_in_text(value))
        if isinstance(value, str):
            return {key: self.canonical(value)}
        if isinstance(value, Call):
            return self.from_call(value)
        if isinstance(value, dict):
            if "class_name" in value and key not in value:
                return {key: self.canonical(value["class_name"]), **(value.get("config") or {})}
            if isinstance(value.get(key), str):
                name = self.canonical(value[key])
                member = self.members[name]
                return {key: name, **{_field_alias(member, k): v for k, v in value.items() if k != key}}
        return value

    def from_call(self, call: Call) -> dict[str, Any]:
        """Positional and keyword arguments of a written call, as the member's fields."""
        name = self.canonical(call.name)
        member = self.members[name]
        positional = member.positional
        if len(call.args) > len(positional):
            raise ValueError(
                f"{call.name}() takes at most {len(positional)} positional argument(s), got {len(call.args)}"
            )
        data = dict(zip(positional, call.args))
        for key, v in call.kwargs.items():
            key = _field_alias(member, key)
            if key in data:
                raise ValueError(f"{call.name}() got argument '{key}' twice")
            data[key] = v
        return {self.key: name, **data}

    def make(self, name: str, **params: Any) -> BaseModel:
        canonical = self.canonical(name)
        return self.members[canonical](**{self.key: canonical}, **params)


def _under(tag: str, error: dict) -> dict:
    """One of a member's validation errors, located under its tag."""
    details = {"type": error["type"], "loc": (tag, *error["loc"]), "input": error["input"]}
    if "ctx" in error:
        details["ctx"] = error["ctx"]
    return details


def _call_in_text(text: str) -> Call:
    """A call written as a string, read with the .nn expression syntax; its problems as a ValueError."""
    from ..errors import SpecError
    from ..frontend import parse_value

    try:
        value = parse_value(text, "text")
    except SpecError as exc:
        raise ValueError(f"{text!r}: {exc.diagnostics[0].message}") from None
    if not isinstance(value, Call):
        raise ValueError(f"{text!r} is not a call such as name(arguments)")
    return value


# Keras spells some parameters two ways across versions; the IR keeps one.
PARAM_ALIASES = {"lr": "learning_rate", "negative_slope": "alpha"}


def _field_alias(model: type[BaseModel], key: str) -> str:
    if key not in model.model_fields and PARAM_ALIASES.get(key) in model.model_fields:
        return PARAM_ALIASES[key]
    return key


def _snake(name: str) -> str:
    """GlorotUniform -> glorot_uniform, MaxPooling2D -> max_pooling2d."""
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (name[i - 1].islower() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out).replace("__", "_")
