"""Search spaces in the .nn language: parameter names and places, defaults, points built as models and
as filled-in text, formatting, and the check that builds the model across the space."""
import itertools

import pytest

from nnspec.cli import main
from nnspec.errors import SpecError
from nnspec.formatter import format_text
from nnspec.frontend import materialize
from nnspec.loader import loads
from nnspec.tune.check import MAX_COMBINATIONS, points

SPACE = """\
let width = choice(32, 64)

block res(units, act=relu) {
  h = dense(units, activation=act)
  add(h, inputs)
}

model m {
  input x: float32[8]
  dense(width, activation=choice(relu, tanh))
  repeat int_range(0, 2) {
    dense(choice(8, 16))
    optional(dropout(uniform(0.1, 0.5)))
  }
  dense(width)
  res(width)
  y = dense(4) -> optional(dense(4, name="extra")) -> dense(3, activation=softmax)
  output y
}

train {
  loss      categorical_crossentropy
  optimizer adam(learning_rate=log_uniform(1e-4, 1e-2))
  callbacks [early_stopping(patience=int_range(1, 5))]
}
"""

# optional layers in every place a chain allows: its source, after an arrow, a statement of its own
# (with `;`), and reading a named tensor
CHAINS = """\
model c {
  input x: float32[4]
  optional(dense(4)) -> dense(4)
  h = dense(4) -> optional(dense(4, name="mid"))
  optional(dropout(0.2)); g = dense(4)
  k = optional(dense(h, 4, name="side"))
  y = add(g, k)
}
"""


def test_each_search_call_is_a_parameter_named_from_the_text():
    params = loads(SPACE, "s.nn").space.params
    assert {name: (p.location, p.dist.describe()) for name, p in params.items()} == {
        "width": ("1:13", "choice(32, 64)"),
        "dense.activation": ("10:27", "choice(relu, tanh)"),
        "dense_1.repeat": ("11:10", "int_range(0, 2)"),
        "dense_1.units": ("12:11", "choice(8, 16)"),  # named as Keras numbers layers, whatever the count
        "dropout.enabled": ("13:5", "optional"),
        "dropout.rate": ("13:22", "uniform(0.1, 0.5)"),
        "extra.enabled": ("17:19", "optional"),
        "optimizer.learning_rate": ("23:32", "log_uniform(0.0001, 0.01)"),
        "callbacks[0].patience": ("24:38", "int_range(1, 5)"),
    }


def test_a_search_spec_loads_at_its_defaults():
    model = loads(SPACE, "s.nn").model
    assert [(l.type, getattr(l, "units", None)) for l in model.layers] == [
        ("Dense", 32), ("Dense", 32), ("Dense", 32), ("Add", None), ("Dense", 4), ("Dense", 4), ("Dense", 3)]
    assert model.layers[0].activation.name == "relu"  # first choice; repeat 0 times: the low end
    assert model.train.optimizer.learning_rate == 1e-4 and model.train.callbacks[0].patience == 1


@pytest.mark.parametrize("point", [
    {},
    {"width": 64, "dense_1.repeat": 2, "dense_1.units": 16, "dropout.rate": 0.25, "extra.enabled": False,
     "optimizer.learning_rate": 0.00123, "dense.activation": "tanh"},
    {"dense_1.repeat": 1, "dropout.enabled": False, "callbacks[0].patience": 4},
])
def test_a_point_builds_the_model_its_filled_in_text_describes(point):
    space = loads(SPACE, "s.nn").space
    text = space.fill_in(point)
    plain = loads(text, "plain.nn")
    assert plain.space is None and format_text(text) == text
    assert plain.model == materialize(space, point)


def test_filled_in_text_at_a_point():
    space = loads(SPACE, "s.nn").space
    text = space.fill_in({"width": 64, "dense_1.repeat": 2, "dropout.enabled": False, "extra.enabled": False})
    assert "let width = 64\n" in text
    assert "  repeat 2 {\n    dense(8)\n  }\n" in text
    assert '  y = dense(4) -> dense(3, activation=softmax)\n' in text
    assert "adam(learning_rate=0.0001)" in text and "optional" not in text


def test_optional_layers_in_every_place_of_a_chain():
    space = loads(CHAINS, "c.nn").space
    names = list(space.params)
    assert names == ["dense.enabled", "mid.enabled", "dropout.enabled", "side.enabled"]
    for values in itertools.product((True, False), repeat=len(names)):
        point = dict(zip(names, values))
        assert loads(space.fill_in(point), "plain.nn").model == materialize(space, point)
    off = space.fill_in(dict.fromkeys(names, False))
    assert off == ("model c {\n  input x: float32[4]\n  dense(4)\n  h = dense(4)\n  g = dense(4)\n  k = h\n"
                   "  y = add(g, k)\n}\n")


def test_fmt_keeps_search_spaces_and_is_idempotent(tmp_path):
    assert format_text(SPACE) == SPACE
    messy = SPACE.replace("choice(32, 64)", "choice( 32,64 )").replace("int_range(0, 2) {", "int_range(0,2){")
    assert format_text(messy) == SPACE
    assert format_text(CHAINS) == CHAINS.replace("; g = dense(4)", "\n  g = dense(4)")


def test_a_spec_without_search_calls_has_no_space_and_uniform_initializers_keep_their_meaning():
    spec = loads("model m {\n  input x: float32[4]\n  dense(4, kernel_initializer=uniform(-0.1, 0.1))\n}\n", "m.nn")
    assert spec.space is None
    assert spec.model.layers[0].kernel_initializer.name == "random_uniform"  # Keras 2's alias, as before
    searched = loads("model m {\n  input x: float32[4]\n  dense(4, kernel_initializer=random_uniform("
                     "minval=uniform(-0.2, -0.1)))\n}\n", "m.nn")
    assert list(searched.space.params) == ["dense.kernel_initializer.minval"]


@pytest.mark.parametrize("body, where, fragment", [
    ("dense(choice())", "3:9", "choice() needs at least one option"),
    ("dense(choice(4, 4))", "3:9", "choice() lists 4 twice"),
    ("dense(int_range(4, 1))", "3:9", "int_range() needs low < high, got 4 and 1"),
    ("dense(int_range(1, 10, 4))", "3:9", "int_range(): 10 - 1 is not a multiple of the step 4"),
    ("dense(int_range(1, 4.5))", "3:9", "int_range() takes integers, got 4.5"),
    ("dropout(uniform(0.5))", "3:11", "uniform() takes uniform(low, high), got 1 argument(s)"),
    ("dropout(uniform(low, 0.5))", "3:11", "uniform() takes numbers, got 'low'"),
    ("dense(4, kernel_regularizer=l2(log_uniform(0, 1)))", "3:34", "log_uniform() needs low > 0, got 0"),
    ("dense(choice(4, int_range(1, 3)))", "3:19", "search spaces do not nest"),
    ("dense(choice(4, 8, key=1))", "3:22", "choice() takes no keyword arguments"),
    ("choice(4, 8)", "3:3", "choice() is a value, not a layer"),
    ("dense(optional(4))", "3:9", "optional() wraps a layer written as a statement"),
    ("optional(4)", "3:3", "optional() takes one layer"),
    ("optional(optional(dropout(0.1)))", "3:3", "optional() takes one layer"),
    ("h = optional(dense(4))", "3:7", "switched off, the name would go to the tensor before it"),
    ("a = dense(4)\n  optional(add(a, x))", "4:3", "optional() needs a layer that reads one tensor; this one reads 2"),
    ("optional(lstm(4, return_state=true))", "3:3", "optional() needs a layer that makes one tensor"),
    ("a = dense(4)\n  b = dense(x, choice(4, 8))\n  add(a, b)", "4:16",
     "with b.units = 8: 5:3: Add needs inputs of one shape (or sizes of 1, which broadcast), got (None, 4), (None, 8)"),
    ("dense(uniform(1, 8))", "3:9", "with dense.units = 4.5: 3:9: dense(): units: input should be a valid integer"),
    ("dense(1, activation=choice(sigmoid, relux))", "3:23", "unknown activation 'relux'"),
])
def test_a_bad_space_is_an_error_at_its_place(body, where, fragment):
    shape = "4, 3" if "lstm" in body else "4"
    text = f"model m {{\n  input x: float32[{shape}]\n  {body}\n}}\n"
    with pytest.raises(SpecError) as info:
        loads(text, "bad.nn")
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"bad.nn:{where}: error: ") and fragment in first, str(info.value)


@pytest.mark.parametrize("text, fragment", [
    ("model m {\n  input x: float32[choice(4, 8)]\n  flatten()\n}\n", "choice() belongs in an argument"),
    ("let a = choice(2, 3)\nmodel m {\n  input x: float32[4]\n  dense(int_range(1, a))\n}\n",
     "with a = 3: 4:9: a search space's options and bounds must not depend on other search parameters"),
    ("block choice(n) { dense(n) }\nmodel m {\n  input x: float32[4]\n  dense(2)\n}\n",
     "block 'choice' has the name of a search space"),
    ("model m {\n  input x: float32[4]\n  dense(1, activation=choice(sigmoid, softmax))\n}\n"
     "train {\n  loss choice(binary_crossentropy, categorical_crossentropy)\n}\n",
     "with loss = categorical_crossentropy: 6:8: categorical_crossentropy needs"),
])
def test_more_space_errors(text, fragment):
    with pytest.raises(SpecError) as info:
        loads(text, "bad.nn")
    assert fragment in str(info.value), str(info.value)


def test_a_point_outside_the_space_is_refused():
    space = loads(SPACE, "s.nn").space
    with pytest.raises(SpecError, match=r"s.nn:1:13: error: width = 48 is outside choice\(32, 64\)"):
        materialize(space, {"width": 48})
    with pytest.raises(SpecError, match="no search parameter 'widht'; did you mean 'width'"):
        space.fill_in({"widht": 32})


def test_grid_needs_finite_parameters():
    assert loads(CHAINS, "c.nn").space.grid()["side.enabled"] == [True, False]
    with pytest.raises(SpecError, match=r"s.nn:13:22: error: grid search needs finite parameters, and dropout.rate"):
        loads(SPACE, "s.nn").space.grid()


def test_check_builds_every_combination_of_a_small_space_and_each_value_of_a_large_one():
    small = loads(CHAINS, "c.nn").space
    assert len(list(points(small))) == 2 ** 4
    body = "\n".join(f"  optional(dropout(0.{i + 1}))" for i in range(9))  # 2 ** 9 > MAX_COMBINATIONS
    large = loads(f"model m {{\n  input x: float32[4]\n{body}\n}}\n", "m.nn").space
    assert 2 ** 9 > MAX_COMBINATIONS and len(list(points(large))) == 1 + 9


def test_check_and_summary_show_the_space(tmp_path, capsys):
    (tmp_path / "s.nn").write_text(SPACE)
    assert main(["check", str(tmp_path / "s.nn")]) == 0
    assert capsys.readouterr().out.endswith(
        "s.nn: ok (2,567 parameters at the defaults; search space of 9 parameters (continuous))\n")
    assert main(["summary", str(tmp_path / "s.nn")]) == 0
    out = capsys.readouterr().out.splitlines()
    table = out[out.index("Search space of 9 parameters (continuous)"):]
    assert table[1].split() == ["parameter", "at", "distribution", "default"]
    assert table[3].split() == ["width", "1:13", "choice(32,", "64)", "32"]
    assert table[-1].split() == ["callbacks[0].patience", "24:38", "int_range(1,", "5)", "1"]


def test_values_fill_in_wherever_they_stand_in_an_expression():
    space = loads("model m {\n  input x: float32[4]\n  dense(4, kernel_initializer=constant(2 ** uniform(-1, 1)), "
                  "activation=choice(relu, leaky_relu(0.1)))\n}\n", "m.nn").space
    point = {"dense.kernel_initializer.value": -0.5, "dense.activation": "leaky_relu(0.1)"}
    text = space.fill_in(point)
    assert "constant(2 ** -0.5), activation=leaky_relu(0.1))" in text
    model = loads(text, "plain.nn").model
    assert model == materialize(space, point) and model.layers[0].kernel_initializer.value == 2 ** -0.5
