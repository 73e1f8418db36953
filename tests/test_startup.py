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
