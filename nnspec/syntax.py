"""Text to syntax tree: the lark parser over grammar/nnspec.lark, with compiler-style errors."""
from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources

from lark import Lark, Token, Tree
from lark.grammar import Rule
from lark.lexer import TerminalDef
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .errors import Collector, Span
from .limits import MAX_INT, MAX_NESTING, MAX_NUMBER_CHARS, MAX_SPEC_CHARS, MAX_STRING

# What a user wrote instead of lark's terminal names, in the order an expectation lists them.
TOKEN_WORDS = {
    "COMMA": "','", "RPAR": "')'", "RSQB": "']'", "RBRACE": "'}'", "LPAR": "'('", "LSQB": "'['", "LBRACE": "'{'",
    "EQUAL": "'='", "COLON": "':'", "SEMICOLON": "';'", "__ANON_0": "'->'", "MINUS": "'-'", "PLUS": "'+'",
    "STAR": "'*'", "SLASH": "'/'", "UNKNOWN_DIM": "'?'", "NAME": "a name", "NUMBER": "a number",
    "STRING": "a string", "TRUE": "true", "FALSE": "false", "NONE": "None", "$END": "end of file",
}


def _grammar_text() -> str:
    return _grammar_file("nnspec.lark")


def _grammar_file(name: str) -> str:
    try:
        return resources.files("nnspec.grammar").joinpath(name).read_text()
    except (ModuleNotFoundError, FileNotFoundError):  # running from a source checkout
        from pathlib import Path

        return (Path(__file__).resolve().parent.parent / "grammar" / name).read_text()


PARSER_OPTIONS = dict(parser="lalr", start=["start", "expr"], propagate_positions=True, maybe_placeholders=True)
TABLES = "nnspec.tables.json"  # the LALR tables built from the grammar: `python -m nnspec.syntax` writes them


def tables(grammar: str) -> str:
    """The parser built from `grammar`, as JSON (lark's own serialized form, which its standalone
    parsers embed), stamped with the grammar's hash. JSON, not lark's pickle cache: nnspec never
    unpickles a file."""
    data, memo = Lark(grammar, cache=False, **PARSER_OPTIONS).memo_serialize([TerminalDef, Rule])
    return json.dumps({"grammar_sha256": _sha256(grammar), "data": data, "memo": memo}) + "\n"


@functools.lru_cache(maxsize=None)
def parser() -> Lark:
    return new_parser()


def new_parser(**options) -> Lark:
    """Loaded from the tables shipped beside the grammar (a tenth of the time building them takes),
    or built from the grammar where the tables are missing or were built from another grammar.
    `options`: lark's that a loaded parser takes (lexer_callbacks)."""
    grammar = _grammar_text()
    try:
        stored = json.loads(_grammar_file(TABLES), object_pairs_hook=_int_keys)
    except (OSError, ValueError):
        stored = None
    if stored is None or stored.get("grammar_sha256") != _sha256(grammar):
        return Lark(grammar, cache=False, **PARSER_OPTIONS, **options)
    return Lark._load_from_dict(stored["data"], stored["memo"], **options)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _int_keys(pairs: list[tuple[str, object]]) -> dict:
    """JSON writes the tables' integer keys (parser states, memo ids) as text; no terminal or option
    name is all digits."""
    return {int(k) if k.isdigit() else k: v for k, v in pairs}


def parse(text: str, path: str, start: str = "start") -> Tree:
    """Parse spec text; syntax errors raise SpecError with the position and a caret."""
    errors = Collector(path, text)
    if len(text) > MAX_SPEC_CHARS:
        errors.error(f"the spec has {len(text):,} characters; the limit is {MAX_SPEC_CHARS:,}", Span(path, 1, 1))
        errors.raise_if_any()
    try:
        tree = parser().parse(text, start=start)
    except UnexpectedInput as exc:
        errors.error(_describe(exc, text), _where(exc, text, path))
    except RecursionError:  # lark's LALR parser is iterative; this guards its tree building all the same
        errors.error(f"nested too deeply; the limit is {MAX_NESTING} levels", Span(path, 1, 1))
    errors.raise_if_any()
    _check_bounds(tree, errors, path)
    errors.raise_if_any()
    return tree


def _check_bounds(tree: Tree, errors: Collector, path: str) -> None:
    """Nesting depth and literal sizes, walked without recursion, so that later recursive passes
    (evaluation, formatting, lambda bodies) stay bounded."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Token):
            problem = _literal_problem(node)
            if problem:
                errors.error(problem, span_of(node, path))
            continue
        if node is None:
            continue
        if depth > MAX_NESTING:
            errors.error(f"nested more than {MAX_NESTING} levels deep (brackets, operators and blocks count)",
                         span_of(node, path))
            return
        stack.extend((child, depth + 1) for child in node.children)


def _literal_problem(token: Token) -> str | None:
    text = str(token)
    if token.type == "STRING" and len(text) - 2 > MAX_STRING:
        return f"a string of {len(text) - 2:,} characters; the limit is {MAX_STRING:,}"
    if token.type != "NUMBER":
        return None
    if len(text) > MAX_NUMBER_CHARS:
        return f"a number written with {len(text):,} characters; the limit is {MAX_NUMBER_CHARS}"
    value = number(token)
    if isinstance(value, int) and value > MAX_INT:
        return f"the integer {text} is beyond the limit {MAX_INT:,} (2**63 - 1)"
    if isinstance(value, float) and value == float("inf"):
        return f"the number {text} is too large for a float"
    return None


def _where(exc: UnexpectedInput, text: str, path: str) -> Span:
    at_end = isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END")
    if at_end or exc.line < 1:  # point just past the last character
        lines = text.split("\n")
        return Span(path, len(lines), len(lines[-1]) + 1)
    return Span(path, exc.line, exc.column)


def _describe(exc: UnexpectedInput, text: str) -> str:
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        return f"unexpected character {char!r}"
    order = list(TOKEN_WORDS)
    kinds = sorted(set(getattr(exc, "expected", ()) or ()), key=lambda t: (order.index(t) if t in order else len(order), t))
    expected = [TOKEN_WORDS.get(t, t.lower()) for t in kinds]
    wanted = _one_of(expected) if expected and len(expected) <= 6 else ""
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        return f"unexpected end of file; expected {wanted}" if wanted else "unexpected end of file"
    found = repr(str(exc.token))
    return f"expected {wanted} before {found}" if wanted else f"unexpected {found}"


def _one_of(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def span_of(node: Tree | Token, path: str) -> Span:
    if isinstance(node, Token):
        return Span(path, node.line, node.column, node.end_line, node.end_column)
    meta = node.meta
    if getattr(meta, "empty", True):
        return Span(path, 1, 1)
    return Span(path, meta.line, meta.column, meta.end_line, meta.end_column)


def number(token: Token | str) -> int | float:
    """A NUMBER token's value: ints stay ints (so `dense(512)` gets an int)."""
    text = str(token).replace("_", "")
    if text[:2].lower() in ("0x", "0o", "0b"):
        return int(text, 0)
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


if __name__ == "__main__":  # regenerate the tables after editing the grammar
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "grammar"
    (folder / TABLES).write_text(tables((folder / "nnspec.lark").read_text()))
