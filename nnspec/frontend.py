"""`.nn` text to the IR: constants, repeats and blocks are expanded, calls become layers,
and every problem is reported at its line and column."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from lark import Token, Tree
from pydantic import TypeAdapter, ValidationError

from .errors import Collector, SpecError, Span, did_you_mean
from .ir.base import Call, _snake
from .ir.expr import from_tree as expr_from_tree, to_text as expr_to_text
from .ir.functions import ACTIVATIONS
from .ir.layers import LAYERS, AnyLayer, Layer
from .ir.model import Input, Model, Namer, PretrainedWeights, analyze, output_names
from .ir.training import TrainConfig
from .ir.validation import messages
from .limits import MAX_DIM, MAX_LAYERS, MAX_REPEAT, MAX_SEARCH_PARAMETERS, LimitError, check_number, check_power
from .syntax import number, parse, span_of
from .tune.names import owner_names
from .tune.space import OPTIONAL, SEARCH_VALUES, Edit, Param, SearchSpace, Switch, distribution, removal

_LAYER = TypeAdapter(AnyLayer)
MAX_BLOCK_DEPTH = 32
BLOCK_INPUT = "inputs"  # inside a block, the tensor flowing into it


class _Abort(Exception):
    """Stop expanding one statement; its error is already recorded."""


_FAILED = object()  # the value of a `let` whose expression had an error


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
    """One reading of a spec. Search calls take their default values, or, to build a point of a known
    `space`, the `values` of that point; `exploring` visits every part of the text a point could use
    (optional layers on, every repeat body at least once) to find the whole space."""

    def __init__(self, text: str, path: str, start: str = "start", *, tree: Tree | None = None,
                 space: SearchSpace | None = None, values: dict[str, Any] | None = None, exploring: bool = False):
        self.path = path
        self.text = text
        self.errors = Collector(path, text)
        self.tree = tree if tree is not None else parse(text, path, start=start)
        self.globals = Scope()
        self.layers: list[Layer] = []
        self.inputs: list[Input] = []
        self.outputs: list[str] | None = None
        self.train: TrainConfig | None = None
        self.pretrained: list[PretrainedWeights] = []
        self.map = SourceMap()
        self.namer = Namer()
        self.space, self.values, self.exploring = space, values, exploring
        self.found: dict[int, Param] = {}  # search calls met, by start position
        self.where: list = []  # what is being evaluated: [owner, argument, ...] -> a parameter's name
        self.in_search = False
        self.input_failed = False
        self.defining: set[str] = set()  # names of the `let`s being evaluated: `let a = a` is a cycle
        self._owners: dict[int, str] | None = None

    # ---- top level -----------------------------------------------------------------
    def run(self) -> Model:
        name, frame = self.walk()
        self.errors.raise_if_any()
        return self.assemble(name, frame)

    def walk(self) -> tuple[str, Frame]:
        """Expand every statement and the train section, recording errors."""
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
        return str(name_token), frame

    def assemble(self, name: str, frame: Frame) -> Model:
        if not self.inputs:
            self.errors.error("the model has no input; add `input NAME: float32[...]`", self.map.model)
            self.errors.raise_if_any()
        outputs = self.outputs or ([frame.current] if frame.current else [self.inputs[0].name])
        try:
            model = Model(name=name, inputs=self.inputs, layers=self.layers, outputs=outputs, train=self.train,
                          pretrained=self.pretrained)
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
                self.input_failed |= stmt.data == "input_stmt"

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
            if value > MAX_DIM:
                self.fail(f"the dimension {self.source(dim)} is beyond the limit of {MAX_DIM:,}", dim)
            shape.append(value)
        try:
            item = Input(name=name, dtype=str(dtype_token), shape=shape)
        except ValidationError:
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
        with self.owned_by(stmt):
            count = self.value(count_tree, frame.scope)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            self.fail(f"repeat needs a non-negative integer count, got {count!r}", count_tree)
        if count > MAX_REPEAT:
            self.fail(f"repeat {count:,} times is beyond the limit of {MAX_REPEAT:,}", count_tree)
        for _ in range(max(count, 1) if self.exploring else count):
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
        named = self.named_part(chain, frame) if name is not None else None
        flowing = None
        for i, part in enumerate(chain.children):
            if part.data == "tensor_ref":
                flowing = [self.tensor(part.children[0], frame)]
            elif part.data == "tensor_tuple":
                flowing = [self.tensor(t, frame) for t in part.children if t is not None]
            else:
                flowing = self.apply(part, frame, flowing, name if i == named else None, chain)
        return flowing

    def named_part(self, chain: Tree, frame: Frame) -> int | None:
        """Which part of `name = chain` makes the named tensor: the last, or the one before it when the last
        is an optional layer switched off (as in the text with that layer removed); None: no layer does."""
        parts = chain.children
        for i in reversed(range(len(parts))):
            part = parts[i]
            if part.data != "call" or str(part.children[0]) != OPTIONAL:
                return i
            if len(parts) == 1 and not self._explicit(self._optional_layer(part), frame):
                self.fail("optional(): switched off, the name would go to the tensor before it; name that "
                          "tensor: `name = x -> optional(...)`", part)
            if self.switch(part, frame, chain):
                return i
        return None

    def tensors_read(self, call: Tree, frame: Frame, flowing: list[str] | None) -> tuple[list, list[str], list[str]]:
        """A call's arguments after its leading tensor arguments, those tensors, and all it reads."""
        callee = str(call.children[0])
        args = [a for a in call.children[1:] if a is not None]
        explicit = []
        while args and self._is_tensor(args[0], frame):
            explicit.append(self.tensor(args[0].children[0], frame))
            args.pop(0)
        if flowing is None and not explicit:
            if frame.current is None and self.input_failed:
                raise _Abort  # the input's own error says it all
            if frame.current is None and not self.inputs:
                self.fail(f"{callee}() needs an input tensor; declare one first: `input x: float32[...]`", call)
            if frame.current is None:
                self.fail(f"{callee}() needs an input tensor: the model has several inputs, so name the one it "
                          f"reads, e.g. {callee}(x, ...) or x -> {callee}(...)", call)
            flowing = [frame.current]
        return args, explicit, (flowing or []) + explicit

    def apply(self, call: Tree, frame: Frame, flowing: list[str] | None, name: str | None, chain: Tree) -> list[str]:
        """Apply a layer or block call to tensors; returns the tensors it produces."""
        callee = str(call.children[0])
        if callee == OPTIONAL:
            return self.optional(call, frame, flowing, name, chain)
        if callee in SEARCH_VALUES:
            self.fail(f"{callee}() is a value, not a layer: write it as an argument, e.g. dense({callee}(...))", call)
        with self.owned_by(call):
            return self.apply_layer(call, frame, flowing, name)

    def optional(self, call: Tree, frame: Frame, flowing: list[str] | None, name: str | None,
                 chain: Tree) -> list[str]:
        """`optional(layer)`: the layer, or, switched off, its input passed on unchanged."""
        inner = self._optional_layer(call)
        _, _, ins = self.tensors_read(inner, frame, flowing)
        if len(ins) != 1:
            self.fail(f"optional() needs a layer that reads one tensor; this one reads {len(ins)}", call)
        if not self.switch(call, frame, chain):
            return ins
        outs = self.apply(inner, frame, flowing, name, chain)
        if len(outs) != 1:
            self.fail("optional() needs a layer that makes one tensor", call)
        return outs

    def _optional_layer(self, call: Tree) -> Tree:
        args = [a for a in call.children[1:] if a is not None]
        if len(args) != 1 or not (isinstance(args[0], Tree) and args[0].data == "call") or \
                str(args[0].children[0]) == OPTIONAL:
            self.fail("optional() takes one layer, e.g. optional(dropout(0.5))", call)
        return args[0]

    def _explicit(self, layer: Tree, frame: Frame) -> bool:
        """Does the layer name the tensor it reads (`dense(h, 4)`)?"""
        args = [a for a in layer.children[1:] if a is not None]
        return bool(args) and self._is_tensor(args[0], frame)

    def switch(self, call: Tree, frame: Frame, chain: Tree) -> bool:
        """Is this optional layer on? (Its parameter is recorded on the way.)"""
        inner = self._optional_layer(call)
        with self.owned_by(inner, "enabled"):
            param = self.record(call, Switch(), *self._switch_edits(call, inner, chain, self._explicit(inner, frame)))
        return self.pick(param)

    def _switch_edits(self, call: Tree, inner: Tree, chain: Tree, explicit: bool) -> tuple[tuple, tuple]:
        """How the text reads with the optional layer kept (unwrapped) and removed."""
        start, end = call.meta.start_pos, call.meta.end_pos
        on = (Edit(start, inner.meta.start_pos), Edit(inner.meta.end_pos, end))
        parts = chain.children
        index = next(i for i, part in enumerate(parts) if part is call)
        if explicit:  # `optional(dense(x, 8))` -> `x`
            tensor = next(a for a in inner.children[1:] if a is not None)
            off = Edit(start, end, str(tensor.children[0]))
        elif len(parts) == 1:  # the whole statement
            off = removal(self.text, chain.meta.start_pos, chain.meta.end_pos)
        elif index:  # ` -> optional(...)`
            off = Edit(parts[index - 1].meta.end_pos, end)
        else:  # `optional(...) -> `
            off = Edit(start, parts[1].meta.start_pos)
        return on, (off,)

    def apply_layer(self, call: Tree, frame: Frame, flowing: list[str] | None, name: str | None) -> list[str]:
        callee = str(call.children[0])
        args, _, ins = self.tensors_read(call, frame, flowing)
        block = frame.scope.find("blocks", callee)
        if block is not None:
            return [self.expand_block(block, call, args, ins, frame)]
        if callee == "pretrained":
            return [self.splice_pretrained(call, frame, args, ins)]
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
        if len(self.layers) >= MAX_LAYERS:  # stop at once: the rest of a huge repeat would fail alike
            self.errors.error(f"the model has more than {MAX_LAYERS:,} layers, the limit", self.span(call))
            self.errors.raise_if_any()
        self.layers.append(layer)
        self.map.layers.append(self.span(call))
        outs = output_names(layer, len(_n_outputs(layer)))
        if explicit_name is not None:  # `dense(1, name="aux")` can be referred to as `aux`
            frame.scope.tensors[layer.name] = outs[0]
        return outs

    def splice_pretrained(self, call: Tree, frame: Frame, args: list, ins: list[str]) -> str:
        """Splice a model file's layers in (nnspec/pretrained.py); returns the tensor it gives."""
        from .pretrained import splice

        bound = self.call(call, frame.scope, args, positional=("path", "until"))
        values = dict(zip(("path", "until"), bound.args)) | bound.kwargs
        for key in set(values) - {"path", "until", "trainable"}:
            self.fail(f"pretrained() has no argument '{key}'{did_you_mean(key, ['path', 'until', 'trainable'])}",
                      bound.arg_spans.get(key, call))
        path, until, trainable = values.get("path"), values.get("until"), values.get("trainable")
        if not isinstance(path, str) or not (until is None or isinstance(until, str)) or trainable not in (None, True, False):
            self.fail('pretrained() takes a file path, until="layer name" and trainable=true|false', call)
        if len(ins) != 1:
            self.fail(f"pretrained() reads one tensor, got {len(ins)}", call)
        where = Path(self.path).parent if Path(self.path).is_file() else Path.cwd()
        try:
            layers, output, record = splice(str(where / path), ins[0], until, trainable)
        except SpecError as exc:  # one line: the file, then what is wrong with it
            problem = "; ".join(d.message for d in exc.diagnostics)
            self.fail(problem if problem.startswith("pretrained()") else
                      f"pretrained(): {exc.path + ': ' if exc.path else ''}{problem}", call)
        for layer in layers:
            if layer.name in self.namer.taken:
                self.fail(f"pretrained(): layer '{layer.name}' of {path} has a name this spec already uses", call)
            self.namer.claim(layer.name)
            self.layers.append(layer)
            self.map.layers.append(self.span(call))
        self.pretrained.append(record)
        return output

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
        if LAYERS.find(name) is None:
            if ACTIVATIONS.find(name) is None:
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
        names = [p for p, _ in block.params]
        bound = self.call(call, frame.scope, args, positional=names)
        scope = Scope(self.globals)
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
                with self.owned_by(default):
                    scope.constants[param] = self.value(default, scope)
        scope.tensors[BLOCK_INPUT] = ins[0]
        inner = Frame(scope, ins[0], frame.depth + 1)
        with self.owned_by(None):  # the body's statements name their own parameters
            self.statements(block.body, inner)
        return inner.current

    # ---- values ----------------------------------------------------------------------
    def let(self, stmt: Tree, scope: Scope) -> None:
        name_token, value = stmt.children
        self.defining.add(str(name_token))
        try:
            with self.owned_by(stmt):
                scope.constants[str(name_token)] = self.value(value, scope)
        except _Abort:  # later uses of the name are not mistakes of their own
            scope.constants[str(name_token)] = _FAILED
        finally:
            self.defining.discard(str(name_token))

    def define_block(self, stmt: Tree, scope: Scope) -> None:
        name_token, *params, body = stmt.children
        name = str(name_token)
        reserved = _reserved_layer_name(name)
        if reserved is not None:
            self.errors.error(f"block '{name}' has the name of the built-in layer {reserved}; choose another (a block "
                              "may take a layer's alias, such as 'fc', and then hides it)", self.span(name_token))
            return
        if name in (*SEARCH_VALUES, OPTIONAL):
            self.errors.error(f"block '{name}' has the name of a search space; choose another", self.span(name_token))
            return
        parsed = [(str(p.children[0]), p.children[1]) for p in params if p is not None]
        scope.blocks[name] = Block(name, parsed, body, self.span(name_token))

    def call(self, tree: Tree, scope: Scope, args: list | None = None, positional: Sequence[str] | None = None) -> Call:
        name = str(tree.children[0])
        if args is None:
            args = [a for a in tree.children[1:] if a is not None]
        member = _member(name)
        if positional is None:
            positional = member.positional if member is not None else ()
        out = Call(name, span=self.span(tree))
        for arg in args:
            if isinstance(arg, Tree) and arg.data == "kwarg":
                key = str(arg.children[0])
                if key in out.kwargs:
                    self.fail(f"{name}() got argument '{key}' twice", arg)
                with self.segment(key):
                    out.kwargs[key] = self.value(arg.children[1], scope)
                out.arg_spans[key] = self.span(arg)
            else:
                if out.kwargs:
                    self.fail(f"{name}(): a positional argument cannot follow keyword arguments", arg)
                i = len(out.args)
                out.arg_spans[i] = self.span(arg)
                with self.segment(positional[i] if i < len(positional) else str(i)):
                    out.args.append(self.value(arg, scope))
        # positional spans are also found by the parameter name they fill
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
            return unquote(str(tree.children[0]))
        if kind in ("true", "false", "none"):
            return {"true": True, "false": False, "none": None}[kind]
        if kind == "name":
            name = str(tree.children[0])
            if name in self.defining and name not in scope.all("constants"):
                self.fail(f"'{name}' is defined in terms of itself", tree)
            found = scope.find("constants", name)
            if found is _FAILED:
                raise _Abort
            return found if found is not None or name in scope.all("constants") else name
        if kind == "call":
            if str(tree.children[0]) == OPTIONAL:
                self.fail("optional() wraps a layer written as a statement, e.g. optional(dropout(0.5))", tree)
            return self.search_value(tree, scope) if self._searches(tree) else self.call(tree, scope)
        if kind in ("list", "tuple"):
            items = []
            for i, item in enumerate(c for c in tree.children if c is not None):
                with self.segment(f"[{i}]"):
                    items.append(self.value(item, scope))
            return items
        operands = [self.value(c, scope) for c in tree.children]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in operands):
            shown = next(v for v in operands if not isinstance(v, (int, float)) or isinstance(v, bool))
            self.fail(f"arithmetic needs numbers, got {shown!r}", tree)
        try:
            if kind == "pow":
                check_power(*operands)
            return check_number(_ARITH[kind](*operands))
        except (ZeroDivisionError, OverflowError, LimitError) as exc:
            self.fail(f"cannot evaluate {self.source(tree)}: {exc}", tree)

    # ---- search spaces ----------------------------------------------------------------
    @contextmanager
    def owned_by(self, owner: Tree | str | None, *parts: str) -> Iterator[None]:
        """Search calls evaluated inside belong to `owner`: a layer call, `let`, repeat or setting."""
        saved, self.where = self.where, ([owner, *parts] if owner is not None else [])
        try:
            yield
        finally:
            self.where = saved

    @contextmanager
    def segment(self, part: str) -> Iterator[None]:
        """...and to one of its arguments: `dense.units`, `callbacks[0].patience`."""
        owned = bool(self.where)
        if owned:
            self.where.append(part)
        try:
            yield
        finally:
            if owned:
                self.where.pop()

    def _searches(self, call: Tree) -> bool:
        """Is this call a search space? `uniform(...)` given as an initializer stays Keras 2's
        spelling of random_uniform, as it always was."""
        name = str(call.children[0])
        return name in SEARCH_VALUES and not (
            name == "uniform" and self.where and str(self.where[-1]).endswith("_initializer"))

    def search_value(self, tree: Tree, scope: Scope) -> Any:
        """A search call's value: its default, or its value at the point being built."""
        kind, *args = [c for c in tree.children if c is not None]
        if self.in_search:
            self.fail(f"{kind}() inside another search space: search spaces do not nest", tree)
        if not self.where:
            self.fail(f"{kind}() belongs in an argument of a layer or block, a training setting, a `let` "
                      "or a repeat count", tree)
        keyword = next((a for a in args if a.data == "kwarg"), None)
        if keyword is not None:
            self.fail(f"{kind}() takes no keyword arguments", keyword)
        self.in_search = True
        try:
            values = [self.value(a, scope) for a in args]
        finally:
            self.in_search = False
        try:
            dist = distribution(str(kind), values, [self._text(a) for a in args])
        except ValueError as exc:
            self.fail(str(exc), tree)
        chosen = self.pick(self.record(tree, dist))
        return values[dist.index(chosen)] if kind == "choice" else chosen

    def record(self, tree: Tree, dist, on: tuple = (), off: tuple = ()) -> Param:
        start = tree.meta.start_pos
        known = self.found.get(start) or (self.space.by_start.get(start) if self.space is not None else None)
        if known is None and self.space is not None:
            self.fail("this search space is reached only through values of other parameters", tree)
        if known is not None and known.dist != dist:
            self.fail("a search space's options and bounds must not depend on other search parameters", tree)
        param = known or Param(self.param_name(), dist, self.span(tree), start, tree.meta.end_pos, on, off)
        self.found[start] = param
        return param

    def pick(self, param: Param) -> Any:
        return param.dist.default if self.values is None else self.values[param.name]

    def param_name(self) -> str:
        owner, *parts = self.where
        if not isinstance(owner, str):
            if self._owners is None:
                self._owners = owner_names(self.tree)
            owner = self._owners[owner.meta.start_pos]
        return owner + "".join(p if p.startswith("[") else "." + p for p in parts)

    def _text(self, tree: Tree) -> str:
        """An option as written; parenthesized unless it is one atom, so it can stand in any expression."""
        text = self.text[tree.meta.start_pos:tree.meta.end_pos]
        return text if tree.data in _ATOMS else f"({text})"

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
                with self.owned_by(key):
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

    def source(self, node: Tree) -> str:
        """The text of a node as written (shortened), for messages."""
        text = self.text[node.meta.start_pos:node.meta.end_pos] if not node.meta.empty else node.data
        return f"`{text if len(text) <= 40 else text[:37] + '...'}`"

    def fail(self, message: str, node: Tree | Token) -> None:
        self.errors.error(message, self.span(node) if not isinstance(node, Span) else node)
        raise _Abort


_ATOMS = ("number", "string", "true", "false", "none", "name", "call", "list", "tuple")
_DTYPES = ["float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool"]
_ARITH = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "neg": lambda a: -a, "unary": lambda a: a,
}


def unquote(text: str) -> str:
    """A STRING token's value, with Python's escapes (the token is a plain quoted literal)."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text[1:-1]


def _member(name: str):
    from .ir.validation import FAMILIES

    for family in FAMILIES:
        found = family.find(name)
        if found is not None:
            return family.members[found]
    return None


def _n_outputs(layer: Layer) -> list:
    """How many tensors a layer yields, known before shapes: RNN states, Bidirectional halves and
    attention scores."""
    inner = getattr(layer, "layer", None)
    if layer.type == "Bidirectional":
        states = inner.n_states * 2 if inner.return_state else 0
        return [0] * ((2 if layer.merge_mode is None else 1) + states)
    if getattr(layer, "return_state", False):
        return [0] * (1 + layer.n_states)
    if getattr(layer, "return_attention_scores", False):
        return [0, 0]
    return [0]


def _reserved_layer_name(name: str) -> str | None:
    """The built-in layer or activation whose own name (its Keras name or that name in snake_case) is
    `name`, or None. Blocks may take any other spelling, an alias like `fc`, and hide the built-in."""
    for family in (LAYERS, ACTIVATIONS):
        canonical = family.names.get(name)
        if canonical is not None and name in (canonical, _snake(canonical)):
            return canonical
    return None


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


def read_nn(text: str, path: str) -> tuple[Model, SearchSpace | None]:
    """The model (at the defaults of its search space) and the search space, if the spec has one."""
    frontend = Frontend(text, path)
    model = frontend.run()
    if not frontend.found:
        return model, None
    explorer = Frontend(text, path, tree=frontend.tree, exploring=True)
    explorer.walk()
    explorer.errors.raise_if_any()
    if len(explorer.found) > MAX_SEARCH_PARAMETERS:  # checking builds the model at each one's bounds
        extra = sorted(explorer.found.values(), key=lambda p: p.start)[MAX_SEARCH_PARAMETERS]
        explorer.errors.error(f"the search space has {len(explorer.found)} parameters; the limit is "
                              f"{MAX_SEARCH_PARAMETERS}", extra.span)
        explorer.errors.raise_if_any()
    return model, SearchSpace.build(list(explorer.found.values()), text, path, frontend.tree)


def materialize(space: SearchSpace, assignment: dict[str, Any]) -> Model:
    """The plain model at a point of the space (unassigned parameters at their defaults)."""
    return Frontend(space.text, space.path, tree=space.tree, space=space, values=space.point(assignment)).run()
