"""The same model as .nn, JSON and YAML; the canonical formatter; robustness against any input."""
import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from nnspec.errors import SpecError
from nnspec.formatter import format_text
from nnspec.loader import dump_json, loads

from conftest import SPECS

NN = """\
model mlp {
  input x: float32[8]
  dense(16, activation=relu, kernel_regularizer=l2(1e-4))
  dropout(0.5)
  dense(3, activation=softmax)
}
train {
  loss categorical_crossentropy
  optimizer adam(lr=0.01)
  metrics [accuracy]
}
"""
DATA = {
    "name": "mlp",
    "inputs": [{"name": "x", "shape": [8]}],
    "layers": [
        {"type": "Dense", "units": 16, "activation": "relu", "kernel_regularizer": {"name": "l2", "l2": 1e-4}},
        {"type": "dropout", "rate": 0.5},
        {"type": "dense", "units": 3, "activation": "softmax"},
    ],
    "train": {"loss": "categorical_crossentropy", "optimizer": {"name": "adam", "lr": 0.01}, "metrics": ["accuracy"]},
}


def test_json_yaml_and_nn_give_the_same_ir():
    from_nn = loads(NN, "m.nn").model
    assert loads(json.dumps(DATA), "m.json").model == from_nn
    assert loads(yaml.safe_dump(DATA), "m.yaml").model == from_nn


def test_resolved_ir_reloads_to_itself():
    for path in SPECS:
        model = loads(path.read_text(), str(path)).model
        assert loads(dump_json(model), "resolved.json").model == model


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d["layers"][0].update(units=0), "mlp.json: layers[0].units: error: input should be greater than 0"),
    (lambda d: d["layers"][0].update(unitz=3), "layers[0].unitz: error: Dense() has no argument 'unitz'; did you mean 'units'?"),
    (lambda d: d["layers"][1].update(type="dropot"), "unknown layer 'dropot'; did you mean 'dropout'?"),
    (lambda d: d["train"].update(optimizer="adamm"), "train.optimizer: error: unknown optimizer 'adamm'"),
    (lambda d: d["layers"][2].update(inputs=["nope"]), "layers[2].inputs: error: unknown tensor 'nope'"),
    (lambda d: d["layers"][0].update(units=3, name="a", inputs=["b"]) or d["layers"][1].update(name="b", inputs=["a"]),
     "a cycle"),
    (lambda d: d.pop("inputs"), "inputs: error: missing required argument 'inputs'"),
])
def test_json_errors_name_the_json_path(mutate, fragment):
    data = json.loads(json.dumps(DATA))
    mutate(data)
    with pytest.raises(SpecError) as info:
        loads(json.dumps(data), "mlp.json")
    assert fragment in str(info.value)


def test_invalid_json_and_yaml_report_line_and_column():
    with pytest.raises(SpecError, match=r"^m.json:2:1: error: invalid JSON"):
        loads('{"a": 1,\n}', "m.json")
    with pytest.raises(SpecError, match=r"^m.yaml:\d+:\d+: error: invalid YAML"):
        loads("a: [1, 2\nb: 3", "m.yaml")
    with pytest.raises(SpecError, match="must be a mapping"):
        loads("[1, 2]", "m.json")


def test_yaml_never_constructs_objects():
    with pytest.raises(SpecError, match="invalid YAML"):
        loads("!!python/object/apply:os.system ['echo hi']", "m.yaml")


# ---- fmt --------------------------------------------------------------------------------------------------

MESSY = """# header comment
let   w=  4   # trailing on let
block  b( n ,act = relu ){dense(n,activation=act);dropout( 0.1 )}
model m{input x:float32[ 8 ] ;

   # before repeat
   repeat 2{ b(w) }   # after repeat
  h=dense(w)
  y = (h, x)->concatenate( )->dense(2)   # done
  output y
  # dangling
}
train{loss mse;optimizer sgd( lr = 1e-3 )   batch_size 8}
"""


def test_fmt_is_canonical_keeps_comments_and_is_idempotent():
    out = format_text(MESSY)
    assert out == """\
# header comment
let w = 4  # trailing on let

block b(n, act=relu) {
  dense(n, activation=act)
  dropout(0.1)
}

model m {
  input x: float32[8]

  # before repeat
  repeat 2 {
    b(w)
  }  # after repeat
  h = dense(w)
  y = (h, x) -> concatenate() -> dense(2)  # done
  output y
  # dangling
}

train {
  loss       mse
  optimizer  sgd(lr=1e-3)
  batch_size 8
}
"""
    assert format_text(out) == out
    assert loads(out, "m.nn").model == loads(MESSY, "m.nn").model


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_example_specs_are_formatted(path):
    assert format_text(path.read_text()) == path.read_text()


def test_fmt_keeps_expression_meaning():
    text = "let a = -(1 + 2) * 3 ** -1 - (4 - 5)\nlet b = 2\nmodel m {\n  input x: float32[a * -3 + 9]\n  lambda((x + 1) * (x - 1) / 2 ** 2)\n}\n"
    out = format_text(text)
    assert "let a = -(1 + 2) * 3 ** -1 - (4 - 5)" in out and "lambda((x + 1) * (x - 1) / 2 ** 2)" in out
    assert loads(out, "m.nn").model == loads(text, "m.nn").model


# ---- property tests ---------------------------------------------------------------------------------------

LAYER_LINES = st.sampled_from([
    "dense({n}, activation=relu)", "dropout(0.{n})", "dense({n})", "activation(tanh)", "layer_norm()",
    "batch_norm(momentum=0.9)", "gelu()", "dense({n}, use_bias=false, kernel_initializer=he_normal(seed={n}))",
    "lambda(x * {n} + 1)", "repeat {n} {{ dense(3); relu() }}", "activity_regularization(l1=1e-{n})",
])


@st.composite
def specs(draw):
    lines = [draw(LAYER_LINES).format(n=draw(st.integers(1, 9))) for _ in range(draw(st.integers(1, 6)))]
    comments = draw(st.lists(st.sampled_from(["# c", "", "#x y z"]), min_size=len(lines), max_size=len(lines)))
    sep = draw(st.sampled_from(["\n", "; ", "\n\n  "]))
    body = sep.join(f"{l}  {c}" if c.startswith("#") and sep == "\n" else l for l, c in zip(lines, comments))
    return f"model m {{ input x: float32[{draw(st.integers(1, 16))}]\n{body}\n}}\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_fmt_round_trips(text):
    out = format_text(text)
    assert format_text(out) == out
    assert loads(out, "m.nn").model == loads(text, "m.nn").model


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_spec_errors(data):
    try:
        loads(data.decode("utf-8", errors="replace"), "fuzz.nn")
    except SpecError:
        pass


TOKENS = ["model", "m", "{", "}", "(", ")", "[", "]", "input", "x", ":", "float32", "dense", "4", ",", "=",
          "->", "train", "loss", "mse", "repeat", "block", "let", "lambda", "-", "*", "1e-3", '"s"', "?", ";",
          "output", "add", "true", "None", "conv2d", "relu"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_token_soup_raises_only_spec_errors(tokens):
    for text in (" ".join(tokens), "model m { input x: float32[4]\n" + " ".join(tokens) + "\n}"):
        try:
            loads(text, "soup.nn")
        except SpecError:
            pass
        try:
            format_text(text)
        except SpecError:
            pass


SPEC_YAML = """\
name: mlp
inputs:
  - {name: x, shape: [8]}
layers:
  - type: Dense
    units: 16
    activation: relu
    kernel_regularizer: {name: l2, l2: 0.0001}
  - {type: dropout, rate: 0.5}
  - {type: dense, units: 3, activation: softmax}
train: {loss: categorical_crossentropy, optimizer: {name: adam, lr: 0.01}, metrics: [accuracy]}
"""


@pytest.mark.parametrize("name, text", [("spec.yaml", SPEC_YAML), ("spec.json", json.dumps(DATA))])
def test_fmt_rewrites_json_and_yaml_canonically(tmp_path, cli, name, text):
    (tmp_path / name).write_text(text)
    shown = cli("fmt", name, cwd=tmp_path)
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    parse = json.loads if name.endswith(".json") else yaml.safe_load
    assert parse(shown.stdout) == DATA  # same keys in the same order, same values
    assert list(parse(shown.stdout)) == list(DATA)
    assert cli("fmt", "--check", name, cwd=tmp_path).returncode == 1
    assert cli("fmt", "--write", name, cwd=tmp_path).returncode == 0
    assert (tmp_path / name).read_text() == shown.stdout
    assert cli("fmt", "--check", name, cwd=tmp_path).returncode == 0
    assert cli("check", name, cwd=tmp_path).returncode == 0


def test_fmt_json_opens_the_top_level_and_keeps_short_values_on_one_line(tmp_path, cli):
    (tmp_path / "s.json").write_text('{"name":"mlp","inputs":[{"name":"x","shape":[8]}],"layers":[{"type":"dense","units":3}]}')
    assert cli("fmt", "s.json", cwd=tmp_path).stdout == (
        '{\n  "name": "mlp",\n  "inputs": [{"name": "x", "shape": [8]}],\n  "layers": [{"type": "dense", "units": 3}]\n}\n')


def test_fmt_refuses_yaml_with_comments_in_one_line(tmp_path, cli):
    text = SPEC_YAML.replace("layers:\n", "layers:  # the stack\n")
    (tmp_path / "spec.yaml").write_text(text)
    result = cli("fmt", "--write", "spec.yaml", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert "spec.yaml: fmt does not rewrite YAML that holds comments" in result.stderr
    assert (tmp_path / "spec.yaml").read_text() == text


def test_yaml_data_source_written_as_text_trains(tmp_path, cli):
    """The issue's own line: `data: 'mnist("../tests/fixtures/mnist", stop=3000)'` in a spec in specs/."""
    from conftest import FIXTURES

    (tmp_path / "tests" / "fixtures").mkdir(parents=True)
    (tmp_path / "tests" / "fixtures" / "mnist").symlink_to(FIXTURES / "mnist")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "spec.yaml").write_text("""\
name: mlp
inputs: [{name: image, shape: [28, 28]}]
layers:
  - {type: flatten}
  - {type: dense, units: 10, activation: softmax}
train:
  loss: categorical_crossentropy
  optimizer: "adam(lr=0.01)"
  data: 'mnist("../tests/fixtures/mnist", stop=3000)'
  verbose: 0
""")
    result = cli("train", "specs/spec.yaml", "-o", "out.onnx", "--no-plot", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.onnx").exists() and json.loads((tmp_path / "out.history.json").read_text())["loss"]
    resolved = json.loads(cli("resolve", "specs/spec.yaml", cwd=tmp_path).stdout)
    assert resolved["train"]["data"]["stop"] == 3000 and resolved["train"]["optimizer"]["learning_rate"] == 0.01


def test_a_call_in_text_that_does_not_parse_names_its_place(tmp_path, cli):
    (tmp_path / "spec.yaml").write_text("inputs: [{shape: [4]}]\nlayers: [{type: dense, units: 1}]\n"
                                        "train: {data: 'mnist(\"d\", stop=)'}\n")
    result = cli("check", "spec.yaml", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("spec.yaml: train.data: error: ")
    assert len(result.stderr.splitlines()) == 1
