"""`nnspec schema` describes exactly the JSON/YAML specs that `nnspec check` accepts, checked with a
real JSON Schema validator on every example spec and on the short forms people write by hand."""
import json
import re

import jsonschema
import pytest
import yaml

from conftest import ROOT, SPECS, run_cli

README_JSON = json.loads(re.search(r"```json\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1))
INPUTS = [{"name": "x", "shape": [8]}]
SHORT_FORMS = [
    README_JSON,
    {"inputs": INPUTS, "layers": [{"type": "dense", "units": 3, "activation": "relu"}]},
    {"inputs": INPUTS, "layers": [{"type": "Dense", "units": 3, "kernel_initializer": "GlorotUniform",
                                   "kernel_regularizer": {"name": "l2", "l2": 1e-4}}]},
    {"inputs": INPUTS, "layers": [{"class_name": "Dense", "config": {"units": 3}}, "flatten"]},
    {"inputs": INPUTS, "layers": [{"type": "dense", "units": 1, "activation": "leaky_relu"}],
     "train": {"loss": "mse", "optimizer": {"name": "adam", "lr": 0.01}, "metrics": ["mae"]}},
    {"inputs": INPUTS, "layers": [{"type": "dense", "units": 2, "activation": "softmax"}],
     "train": {"loss": "categorical_crossentropy(label_smoothing=0.1)", "optimizer": "adam(lr=0.01)",
               "data": 'mnist("../tests/fixtures/mnist", stop=3000)', "callbacks": ["terminate_on_nan"]}},
    {"inputs": [{"name": "seq", "shape": [5, 2]}], "layers": [{"type": "lstm", "units": 4, "activation": "tanh"}]},
]
REJECTED = [
    {"inputs": INPUTS, "layers": [{"type": "dense", "unitz": 3}]},
    {"inputs": INPUTS, "layers": [{"type": "dense", "units": "three"}]},
    {"inputs": INPUTS, "layers": [{"type": "dens", "units": 3}]},
    {"inputs": INPUTS, "layers": [{"type": "dense", "units": 3, "activation": "relux"}]},
    {"inputs": INPUTS, "layers": [{"type": "dense", "units": 3}], "train": {"los": "mse"}},
    {"layers": [{"type": "dense", "units": 3}]},
]


@pytest.fixture(scope="module")
def validator():
    result = run_cli("schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(validator, spec):
    return [f"{e.json_path}: {e.message[:200]}" for e in validator.iter_errors(spec)]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_example_spec_resolved_as_json_and_yaml_validates(validator, tmp_path, path):
    resolved = run_cli("resolve", path)
    assert resolved.returncode == 0, resolved.stderr
    as_json = json.loads(resolved.stdout)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(as_json, sort_keys=False))
    as_yaml = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    assert problems(validator, as_json) == [] and problems(validator, as_yaml) == []
    assert run_cli("check", tmp_path / "spec.yaml").returncode == 0


@pytest.mark.parametrize("spec", SHORT_FORMS)
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_short_forms_that_check_accepts_validate(validator, tmp_path, spec, suffix):
    path = tmp_path / f"spec{suffix}"
    path.write_text(json.dumps(spec) if suffix == ".json" else yaml.safe_dump(spec))
    checked = run_cli("check", path)
    assert checked.returncode == 0, checked.stderr
    assert problems(validator, spec) == []


@pytest.mark.parametrize("spec", REJECTED)
def test_specs_that_check_refuses_do_not_validate(validator, tmp_path, spec):
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert run_cli("check", tmp_path / "spec.json").returncode == 2
    assert problems(validator, spec) != []
