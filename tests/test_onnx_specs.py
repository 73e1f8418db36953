"""Every example spec compiles to a valid ONNX model that predicts."""
from pathlib import Path

import numpy as np
import onnx
import pytest

import nnspec
from onnx_support import random_input

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.nn"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_spec_compiles_and_predicts(path):
    model = nnspec.load(path, seed=0, device="cpu")
    onnx.checker.check_model(model.onnx, full_check=True)
    rng = np.random.default_rng(0)
    inputs = [random_input(i.shape, i.dtype, rng, batch=4) for i in model.spec.model.inputs]
    outputs = model.predict(inputs, batch_size=3)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    for y, t in zip(outputs, model.spec.analysis.output_types):
        assert y.shape == (4, *[5 if d is None else d for d in t.shape])
        assert np.isfinite(y).all()
