"""Start-up stays light: each command imports the heavy libraries it uses and no others.

Correctness, not timing: a command that imports onnxruntime or matplotlib without running a model
or drawing a picture pays for it on every call (nnspec check must feel instant).
"""
import json
import subprocess
import sys

import pytest

from conftest import ROOT

HEAVY = ("onnxruntime", "onnx", "matplotlib", "optuna", "h5py", "tensorboardX", "PIL", "numpy", "torch")

# Runs one command through the real entry point in a fresh interpreter and reports which heavy
# top-level packages ended up imported.
PROBE = """
import json, sys
from nnspec.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
loaded = sorted({m.split('.')[0] for m in sys.modules} & set(json.loads(%r)))
print(json.dumps({"code": code, "loaded": loaded}))
"""


def imported_by(*args: str, cwd=None) -> set[str]:
    result = subprocess.run([sys.executable, "-c", PROBE % json.dumps(HEAVY), *map(str, args)],
                            capture_output=True, text=True, cwd=cwd, timeout=300)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] in (0, None), result.stderr
    return set(report["loaded"])


@pytest.mark.parametrize("command", [["check"], ["summary"], ["fmt", "--check"]])
def test_reading_a_spec_imports_nothing_heavy(command):
    # an architecture has no arrays yet: not even numpy
    assert imported_by(*command, ROOT / "specs" / "mnist_cnn.nn") == set()


def test_compile_needs_onnx_but_no_runtime(tmp_path):
    loaded = imported_by("compile", ROOT / "specs" / "mnist_cnn.nn", "-o", tmp_path / "m.onnx")
    assert "onnx" in loaded
    assert not loaded & {"onnxruntime", "matplotlib", "optuna", "h5py", "tensorboardX", "torch"}


def test_training_imports_only_what_it_uses(tmp_path):
    spec = tmp_path / "xor.nn"
    spec.write_text("model xor {\n  input x: float32[2]\n  dense(4, activation=tanh)\n  dense(1)\n}\n"
                    "train {\n  data xor()\n  loss mse\n  optimizer sgd\n  epochs 1\n}\n")
    loaded = imported_by("train", spec, "-o", tmp_path / "xor.trained.onnx", "--verbose", "0")
    assert {"onnxruntime", "matplotlib"} <= loaded  # it runs the step and draws history.png
    assert not loaded & {"optuna", "h5py", "tensorboardX", "torch"}


# Reading a spec builds the validators of the IR classes it names, not every class's (pydantic defer_build):
# the classes a run of `check` left complete, in a fresh interpreter.
BUILT = """
import json
from nnspec.cli import main
from nnspec.ir.layers import LAYER_CLASSES
from nnspec.ir.training import OPTIMIZERS
main(["check", %r])
print(json.dumps([c.__name__ for c in [*LAYER_CLASSES, *OPTIMIZERS.members.values()] if c.__pydantic_complete__]))
"""


def test_checking_a_spec_builds_only_the_classes_it_names():
    result = subprocess.run([sys.executable, "-c", BUILT % str(ROOT / "specs" / "mnist_mlp.nn")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout.strip().splitlines()[-1])) == {"Dense", "Dropout", "Flatten", "RMSprop"}


def test_a_member_that_fails_validation_is_located_under_its_tag():
    # as pydantic's discriminated unions located them (nnspec.ir.validation reads the tags)
    from pydantic import ValidationError

    from nnspec.ir.model import Model

    with pytest.raises(ValidationError) as info:
        Model(inputs=[{"shape": [3]}], layers=[{"type": "Dense", "units": -1}, {"type": 5}, {"units": 2}, 7])
    found = {(e["type"], e["loc"]) for e in info.value.errors()}
    assert ("greater_than", ("layers", 0, "Dense", "units")) in found
    assert {("union_tag_invalid", ("layers", 1)), ("union_tag_not_found", ("layers", 2)),
            ("model_attributes_type", ("layers", 3))} <= found


def test_the_json_schema_names_every_member_of_a_recursive_family():
    from nnspec.ir.layers import LAYERS
    from nnspec.ir.model import Model

    schema = Model.model_json_schema()
    union = schema["$defs"]["layer"]
    assert set(union["discriminator"]["mapping"]) == set(LAYERS.members)
    # TimeDistributed holds a layer: a reference to the same definition, not a copy
    assert schema["$defs"]["TimeDistributed"]["properties"]["layer"]["$ref"] == "#/$defs/layer"


def _same_tree(a, b) -> bool:
    """Trees equal in shape, rules, tokens and positions (walked without recursion: the corpus nests deep)."""
    from lark import Token, Tree

    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, Tree):
            if not isinstance(y, Tree) or x.data != y.data or len(x.children) != len(y.children) or \
                    (not x.meta.empty and (x.meta.line, x.meta.column, x.meta.end_pos) !=
                     (y.meta.line, y.meta.column, y.meta.end_pos)):
                return False
            stack.extend(zip(x.children, y.children))
        elif isinstance(x, Token):
            if not isinstance(y, Token) or (x.type, x.value, x.line, x.column) != (y.type, y.value, y.line, y.column):
                return False
        elif x != y:
            return False
    return True


def _outcome(parser, text: str):
    from lark.exceptions import UnexpectedInput

    try:
        return parser.parse(text, start="start")
    except UnexpectedInput as exc:  # what the diagnostics are made of
        return (type(exc).__name__, exc.line, exc.column, sorted(getattr(exc, "expected", None) or
                                                               getattr(exc, "allowed", None) or []))


def test_the_shipped_parser_tables_parse_as_the_grammar_does():
    import hashlib

    from lark import Lark

    from nnspec import syntax

    stored = json.loads((ROOT / "grammar" / syntax.TABLES).read_text())
    grammar = syntax._grammar_text()
    assert stored["grammar_sha256"] == hashlib.sha256(grammar.encode()).hexdigest(), \
        "the grammar changed: run `python -m nnspec.syntax` to write its tables again"
    built, loaded = Lark(grammar, cache=False, **syntax.PARSER_OPTIONS), syntax.new_parser()
    texts = [p.read_text() for p in sorted([*ROOT.glob("specs/*.nn"), *ROOT.glob("tests/corpus/**/*.nn")])]
    assert len(texts) > 20
    for text in texts:
        for cut in (len(text), len(text) // 3, len(text) // 2 + 7):  # whole, and broken off mid-way
            a, b = _outcome(built, text[:cut]), _outcome(loaded, text[:cut])
            assert _same_tree(a, b) if not isinstance(a, tuple) else a == b


def test_a_grammar_edited_without_new_tables_is_built_from_its_text(monkeypatch):
    from lark import Lark

    from nnspec import syntax

    edited = syntax._grammar_text() + "\n// edited\n"
    monkeypatch.setattr(syntax, "_grammar_text", lambda: edited)
    monkeypatch.setattr(Lark, "_load_from_dict", None)  # the stale tables must not be used
    parser = syntax.new_parser()
    assert parser.parse((ROOT / "specs" / "mnist_mlp.nn").read_text(), start="start").data == "start"
