"""Never a traceback, never a hang: specs generated from the grammar and mutated example specs go through
`nnspec check` and `compile`, and mutated real data and model files through `predict` and `convert`, each
in a worker capped in time and memory (fuzz_worker.py). Every case must exit 0 or 2 with a message.

The `ci` variants run a few hundred cases with a fixed seed; `pytest -m fuzz` runs the long ones.
Reproducers (from issue 15 and from fuzzing) live in tests/corpus/ and are checked on every run."""
from __future__ import annotations

import io
import json
import re
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fuzz_worker import Worker

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
SPECS = sorted((ROOT / "specs").glob("*.nn"))
KERAS = ROOT / "tests" / "fixtures" / "keras"
CI_CASES, LONG_CASES = 120, 3000
SIZES = [pytest.param(CI_CASES, id="ci"), pytest.param(LONG_CASES, id="long", marks=pytest.mark.fuzz)]


@pytest.fixture(scope="module")
def worker():
    w = Worker()
    yield w
    w.close()


def fuzz(examples: int):
    return settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))


def assert_contract(outcomes, case: str) -> None:
    for outcome in outcomes:
        problem = outcome.failure()
        assert problem is None, f"{problem}: nnspec {' '.join(outcome.argv)}\ncase: {case[:2000]!r}\n{outcome.output}"


def check_and_compile(worker: Worker, data: bytes, name: str = "case.nn"):
    return worker.run([["check", name], ["compile", name, "-o", "case.onnx"]], {name: data})


# ---- specs from the grammar ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def grammar():
    """The grammar's rules (nonterminal -> expansions) and terminals, and how short each symbol can get."""
    from lark import Lark

    from nnspec.syntax import _grammar_text

    lark = Lark(_grammar_text(), parser="lalr", start="start")
    rules = defaultdict(list)
    for rule in lark.rules:
        rules[rule.origin.name].append([s.name for s in rule.expansion])
    terminals = {t.name: t.pattern for t in lark.terminals}
    height = {name: 0 for name in terminals}
    changed = True
    while changed:  # the least depth at which each rule can end: expansions past the budget take it
        changed = False
        for name, expansions in rules.items():
            best = min((1 + max((height.get(s, 10**9) for s in e), default=0) for e in expansions))
            if best < height.get(name, 10**9):
                height[name], changed = best, True
    return dict(rules), terminals, height


def _vocabulary() -> list[str]:
    from nnspec.ir.functions import ACTIVATIONS
    from nnspec.ir.layers import LAYERS
    from nnspec.ir.training import LOSSES, OPTIMIZERS, TrainConfig

    words = set(LAYERS.names) | set(ACTIVATIONS.names) | set(LOSSES.names) | set(OPTIMIZERS.names)
    return sorted(words | set(TrainConfig.model_fields) | {"x", "h", "a", "b", "inputs", "float32", "int32",
                                                           "units", "activation", "choice", "int_range", "optional"})


SMALL = st.sampled_from(["1", "2", "3", "4", "8", "16", "0.5", "1e-3", "0", "2.5e2", "0x1F", "1_000"])
NUMBERS = st.one_of(SMALL, st.integers(0, 4096).map(str))  # huge numbers come from the mutations below


@st.composite
def from_rule(draw, symbol: str, budget: int = 7) -> str:
    """Text of grammar rule `symbol`: expansions chosen by hypothesis, the shortest way out past `budget`."""
    rules, terminals, height = grammar()
    names = st.sampled_from(_vocabulary())
    strings = st.sampled_from(['"a"', "'relu'", '"x"', '""', '"' + "s" * 50 + '"'])
    tokens, stack = [], [(symbol, 0)]
    while stack:
        symbol, depth = stack.pop()
        if symbol in terminals:
            if symbol == "NAME":
                tokens.append(draw(names))
            elif symbol == "NUMBER":
                tokens.append(draw(NUMBERS))
            elif symbol == "STRING":
                tokens.append(draw(strings))
            elif symbol in ("TRUE", "FALSE", "NONE"):
                tokens.append(symbol.lower())
            else:
                tokens.append(terminals[symbol].value)
            continue
        expansions = rules[symbol]
        if depth >= budget or len(tokens) > 100:
            expansion = min(expansions, key=lambda e: max((height.get(s, 0) for s in e), default=0))
        else:
            expansion = expansions[draw(st.integers(0, len(expansions) - 1))]
        stack.extend((s, depth + 1) for s in reversed(expansion))
    return " ".join(tokens)


@st.composite
def grammar_specs(draw) -> str:
    """Mostly the shape of a real spec (lets and blocks, a model with an input, a train section), its
    parts generated from the grammar's rules; sometimes a whole `start` drawn from the grammar alone."""
    if draw(st.integers(0, 9)) == 0:
        return draw(from_rule("start"))
    head = draw(st.lists(st.one_of(from_rule("let_stmt"), from_rule("block_def")), max_size=3))
    dims = ", ".join(draw(st.lists(st.one_of(SMALL, st.just("?")), min_size=1, max_size=3)))
    body = draw(st.lists(from_rule("stmt"), min_size=1, max_size=6))
    train = [draw(from_rule("train_def"))] if draw(st.booleans()) else []
    return "\n".join([*head, f"model m {{\n input x: float32[{dims}]", *body, "}", *train])


@pytest.mark.parametrize("examples", SIZES)
def test_specs_from_the_grammar(worker, examples):
    @fuzz(examples)
    @given(grammar_specs())
    def case(text):
        assert_contract(check_and_compile(worker, text.encode()), text)

    case()


# ---- mutated example specs ---------------------------------------------------------------------------

HUGE = ["9" * 5000, "1e999", "9 ** 9 ** 9", "2 ** 100000", "10 ** 12", "0x" + "f" * 300, "-0", "1e308",
        "int_range(1, 10 ** 12)", "(-8) ** 0.5", "1 / 0"]


@st.composite
def mutated_specs(draw) -> bytes:
    data = draw(st.sampled_from(SPECS)).read_bytes()
    kind = draw(st.sampled_from(["flip", "truncate", "duplicate", "delete", "number", "nest"]))
    lines = data.split(b"\n")
    if kind == "flip":
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if kind in ("duplicate", "delete"):
        i = draw(st.integers(0, len(lines) - 1))
        times = draw(st.sampled_from([1, 2, 50])) if kind == "duplicate" else 0
        return b"\n".join(lines[:i] + [lines[i]] * (times + 1) + lines[i + 1:])
    numbers = [m.span() for m in re.finditer(rb"(?<![\w.])\d+(\.\d+)?(?![\w.])", data)]
    if not numbers:
        return data
    start, end = numbers[draw(st.integers(0, len(numbers) - 1))]
    if kind == "number":
        new = draw(st.sampled_from(HUGE)).encode()
    else:
        n = draw(st.sampled_from([50, 101, 500, 5000]))
        new = draw(st.sampled_from([b"(" * n + data[start:end] + b")" * n, b"-" * n + data[start:end],
                                    b"+".join([data[start:end]] * n)]))
    return data[:start] + new + data[end:]


@pytest.mark.parametrize("examples", SIZES)
def test_mutated_example_specs(worker, examples):
    @fuzz(examples)
    @given(mutated_specs())
    def case(data):
        assert_contract(check_and_compile(worker, data), data.decode("utf-8", "replace"))

    case()


# ---- mutated data and model files ------------------------------------------------------------------------

def _mutate(draw, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["flip", "flips", "truncate", "zero", "empty"]))
    if kind == "empty" or not data:
        return b""
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    out = bytearray(data)
    for _ in range(1 if kind == "flip" else draw(st.integers(2, 20))):
        at = draw(st.integers(0, len(out) - 1))
        out[at] = 0 if kind == "zero" else draw(st.integers(0, 255))
    return bytes(out)


def _data_files(folder: Path) -> dict[str, bytes]:
    """Real files of every data format nnspec reads, written by NumPy, h5py, Pillow and MNIST."""
    import h5py
    from PIL import Image

    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2])
    np.save(folder / "x.npy", x)
    np.savez(folder / "d.npz", x=x, y=y)
    (folder / "d.csv").write_text("a,b,c,d,label\n" + "".join(",".join(map(str, r)) + f",{l}\n" for r, l in zip(x, y)))
    with h5py.File(folder / "d.h5", "w") as f:
        f["x"], f["y"] = x, y
    buffer = folder / "img.png"
    Image.fromarray((rng.random((4, 4, 3)) * 255).astype(np.uint8)).save(buffer)
    import gzip

    idx = gzip.open(ROOT / "tests" / "fixtures" / "mnist" / "t10k-images-idx3-ubyte.gz").read(16 + 784 * 4)
    header = idx[:4] + (4).to_bytes(4, "big") + idx[8:16]
    return {"x.npy": (folder / "x.npy").read_bytes(), "d.npz": (folder / "d.npz").read_bytes(),
            "d.csv": (folder / "d.csv").read_bytes(), "d.h5": (folder / "d.h5").read_bytes(),
            "img.png": buffer.read_bytes(), "images-idx3-ubyte": header + idx[16:]}


SPEC4 = b"model d { input x: float32[4]\n dense(3, activation=softmax) }\ntrain { loss sparse_categorical_crossentropy " \
        b"optimizer sgd epochs 1 batch_size 2 }\n"
SPEC_IMAGE = b"model i { input x: float32[4, 4, 3]\n flatten()\n dense(2, activation=softmax) }\n"
SPEC_MNIST = b"model m { input x: float32[28, 28]\n flatten()\n dense(10, activation=softmax) }\n"


def _data_commands(name: str) -> list[list[str]]:
    if name in ("x.npy", "d.npz", "d.csv"):
        commands = [["predict", "d.onnx", "-i", name, "-o", "p.npy"]]
        return commands + ([["train", "d.nn", "--data", name, "--verbose", "0", "--no-plot", "-o", "t/d.onnx"]]
                           if name != "x.npy" else [])
    if name == "d.h5":
        return [["predict", "d.onnx", "-i", "hdf5('d.h5', x=x, y=y)", "-o", "p.npy"]]
    if name == "img.png":
        return [["predict", "i.onnx", "-i", "folder", "-o", "p.npy"]]
    return [["predict", "m.onnx", "-i", "mnist_idx", "-o", "p.npy"]]


@pytest.fixture(scope="module")
def data_worker(worker, tmp_path_factory):
    files = _data_files(tmp_path_factory.mktemp("data"))
    setup = {"d.nn": SPEC4, "i.nn": SPEC_IMAGE, "m.nn": SPEC_MNIST}
    for out in worker.run([["compile", "d.nn", "-o", "d.onnx", "--seed", "0"], ["compile", "i.nn", "-o", "i.onnx"],
                           ["compile", "m.nn", "-o", "m.onnx"]], setup):
        assert out.code == 0, out.output
    return worker, files


def _place(name: str, data: bytes) -> dict[str, bytes]:
    """Where each format is read from: image folders and MNIST folders hold their file."""
    if name == "img.png":
        return {"folder/a/0.png": data, "folder/b/1.png": data}
    if name == "images-idx3-ubyte":
        return {"mnist_idx/t10k-images-idx3-ubyte": data}
    return {name: data}


@pytest.mark.parametrize("examples", SIZES)
def test_mutated_data_files(data_worker, examples):
    worker, files = data_worker
    for folder in ("folder/a", "folder/b", "mnist_idx", "t"):
        Path(worker.path(folder)).mkdir(parents=True, exist_ok=True)

    @fuzz(examples)
    @given(st.data())
    def case(draw):
        name = draw.draw(st.sampled_from(sorted(files)))
        data = _mutate(draw.draw, files[name])
        assert_contract(worker.run(_data_commands(name), _place(name, data)), f"{name}: {data[:200]!r}")

    case()


MODELS = {"m.h5": KERAS / "bn_mlp.k2.h5", "m.keras": KERAS / "bn_mlp.k3.keras", "m.json": KERAS / "bn_mlp.k2.json",
          "m.onnx": KERAS / "bn_mlp.tf2onnx.onnx"}


@pytest.mark.parametrize("examples", SIZES)
def test_mutated_model_files(worker, examples):
    """Keras files go through convert, then predict; an ONNX file through predict and convert."""
    originals = {name: path.read_bytes() for name, path in MODELS.items()}
    x = io.BytesIO()
    np.save(x, np.load(KERAS / "bn_mlp.k2.io.npz")["x0"])

    @fuzz(examples)
    @given(st.data())
    def case(draw):
        name = draw.draw(st.sampled_from(sorted(originals)))
        data = _mutate(draw.draw, originals[name])
        if name == "m.onnx":
            commands = [["predict", name, "-i", "x.npy", "-o", "p.npy"], ["convert", name, "out.nn"]]
        else:
            commands = [["convert", name, "out.onnx"], ["predict", "out.onnx", "-i", "x.npy", "-o", "p.npy"]]
        assert_contract(worker.run(commands, {name: data, "x.npy": x.getvalue()}), f"{name}: {len(data)} bytes")

    case()


# ---- the corpus: every reproducer, with the message it must give ---------------------------------------

@pytest.mark.parametrize("path", sorted((CORPUS / "specs").glob("*.nn")), ids=lambda p: p.name)
def test_spec_reproducers_give_their_message(worker, path):
    expect = path.read_text().splitlines()[0].removeprefix("# expect: ")
    outcomes = check_and_compile(worker, path.read_bytes(), path.name)
    assert_contract(outcomes, path.name)
    assert expect in outcomes[0].output, outcomes[0].output


def test_a_five_megabyte_string_is_refused_in_bounded_memory(worker):
    text = b'model m { input x: float32[4]\n dense(4, name="' + b"a" * 5_000_000 + b'") }\n'
    outcomes = worker.run([["check", "big.nn"]], {"big.nn": text})  # the worker's memory cap holds
    assert_contract(outcomes, "5 MB string")
    assert "the limit is 1,048,576" in outcomes[0].output


DATA_CASES = json.loads((CORPUS / "data" / "cases.json").read_text())


@pytest.mark.parametrize("case", DATA_CASES, ids=[c["id"] for c in DATA_CASES])
def test_data_reproducers_give_their_message(worker, case):
    folder = CORPUS / "data"
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "cases.json"}
    outcomes = worker.run([["compile", "c.nn", "-o", "c.onnx"], case["argv"]], files)
    assert_contract(outcomes, case["id"])
    assert outcomes[-1].code == 2 and case["expect"] in outcomes[-1].output, outcomes[-1].output
