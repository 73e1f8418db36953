"""Load a spec from any of its forms (.nn text, JSON, YAML) into a checked IR."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from .errors import Collector, Diagnostic, SpecError
from .ir.model import Analysis, Model, analyze
from .ir.validation import json_path, messages
from .limits import MAX_SPEC_CHARS
from .tune.space import SearchSpace

SPEC_SUFFIXES = (".nn", ".json", ".yaml", ".yml")


@dataclass
class Spec:
    model: Model
    analysis: Analysis
    path: str
    source: str  # the text as written, stored in exported models so the spec can be recovered
    space: SearchSpace | None = None  # a .nn spec's search space; `model` is then at its defaults


def read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{path}: is a directory, not a spec file") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None


def load(path: str | Path) -> Spec:
    path = str(path)
    return loads(read_text(path), path)


def loads(text: str, path: str = "<spec>") -> Spec:
    suffix = Path(path).suffix.lower()
    space = None
    if len(text) > MAX_SPEC_CHARS:
        raise SpecError(f"{path}: the spec has {len(text):,} characters; the limit is {MAX_SPEC_CHARS:,}")
    if suffix in (".json", ".yaml", ".yml"):
        model = _from_data(parse_data(text, path, suffix), path)
    else:
        from .frontend import read_nn

        model, space = read_nn(text, path)
        if space is not None:
            from .tune.check import check_space

            check_space(space)
    analysis, problems = analyze(model)
    if problems:  # the .nn frontend reports these itself, with spans
        raise SpecError([Diagnostic(str(p), json_path=json_path(p.loc)) for p in problems], path)
    return Spec(model, analysis, path, text, space)


def parse_data(text: str, path: str, suffix: str) -> object:
    errors = Collector(path, text)
    if suffix == ".json":
        try:
            return json.loads(text)
        except RecursionError:
            errors.error("nested too deeply to read")
        except json.JSONDecodeError as exc:
            from .errors import Span

            errors.error(f"invalid JSON: {exc.msg}", Span(path, exc.lineno, exc.colno))
    else:
        import yaml

        try:
            return yaml.safe_load(text)  # never yaml.load: YAML tags can construct objects
        except RecursionError:
            errors.error("nested too deeply to read")
        except yaml.YAMLError as exc:
            from .errors import Span

            mark = getattr(exc, "problem_mark", None)
            span = Span(path, mark.line + 1, mark.column + 1) if mark else None
            errors.error(f"invalid YAML: {getattr(exc, 'problem', None) or exc}", span)
    errors.raise_if_any()
    raise AssertionError("unreachable")


def _from_data(data: object, path: str) -> Model:
    if not isinstance(data, dict):
        raise SpecError(Diagnostic("a spec must be a mapping with 'inputs' and 'layers'", json_path="(top level)"),
                        path)
    try:
        return Model.model_validate(data)
    except ValidationError as exc:
        raise SpecError([Diagnostic(msg, json_path=json_path(loc)) for loc, msg in messages(exc, Model)],
                        path) from None
    except ValueError as exc:  # raised by the model's own completion step
        raise SpecError(Diagnostic(str(exc), json_path="layers"), path) from None


def dump_json(model: Model) -> str:
    """The resolved IR (every default filled in) as JSON: a spec that repeats a run exactly."""
    return model.model_dump_json(indent=2, exclude_none=False)
