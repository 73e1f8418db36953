"""`nnspec fmt`: one canonical layout for .nn text, comments kept, idempotent; JSON and YAML
specs are rewritten as canonical JSON/YAML with their keys in the order written."""
from __future__ import annotations

import json
import re
from pathlib import Path

from lark import Token, Tree

from .errors import SpecError
from .syntax import new_parser, parse as checked_parse

INDENT = "  "
MAX_WIDTH = 100
# operator tree -> (symbol, precedence); unary minus binds tighter than * and looser than **
BINARY = {"add": ("+", 1), "sub": ("-", 1), "mul": ("*", 2), "div": ("/", 2), "pow": ("**", 4)}
NEG_PRECEDENCE = 3


def format_file_text(text: str, path: str) -> str:
    """A spec file's canonical text, by its suffix."""
    from .loader import parse_data

    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        return _json(parse_data(text, path, suffix), "", top=True) + "\n"
    if suffix in (".yaml", ".yml"):
        import yaml

        data = parse_data(text, path, suffix)
        if re.search(r"(^|\s)#", text, re.MULTILINE):  # PyYAML reads comments past, so a rewrite would lose them
            raise SpecError(f"{path}: fmt does not rewrite YAML that holds comments (they would be lost); "
                            "format it by hand or remove the comments")
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None, width=MAX_WIDTH)
    return format_text(text, path)


def _json(value: object, indent: str, top: bool = False) -> str:
    """JSON with the top level opened up and anything below on one line where it fits."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, (dict, list)) or not value or (not top and len(indent) + len(flat) <= MAX_WIDTH):
        return flat
    inner = indent + INDENT
    items = ([f"{json.dumps(k, ensure_ascii=False)}: {_json(v, inner)}" for k, v in value.items()]
             if isinstance(value, dict) else [_json(v, inner) for v in value])
    open_, close = "{}" if isinstance(value, dict) else "[]"
    return open_ + "\n" + ",\n".join(inner + item for item in items) + "\n" + indent + close


def format_text(text: str, path: str = "<spec>") -> str:
    checked_parse(text, path)  # syntax errors are reported the usual way
    comments: list[Token] = []
    tree = new_parser(lexer_callbacks={"COMMENT": comments.append}).parse(text, start="start")
    return _Formatter(comments).file(tree)


class _Formatter:
    def __init__(self, comments: list[Token]):
        self.comments = sorted(comments, key=lambda c: (c.line, c.column))
        self.lines: list[str] = []

    # ---- comments and layout -----------------------------------------------------
    def _leading(self, before_line: int, indent: str) -> int | None:
        """Emit comments above `before_line`; return the line of the first one emitted."""
        first = None
        while self.comments and self.comments[0].line < before_line:
            c = self.comments.pop(0)
            first = c.line if first is None else first
            self.lines.append(indent + str(c).rstrip())
        return first

    def _trailing(self, line: int) -> None:
        if self.comments and self.comments[0].line == line:
            self.lines[-1] += "  " + str(self.comments.pop(0)).rstrip()

    def _sequence(self, items: list[Tree], indent: str, render, end_line: int | None) -> None:
        previous_end = None
        for item in items:
            top = item.meta.line
            first_comment = self.comments[0].line if self.comments and self.comments[0].line < top else top
            if previous_end is not None and min(first_comment, top) - previous_end > 1:
                self.lines.append("")
            self._leading(top, indent)
            render(item, indent)
            if item.meta.end_line != end_line:  # else a comment after the closing brace is the parent's
                self._trailing(item.meta.end_line)
            previous_end = item.meta.end_line
        if end_line is not None:
            self._leading(end_line, indent)

    # ---- top level ---------------------------------------------------------------------
    def file(self, tree: Tree) -> str:
        previous = None
        for item in tree.children:
            top = item.meta.line
            if previous is not None and not (previous.data == item.data == "let_stmt" and top - previous.meta.end_line <= 1):
                self.lines.append("")
            self._leading(top, "")
            self.item(item, "")
            self._trailing(item.meta.end_line)
            previous = item
        self._leading(10**9, "")
        while self.lines and self.lines[0] == "":
            self.lines.pop(0)
        return "\n".join(self.lines).rstrip() + "\n" if self.lines else ""

    def item(self, item: Tree, indent: str) -> None:
        getattr(self, item.data)(item, indent)

    def body(self, head: str, body: Tree, indent: str) -> None:
        if not body.children:
            self.lines.append(f"{indent}{head} {{}}" if body.meta.line == body.meta.end_line else f"{indent}{head} {{")
            if body.meta.line != body.meta.end_line:
                self._leading(body.meta.end_line, indent + INDENT)
                self.lines.append(f"{indent}}}")
            return
        self.lines.append(f"{indent}{head} {{")
        if body.meta.line != body.meta.end_line:
            self._trailing(body.meta.line)
        self._sequence(body.children, indent + INDENT, self.item, body.meta.end_line)
        self.lines.append(f"{indent}}}")

    def let_stmt(self, t: Tree, indent: str) -> None:
        name, value = t.children
        self.lines.append(f"{indent}let {name} = {self.expr(value, indent)}")

    def block_def(self, t: Tree, indent: str) -> None:
        name, *params, body = t.children
        rendered = [f"{p.children[0]}" + (f"={self.expr(p.children[1], indent)}" if p.children[1] is not None else "")
                    for p in params if p is not None]
        self.body(f"block {name}({', '.join(rendered)})", body, indent)

    def model_def(self, t: Tree, indent: str) -> None:
        name, body = t.children
        self.body(f"model {name}", body, indent)

    def train_def(self, t: Tree, indent: str) -> None:
        self.lines.append(f"{indent}train {{")
        self._trailing(t.meta.line)
        width = max((len(str(s.children[0])) for s in t.children), default=0)
        inner = indent + INDENT
        self._sequence(
            t.children, inner,
            lambda s, ind: self.lines.append(
                f"{ind}{str(s.children[0]).ljust(width)} {self.expr(s.children[1], ind, width + 1)}"),
            t.meta.end_line,
        )
        self.lines.append(f"{indent}}}")

    def input_stmt(self, t: Tree, indent: str) -> None:
        name, tensor_type = t.children
        dtype, *dims = tensor_type.children
        shown = ", ".join("?" if isinstance(d, Token) and d.type == "UNKNOWN_DIM" else self.expr(d, indent)
                          for d in dims if d is not None)
        label = f"{name}: " if name is not None else ""
        self.lines.append(f"{indent}input {label}{dtype}[{shown}]")

    def output_stmt(self, t: Tree, indent: str) -> None:
        self.lines.append(f"{indent}output {', '.join(map(str, t.children))}")

    def repeat_stmt(self, t: Tree, indent: str) -> None:
        count, body = t.children
        self.body(f"repeat {self.expr(count, indent)}", body, indent)

    def assign_stmt(self, t: Tree, indent: str) -> None:
        *names, chain = t.children
        head = ", ".join(map(str, names)) + " = "
        self.lines.append(indent + head + self.chain(chain, indent, len(head)))

    def chain_stmt(self, t: Tree, indent: str) -> None:
        self.lines.append(indent + self.chain(t.children[0], indent, 0))

    def chain(self, t: Tree, indent: str, used: int) -> str:
        parts = []
        for part in t.children:
            if part.data == "tensor_ref":
                parts.append(str(part.children[0]))
            elif part.data == "tensor_tuple":
                parts.append("(" + ", ".join(str(c) for c in part.children if c is not None) + ")")
            else:
                parts.append(self.expr(part, indent, used))
        return " -> ".join(parts)

    # ---- values ----------------------------------------------------------------------
    def expr(self, t: Tree | Token, indent: str, used: int = 0, parent: int = 0) -> str:
        kind = t.data
        if kind in ("number", "string", "true", "false", "none", "name"):
            return str(t.children[0])
        if kind in BINARY:
            symbol, prec = BINARY[kind]
            left, right = t.children
            if kind == "pow":  # right-associative
                text = f"{self.expr(left, indent, used, prec + 1)} ** {self.expr(right, indent, used, NEG_PRECEDENCE)}"
            else:
                text = f"{self.expr(left, indent, used, prec)} {symbol} {self.expr(right, indent, used, prec + 1)}"
            return f"({text})" if parent > prec else text
        if kind == "neg":
            text = "-" + self.expr(t.children[0], indent, used, NEG_PRECEDENCE)
            return f"({text})" if parent > NEG_PRECEDENCE else text
        if kind == "unary":
            return "+" + self.expr(t.children[0], indent, used, NEG_PRECEDENCE)
        if kind == "kwarg":
            return f"{t.children[0]}={self.expr(t.children[1], indent, used)}"
        items = [c for c in (t.children[1:] if kind == "call" else t.children) if c is not None]
        opening, closing = {"call": (f"{t.children[0] if kind == 'call' else ''}(", ")"), "list": ("[", "]"),
                            "tuple": ("(", ")")}[kind]
        if kind == "tuple" and len(items) == 1:
            closing = ",)"
        inline = opening + ", ".join(self.expr(i, indent, used) for i in items) + closing
        if len(indent) + used + len(inline) <= MAX_WIDTH or len(items) < 2:
            return inline
        inner = indent + INDENT
        rows = [inner + self.expr(i, inner) + "," for i in items]
        return opening + "\n" + "\n".join(rows) + "\n" + indent + closing
