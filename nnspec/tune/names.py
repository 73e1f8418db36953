"""Stable names for search parameters, read from the text alone, so that a name never depends on the
values of other parameters (a repeat count or an optional layer changes the layers built, not the
names): a layer is known by its `name=`, the tensor it is assigned to, or its type numbered in the
order of the text as Keras numbers layers (dense, dense_1, ...); inside a block, names start with the
block's; a `let` by its name; a repeat by its first layer (dense_1.repeat), or where it stands when it
has none (repeat@12:3)."""
from __future__ import annotations

from lark import Token, Tree

from ..ir.functions import ACTIVATIONS
from ..ir.layers import LAYERS
from ..ir.model import Namer
from .space import OPTIONAL


def owner_names(tree: Tree) -> dict[int, str]:
    """Start position -> name, for every layer call, block call, `let`, repeat and block parameter default."""
    names: dict[int, str] = {}
    blocks = {str(item.children[0]) for item in tree.children if item.data == "block_def"}
    for item in tree.children:
        if item.data == "let_stmt":
            names[_start(item)] = str(item.children[0])
        elif item.data == "block_def":
            block, *params, body = item.children
            for param in filter(None, params):
                if param.children[1] is not None:
                    names[_start(param.children[1])] = f"{block}.{param.children[0]}"
            _body(body, f"{block}.", Namer(), blocks, names)
        elif item.data == "model_def":
            _body(item.children[1], "", Namer(), blocks, names)
    return names


def _body(body: Tree, prefix: str, namer: Namer, blocks: set[str], names: dict[int, str]) -> None:
    for stmt in body.children:
        if stmt.data == "let_stmt":
            names[_start(stmt)] = prefix + str(stmt.children[0])
        elif stmt.data == "repeat_stmt":
            before = set(names)
            _body(stmt.children[1], prefix, namer, blocks, names)
            inside = sorted(set(names) - before)  # named after its first layer: dense_1.repeat
            names[_start(stmt)] = (f"{names[inside[0]]}.repeat" if inside
                                   else f"{prefix}repeat@{stmt.meta.line}:{stmt.meta.column}")
        elif stmt.data in ("assign_stmt", "chain_stmt"):
            assigned = str(stmt.children[0]) if stmt.data == "assign_stmt" else None
            calls = [part for part in stmt.children[-1].children if part.data == "call"]
            for i, call in enumerate(calls):
                _layer(call, assigned if i == len(calls) - 1 else None, prefix, namer, blocks, names)


def _layer(call: Tree, assigned: str | None, prefix: str, namer: Namer, blocks: set[str],
           names: dict[int, str]) -> None:
    callee, *args = call.children
    inner = next((a for a in args if isinstance(a, Tree) and a.data == "call"), None)
    if str(callee) == OPTIONAL and inner is not None:
        _layer(inner, assigned, prefix, namer, blocks, names)
        names[_start(call)] = names[_start(inner)]
        return
    wanted = _explicit_name(args) or assigned
    if wanted is not None:
        namer.claim(wanted)
    names[_start(call)] = prefix + (wanted or namer.new(_kind(str(callee), blocks)))


def _explicit_name(args: list) -> str | None:
    for arg in args:
        if isinstance(arg, Tree) and arg.data == "kwarg" and str(arg.children[0]) == "name":
            value = arg.children[1]
            if isinstance(value, Tree) and value.data == "string":
                return str(value.children[0])[1:-1]
    return None


def _kind(callee: str, blocks: set[str]) -> str:
    if callee in blocks:
        return callee
    for family, kind in ((LAYERS, None), (ACTIVATIONS, "Activation")):  # `relu()` makes an Activation layer
        try:
            canonical = family.canonical(callee)
        except ValueError:
            continue
        return kind or canonical
    return callee


def _start(node: Tree | Token) -> int:
    return node.start_pos if isinstance(node, Token) else node.meta.start_pos
