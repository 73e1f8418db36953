"""The safe expression language of `lambda(...)` layers: arithmetic and whitelisted elementwise
functions of one variable `x`. Expressions are data, parsed by the spec grammar, never Python."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from lark import Token, Tree

# name -> number of arguments; each is an elementwise function every backend implements.
FUNCTIONS = {
    "abs": 1, "exp": 1, "log": 1, "sqrt": 1, "square": 1, "sin": 1, "cos": 1, "tanh": 1, "sigmoid": 1,
    "relu": 1, "softplus": 1, "erf": 1, "floor": 1, "ceil": 1, "sign": 1, "neg": 1, "reciprocal": 1,
    "clip": 3, "minimum": 2, "maximum": 2, "pow": 2,
}
BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "**": 4}
VARIABLE = "x"


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Var:
    pass


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / **
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class Neg:
    operand: "Expr"


@dataclass(frozen=True)
class Func:
    name: str
    args: tuple["Expr", ...]


Expr = Union[Num, Var, BinOp, Neg, Func]


def from_tree(tree: Tree | Token) -> Expr:
    """Syntax tree of an expression -> Expr; raises ValueError for anything outside the whitelist."""
    from ..syntax import number

    if isinstance(tree, Token):
        raise ValueError(f"unexpected {tree!s}")
    kind = tree.data
    if kind == "number":
        return Num(float(number(tree.children[0])))
    if kind == "name":
        name = str(tree.children[0])
        if name != VARIABLE:
            raise ValueError(f"unknown name '{name}' in lambda expression; the input is called '{VARIABLE}'")
        return Var()
    if kind in BINARY:
        return BinOp(BINARY[kind], from_tree(tree.children[0]), from_tree(tree.children[1]))
    if kind == "neg":
        return Neg(from_tree(tree.children[0]))
    if kind == "unary":  # unary plus
        return from_tree(tree.children[0])
    if kind == "call":
        name = str(tree.children[0])
        args = [c for c in tree.children[1:] if c is not None]
        if name not in FUNCTIONS:
            from ..errors import did_you_mean

            raise ValueError(f"'{name}' is not allowed in a lambda expression{did_you_mean(name, FUNCTIONS)}")
        if any(isinstance(a, Tree) and a.data == "kwarg" for a in args):
            raise ValueError(f"{name}() takes positional arguments only")
        if len(args) != FUNCTIONS[name]:
            raise ValueError(f"{name}() takes {FUNCTIONS[name]} argument(s), got {len(args)}")
        return Func(name, tuple(from_tree(a) for a in args))
    raise ValueError(f"'{kind}' is not allowed in a lambda expression")


def parse_expression(text: str) -> Expr:
    from ..errors import SpecError
    from ..syntax import parse

    try:
        tree = parse(text, "<lambda>", start="expr")
    except SpecError as exc:
        raise ValueError(f"invalid lambda expression {text!r}") from exc
    expr = from_tree(tree)
    if not _uses_input(expr):
        raise ValueError(f"lambda expression {text!r} does not use its input '{VARIABLE}'")
    return expr


def _uses_input(e: Expr) -> bool:
    if isinstance(e, Var):
        return True
    if isinstance(e, BinOp):
        return _uses_input(e.left) or _uses_input(e.right)
    if isinstance(e, Neg):
        return _uses_input(e.operand)
    if isinstance(e, Func):
        return any(_uses_input(a) for a in e.args)
    return False


def to_text(e: Expr, parent: int = 0) -> str:
    """Canonical text with the fewest parentheses that keep the meaning."""
    if isinstance(e, Num):
        v = e.value
        return repr(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(e, Var):
        return VARIABLE
    if isinstance(e, Func):
        return f"{e.name}({', '.join(to_text(a) for a in e.args)})"
    if isinstance(e, Neg):
        text = "-" + to_text(e.operand, PRECEDENCE["neg"])
        return f"({text})" if parent > PRECEDENCE["neg"] else text
    prec = PRECEDENCE[e.op]
    if e.op == "**":  # right-associative
        text = f"{to_text(e.left, prec + 1)} ** {to_text(e.right, PRECEDENCE['neg'])}"
    else:
        text = f"{to_text(e.left, prec)} {e.op} {to_text(e.right, prec + 1)}"
    return f"({text})" if parent > prec else text


def canonical_expression(text: str) -> str:
    return to_text(parse_expression(text))
