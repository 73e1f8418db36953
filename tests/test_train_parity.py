"""Training reproduces Keras `fit`: for every recorded trajectory in tests/fixtures/keras
(Keras 2 and 3), the loss at each step matches within 1e-4 relative."""
import json
from pathlib import Path

import numpy as np
import pytest

from nnspec.backends.keras.reader import load as read_keras
from nnspec.backends.onnx.step import OnnxStep
from nnspec.backends.onnx.training import build
from nnspec.data import Dataset
from nnspec.ir.training import TrainConfig
from nnspec.train.loop import Trainer
from onnx_support import analysis_of
from test_onnx_graph import keras_model

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
TRAJECTORIES = sorted(FIXTURES.glob("*.train.npz"))


def keras_training(path: Path) -> TrainConfig:
    settings = json.loads(path.with_suffix("").with_suffix(".train.json").read_text())
    return TrainConfig(loss=settings["loss"], optimizer={"name": settings["optimizer"], **settings["optimizer_config"]},
                       batch_size=settings["batch_size"], epochs=settings["epochs"], shuffle=settings["shuffle"])


@pytest.mark.parametrize("path", TRAJECTORIES, ids=lambda p: p.name.removesuffix(".train.npz"))
def test_loss_trajectory_matches_keras(path):
    name, version = path.name.split(".")[:2]
    keras = read_keras(FIXTURES / f"{name}.{version}.h5")
    weights = {layer.name: layer.weights for layer in keras.layers if layer.weights}
    analysis = analysis_of(keras_model(name))
    config = keras_training(path)
    record = np.load(path)
    xs = [record[k] for k in sorted(record.files) if k.startswith("x")]
    data = Dataset(xs, [record["y"]])
    graphs = build(analysis, config, weights, [(data.ys[0].shape[1:], str(data.ys[0].dtype))])
    history = Trainer(OnnxStep(graphs, weights, device="cpu", notice=False), config, verbose=0).fit(data)
    np.testing.assert_allclose(history.history["loss"], record["losses"], rtol=1e-4)
