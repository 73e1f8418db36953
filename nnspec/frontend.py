"""`.nn` text to the IR: constants, repeats and blocks are expanded, calls become layers,
and every problem is reported at its line and column."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lark import Token, Tree
from pydantic import TypeAdapter, ValidationError

from .errors import Collector, Span, did_you_mean
from .ir.base import Call
from .ir.expr import from_tree as expr_from_tree, to_text as expr_to_text
from .ir.functions import ACTIVATIONS
from .ir.layers import LAYERS, AnyLayer, Layer
from .ir.model import Input, Model, Namer, analyze, output_names
from .ir.training import TrainConfig
from .ir.validation import messages
from .syntax import number, parse, span_of

_LAYER = TypeAdapter(AnyLayer)
MAX_BLOCK_DEPTH = 32
BLOCK_INPUT = "inputs"  # inside a block, the tensor flowing into it


class _Abort(Exception):
    """Stop expanding one statement; its error is already recorded."""


@dataclass
class Block:
    name: str
    params: list[tuple[str, Tree | None]]
    body: Tree
    span: Span


@dataclass
class Scope:
    """Names visible in a region of the spec: constants, tensors and blocks, each falling back to the parent."""

    parent: "Scope | None" = None
    constants: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, Block] = field(default_factory=dict)

    def find(self, table: str, name: str) -> Any:
        scope = self
        while scope is not None:
            entries = getattr(scope, table)
            if name in entries:
                return entries[name]
            scope = scope.parent
        return None

    def all(self, table: str) -> set[str]:
        names, scope = set(), self
        while scope is not None:
            names |= set(getattr(scope, table))
            scope = scope.parent
        return names


@dataclass
class Frame:
    """Where a sequence of statements stands: its scope and the tensor flowing through it."""

    scope: Scope
    current: str | None
    depth: int = 0


@dataclass
class SourceMap:
    """IR location -> source span, for errors found after the IR is built."""

    layers: list[Span] = field(default_factory=list)
    inputs: list[Span] = field(default_factory=list)
    outputs: list[Span] = field(default_factory=list)
    train: dict[str, Span] = field(default_factory=dict)
    model: Span | None = None

    def span(self, loc: tuple) -> Span | None:
        head = loc[0] if loc else None
        if head in ("layers", "inputs", "outputs") and len(loc) > 1 and isinstance(loc[1], int):
            spans = getattr(self, head)
            return spans[loc[1]] if loc[1] < len(spans) else self.model
        if head == "train" and len(loc) > 1:
            return self.train.get(loc[1], self.train.get("", self.model))
        return self.model


class Frontend:
    def __init__(self, text: str, path: str, start: str = "start"):
        self.path = path
        self.errors = Collector(path, text)
        self.tree = parse(text, path, start=start)
        self.globals = Scope()
        self.layers: list[Layer] = []
        self.inputs: list[Input] = []
        self.outputs: list[str] | None = None
        self.train: TrainConfig | None = None
        self.map = SourceMap()
        self.namer = Namer()

    # ---- top level -----------------------------------------------------------------
    def run(self) -> Model:
        models = [item for item in self.tree.children if item.data == "model_def"]
        trains = [item for item in self.tree.children if item.data == "train_def"]
        if not models:
            self.errors.error("no model block; a spec needs `model NAME { ... }`", Span(self.path, 1, 1))
            self.errors.raise_if_any()
        for extra in models[1:]:
            self.errors.error("only one model block is allowed per file", self.span(extra))
        for extra in trains[1:]:
            self.errors.error("only one train block is allowed per file", self.span(extra))
        for item in self.tree.children:
            if item.data == "let_stmt":
                self.let(item, self.globals)
            elif item.data == "block_def":
                self.define_block(item, self.globals)
        model_tree = models[0]
        name_token, body = model_tree.children
        self.map.model = self.span(name_token)
        frame = Frame(Scope(self.globals), None)
        self.statements(body, frame)
        if trains:
            self.train = self.training(trains[0])
        self.errors.raise_if_any()
        return self.assemble(str(name_token), frame)

    def assemble(self, name: str, frame: Frame) -> Model:
        if not self.inputs:
            self.errors.error("the model has no input; add `input NAME: float32[...]`", self.map.model)
            self.errors.raise_if_any()
        outputs = self.outputs or ([frame.current] if frame.current else [self.inputs[0].name])
        try:
            model = Model(name=name, inputs=self.inputs, layers=self.layers, outputs=outputs, train=self.train)
        except ValidationError as exc:
            for loc, msg in messages(exc, Model):
                self.errors.error(msg, self.map.span(loc))
            self.errors.raise_if_any()
        _, problems = analyze(model)
        for problem in problems:
            self.errors.error(str(problem), self.map.span(problem.loc))
        self.errors.raise_if_any()
        return model

    # ---- statements ------------------------------------------------------------------
    def statements(self, body: Tree, frame: Frame) -> None:
        for stmt in body.children:
            try:
                getattr(self, "stmt_" + stmt.data)(stmt, frame)
            except _Abort:
                pass

    def stmt_let_stmt(self, stmt: Tree, frame: Frame) -> None:
        self.let(stmt, frame.scope)

    def stmt_input_stmt(self, stmt: Tree, frame: Frame) -> None:
        name_token, tensor_type = stmt.children
        name = str(name_token) if name_token is not None else "input"
        if frame.depth:
            self.fail("inputs are declared in the model block, not inside a block", stmt)
        dtype_token, *dims = tensor_type.children
        shape = []
        for dim in dims:
            if dim is None:
                continue
            if isinstance(dim, Token) and dim.type == "UNKNOWN_DIM":
                shape.append(None)
                continue
            value = self.value(dim, frame.scope)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                self.fail(f"a dimension must be a positive integer or '?', got {value!r}", dim)
            shape.append(value)
        try:
            item = Input(name=name, dtype=str(dtype_token), shape=shape)
        except ValidationError as exc:
            self.fail(f"unknown dtype '{dtype_token}'{did_you_mean(str(dtype_token), _DTYPES)}", dtype_token)
        if name in frame.scope.tensors:
            self.fail(f"the name '{name}' is already used", name_token or stmt)
        self.namer.claim(name)
        self.inputs.append(item)
        self.map.inputs.append(self.span(stmt))
        frame.scope.tensors[name] = name
        frame.current = name if len(self.inputs) == 1 else None

    def stmt_output_stmt(self, stmt: Tree, frame: Frame) -> None:
        if frame.depth:
            self.fail("outputs are declared in the model block, not inside a block", stmt)
        self.outputs = self.outputs or []
        for token in stmt.children:
            self.outputs.append(self.tensor(token, frame))
            self.map.outputs.append(self.span(token))

    def stmt_repeat_stmt(self, stmt: Tree, frame: Frame) -> None:
        count_tree, body = stmt.children
        count = self.value(count_tree, frame.scope)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            self.fail(f"repeat needs a non-negative integer count, got {count!r}", count_tree)
        for _ in range(count):
            inner = Frame(Scope(frame.scope), frame.current, frame.depth)
            self.statements(body, inner)
            frame.current = inner.current
            self._export(inner.scope, frame.scope)

    def stmt_assign_stmt(self, stmt: Tree, frame: Frame) -> None:
        *name_tokens, chain = stmt.children
        names = [str(t) for t in name_tokens]
        outs = self.chain(chain, frame, names[0])
        if len(names) > 1 and len(names) != len(outs):
            self.fail(f"{len(names)} names for {len(outs)} output tensor(s)", stmt)
        for name, tensor in zip(names, outs):
            frame.scope.tensors[name] = tensor
        frame.current = outs[0]

    def stmt_chain_stmt(self, stmt: Tree, frame: Frame) -> None:
        outs = self.chain(stmt.children[0], frame, None)
        frame.current = outs[0]

    def _export(self, inner: Scope, outer: Scope) -> None:
        """Tensors named inside a repeat body stay visible after it (the last iteration's)."""
        outer.tensors.update(inner.tensors)

    # ---- chains and calls --------------------------------------------------------------
    def chain(self, chain: Tree, frame: Frame, name: str | None) -> list[str]:
        source, *calls = chain.children
        last = not calls
        if source.data == "tensor_ref":
            flowing = [self.tensor(source.children[0], frame)]
        elif source.data == "tensor_tuple":
            flowing = [self.tensor(t, frame) for t in source.children if t is not None]
        else:
            flowing = self.apply(source, frame, None, name if last else None)
        for i, call in enumerate(calls):
            flowing = self.apply(call, frame, flowing, name if i == len(calls) - 1 else None)
        return flowing

    def apply(self, call: Tree, frame: Frame, flowing: list[str] | None, name: str | None) -> list[str]:
        """Apply a layer or block call to tensors; returns the tensors it produces."""
        callee = str(call.children[0])
        args = [a for a in call.children[1:] if a is not None]
        explicit = []
        while args and self._is_tensor(args[0], frame):
            explicit.append(self.tensor(args[0].children[0], frame))
            args.pop(0)
        if flowing is None and not explicit:
            if frame.current is None and not self.inputs:
                self.fail(f"{callee}() needs an input tensor; declare one first: `input x: float32[...]`", call)
            if frame.current is None:
                self.fail(f"{callee}() needs an input tensor: the model has several inputs, so name the one it "
                          f"reads, e.g. {callee}(x, ...) or x -> {callee}(...)", call)
            flowing = [frame.current]
        ins = (flowing or []) + explicit
        block = frame.scope.find("blocks", callee)
        if block is not None:
            return [self.expand_block(block, call, args, ins, frame)]
        if callee in ("lambda", "Lambda") and args:  # its body is an expression of `x`, not a value
            layer_call = self.call(call, frame.scope, args[1:])
            layer_call.args.insert(0, self.lambda_text(args[0]))
            layer_call.arg_spans["expression"] = self.span(args[0])
        else:
            layer_call = self.call(call, frame.scope, args)
        explicit_name = layer_call.kwargs.pop("name", None)
        layer = self.make_layer(layer_call, call, frame)
        layer.inputs = ins
        layer.name = self.layer_name(layer, explicit_name, name, call)
        self.layers.append(layer)
        self.map.layers.append(self.span(call))
        outs = output_names(layer, len(_n_outputs(layer)))
        if explicit_name is not None:  # `dense(1, name="aux")` can be referred to as `aux`
            frame.scope.tensors[layer.name] = outs[0]
        return outs

    def _is_tensor(self, arg: Tree, frame: Frame) -> bool:
        if not (isinstance(arg, Tree) and arg.data == "name"):
            return False
        name = str(arg.children[0])
        return frame.scope.find("constants", name) is None and (
            frame.scope.find("tensors", name) is not None or (name == BLOCK_INPUT and frame.depth > 0))

    def tensor(self, token: Token | Tree, frame: Frame) -> str:
        name = str(token.children[0] if isinstance(token, Tree) else token)
        found = frame.scope.find("tensors", name)
        if found is None:
            known = frame.scope.all("tensors")
            self.fail(f"unknown tensor '{name}'{did_you_mean(name, known)}", token)
        return found

    def make_layer(self, layer_call: Call, tree: Tree, frame: Frame) -> Layer:
        name = layer_call.name
        try:
            LAYERS.canonical(name)
        except ValueError:
            try:
                ACTIVATIONS.canonical(name)
            except ValueError:
                candidates = set(LAYERS.names) | set(ACTIVATIONS.names) | frame.scope.all("blocks")
                self.fail(f"unknown layer '{name}'{did_you_mean(name, candidates)}", tree.children[0])
            # `relu()`, `softmax(axis=1)`: an activation written as a layer
            layer_call = Call("activation", [Call(name, layer_call.args, layer_call.kwargs)], {},
                              layer_call.span, {0: layer_call.span})
        try:
            return _LAYER.validate_python(LAYERS.from_call(layer_call))
        except ValueError as exc:
            self.report_validation(exc, layer_call)
            raise _Abort from exc

    def layer_name(self, layer: Layer, explicit: Any, assigned: str | None, tree: Tree) -> str:
        wanted = explicit if explicit is not None else assigned
        if wanted is not None and not isinstance(wanted, str):
            self.fail("a layer's name must be a string", tree)
        if wanted is not None and wanted not in self.namer.taken:
            self.namer.claim(wanted)
            return wanted
        if explicit is not None:
            self.fail(f"the layer name '{wanted}' is already used", tree)
        return self.namer.new(layer.type)  # e.g. `h = dense(...)` inside a repeat: later copies get new names

    def report_validation(self, exc: Exception, call: Call) -> None:
        if not isinstance(exc, ValidationError):
            self.errors.error(str(exc), call.span)
            return
        root = LAYERS.members[LAYERS.canonical(call.name)] if call.name in LAYERS.names else Model
        for loc, msg in messages(exc, root):
            field = loc[0] if loc else None
            # name the argument unless the message already does
            prefix = f"{call.name}(): " if field is None or "argument" in msg else f"{call.name}(): {field}: "
            self.errors.error(prefix + msg, call.arg_spans.get(field, call.span))

    def expand_block(self, block: Block, call: Tree, args: list, ins: list[str], frame: Frame) -> str:
        if frame.depth >= MAX_BLOCK_DEPTH:
            self.fail(f"blocks nest deeper than {MAX_BLOCK_DEPTH} (does '{block.name}' call itself?)", call)
        if len(ins) != 1:
            self.fail(f"block '{block.name}' takes one input tensor, got {len(ins)}", call)
        bound = self.call(call, frame.scope, args)
        scope = Scope(self.globals)
        names = [p for p, _ in block.params]
        if len(bound.args) > len(names):
            self.fail(f"block '{block.name}' takes {len(names)} argument(s), got {len(bound.args)}", call)
        scope.constants.update(zip(names, bound.args))
        for key, value in bound.kwargs.items():
            if key not in names:
                self.fail(f"block '{block.name}' has no parameter '{key}'{did_you_mean(key, names)}",
                          bound.arg_spans.get(key, call))
            if key in scope.constants:
                self.fail(f"block '{block.name}' got parameter '{key}' twice", bound.arg_spans.get(key, call))
            scope.constants[key] = value
        for param, default in block.params:
            if param not in scope.constants:
                if default is None:
                    self.fail(f"block '{block.name}' is missing argument '{param}'", call)
                scope.constants[param] = self.value(default, scope)
        scope.tensors[BLOCK_INPUT] = ins[0]
        inner = Frame(scope, ins[0], frame.depth + 1)
        self.statements(block.body, inner)
        return inner.current

    # ---- values ----------------------------------------------------------------------
    def let(self, stmt: Tree, scope: Scope) -> None:
        name_token, value = stmt.children
        try:
            scope.constants[str(name_token)] = self.value(value, scope)
        except _Abort:
            pass

    def define_block(self, stmt: Tree, scope: Scope) -> None:
        name_token, *params, body = stmt.children
        name = str(name_token)
        if name in LAYERS.names or name in ACTIVATIONS.names:
            self.errors.error(f"block '{name}' has the name of a built-in layer; choose another", self.span(name_token))
            return
        parsed = [(str(p.children[0]), p.children[1]) for p in params if p is not None]
        scope.blocks[name] = Block(name, parsed, body, self.span(name_token))

    def call(self, tree: Tree, scope: Scope, args: list | None = None) -> Call:
        name = str(tree.children[0])
        if args is None:
            args = [a for a in tree.children[1:] if a is not None]
        out = Call(name, span=self.span(tree))
        for arg in args:
            if isinstance(arg, Tree) and arg.data == "kwarg":
                key = str(arg.children[0])
                if key in out.kwargs:
                    self.fail(f"{name}() got argument '{key}' twice", arg)
                out.kwargs[key] = self.value(arg.children[1], scope)
                out.arg_spans[key] = self.span(arg)
            else:
                if out.kwargs:
                    self.fail(f"{name}(): a positional argument cannot follow keyword arguments", arg)
                out.arg_spans[len(out.args)] = self.span(arg)
                out.args.append(self.value(arg, scope))
        # positional spans are also found by the parameter name they fill
        member = _member(name)
        if member is not None:
            for i, param in enumerate(member.positional[: len(out.args)]):
                out.arg_spans.setdefault(param, out.arg_spans[i])
        return out

    def lambda_text(self, arg: Tree) -> str:
        """A lambda's body stays an expression; constants from `let` are substituted."""
        try:
            return expr_to_text(expr_from_tree(self._substitute(arg)))
        except ValueError as exc:
            self.fail(str(exc), arg)

    def _substitute(self, tree: Tree) -> Tree:
        if isinstance(tree, Tree) and tree.data == "name":
            value = self.globals.find("constants", str(tree.children[0]))
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return Tree("number", [Token("NUMBER", repr(value))])
            return tree
        if isinstance(tree, Tree):
            return Tree(tree.data, [self._substitute(c) for c in tree.children], tree.meta)
        return tree

    def value(self, tree: Tree | Token, scope: Scope) -> Any:
        kind = tree.data
        if kind == "number":
            return number(tree.children[0])
        if kind == "string":
            return _unquote(str(tree.children[0]))
        if kind in ("true", "false", "none"):
            return {"true": True, "false": False, "none": None}[kind]
        if kind == "name":
            name = str(tree.children[0])
            found = scope.find("constants", name)
            return found if found is not None or name in scope.all("constants") else name
        if kind == "call":
            return self.call(tree, scope)
        if kind in ("list", "tuple"):
            return [self.value(c, scope) for c in tree.children if c is not None]
        operands = [self.value(c, scope) for c in tree.children]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in operands):
            shown = next(v for v in operands if not isinstance(v, (int, float)) or isinstance(v, bool))
            self.fail(f"arithmetic needs numbers, got {shown!r}", tree)
        try:
            return _ARITH[kind](*operands)
        except (ZeroDivisionError, OverflowError) as exc:
            self.fail(f"cannot evaluate: {exc}", tree)

    # ---- training ---------------------------------------------------------------------
    def training(self, tree: Tree) -> TrainConfig | None:
        settings: dict[str, Any] = {}
        self.map.train[""] = self.span(tree)
        fields = TrainConfig.model_fields
        for setting in tree.children:
            key_token, value = setting.children
            key = {"lr": "learning_rate"}.get(str(key_token), str(key_token))
            if key not in fields:
                self.errors.error(f"unknown training setting '{key}'{did_you_mean(key, fields)}",
                                  self.span(key_token))
                continue
            if key in settings:
                self.errors.error(f"training setting '{key}' is given twice", self.span(key_token))
                continue
            try:
                settings[key] = self.value(value, self.globals)
            except _Abort:
                continue
            self.map.train[key] = self.span(value)
        if isinstance(settings.get("class_weight"), list):
            settings["class_weight"] = dict(enumerate(settings["class_weight"]))
        if isinstance(settings.get("metrics"), (str, Call)):
            settings["metrics"] = [settings["metrics"]]
        try:
            return TrainConfig(**settings)
        except ValidationError as exc:
            for loc, msg in messages(exc, TrainConfig):
                self.errors.error(f"{loc[0]}: {msg}" if loc else msg, self.map.span(("train", *loc)))
            return None

    # ---- helpers ----------------------------------------------------------------------
    def span(self, node: Tree | Token) -> Span:
        return span_of(node, self.path)

    def fail(self, message: str, node: Tree | Token) -> None:
        self.errors.error(message, self.span(node) if not isinstance(node, Span) else node)
        raise _Abort


_DTYPES = ["float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool"]
_ARITH = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "neg": lambda a: -a, "unary": lambda a: a,
}


def _unquote(text: str) -> str:
    """A STRING token's value, with Python's escapes (the token is a plain quoted literal)."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text[1:-1]


def _member(name: str):
    from .ir.validation import FAMILIES

    for family in FAMILIES:
        try:
            return family.members[family.canonical(name)]
        except ValueError:
            continue
    return None


def _n_outputs(layer: Layer) -> list:
    """How many tensors a layer yields, known before shapes: RNN states and Bidirectional halves."""
    inner = getattr(layer, "layer", None)
    if layer.type == "Bidirectional":
        states = inner.n_states * 2 if inner.return_state else 0
        return [0] * ((2 if layer.merge_mode is None else 1) + states)
    if getattr(layer, "return_state", False):
        return [0] * (1 + layer.n_states)
    return [0]


def parse_value(text: str, origin: str) -> Any:
    """A value written on the command line (`adam(learning_rate=0.01)`, `[accuracy, auc]`), read
    with the spec's own expression syntax; `origin` names it in errors (`--optimizer`)."""
    frontend = Frontend(text, origin, start="expr")
    try:
        value = frontend.value(frontend.tree, frontend.globals)
    except _Abort:
        value = None
    frontend.errors.raise_if_any()
    return value


def load_nn(text: str, path: str) -> Model:
    return Frontend(text, path).run()
