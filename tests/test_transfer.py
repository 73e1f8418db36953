"""Transfer learning as Keras does it, against `fit` trajectories written by real Keras 2 and 3
(tests/fixtures/keras_apps/transfer_*): a convnet base nested as a frozen layer
(`trainable=False`, its BatchNormalization in inference mode) under a new Dense head. nnspec
trains the Keras file and must report Keras's losses and end with Keras's weights: the base's
untouched, bit for bit."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from convert_support import flat_layers
from nnspec.backends.keras import reader

FIX = Path(__file__).parent / "fixtures" / "keras_apps"


def _optimizer(meta: dict) -> str:
    args = ", ".join(f"{k}={v}" for k, v in meta["optimizer_config"].items())
    return f"{meta['optimizer'].lower()}({args})"


@pytest.mark.parametrize("version", ["k2", "k3"])
@pytest.mark.parametrize("name", ["transfer_sgd", "transfer_adam"])
def test_frozen_base_trains_like_keras_fit(name, version, tmp_path):
    source = FIX / (f"{name}.{version}.h5" if version == "k2" else f"{name}.{version}.keras")
    run = np.load(FIX / f"{name}.{version}.train.npz")
    meta = json.loads((FIX / f"{name}.{version}.train.json").read_text())
    np.savez(tmp_path / "data.npz", x=run["x0"], y=run["y"])
    result = run_cli("train", source, "--data", tmp_path / "data.npz", "--loss", meta["loss"],
                     "--optimizer", _optimizer(meta), "--batch-size", meta["batch_size"], "--epochs", meta["epochs"],
                     "--no-shuffle", "--verbose", "0", "--no-plot", "-o", tmp_path / "t.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    losses = json.loads((tmp_path / "t.history.json").read_text())["loss"]
    np.testing.assert_allclose(losses, run["losses"], rtol=1e-4)

    trained = np.load(tmp_path / "t.npz")
    before = {layer.name: layer.weights for layer in flat_layers(reader.load(source)) if layer.weights}
    finals = [run[k] for k in sorted((k for k in run.files if k.startswith("final")), key=lambda k: int(k[5:]))]
    arrays = [trained[k] for k in trained.files]
    assert len(arrays) == len(finals)
    for got, want in zip(arrays, finals):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    frozen = [w for name_, ws in before.items() if name_ != "head" for w in ws]
    for got, want in zip(arrays, frozen):  # the base comes first in Keras's get_weights() order
        assert got.tobytes() == np.asarray(want, np.float32).tobytes()

