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
from nnspec.loader import loads
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
    graphs = build(analysis, config, [(data.ys[0].shape[1:], str(data.ys[0].dtype))])
    history = Trainer(OnnxStep(graphs, weights, device="cpu", notice=False), config, verbose=0).fit(data)
    np.testing.assert_allclose(history.history["loss"], record["losses"], rtol=1e-4)


# tf_keras 2.x's Nadam multiplies its momentum product once per variable after the first step (a
# Python counter inside tf.function); Keras 3 fixed it, and nnspec follows Keras 3.
KERAS2_NADAM = pytest.mark.xfail(strict=True, reason="Keras 2's Nadam momentum-product bug is not replicated")
FORMULAS = [pytest.param(p, marks=KERAS2_NADAM) if p.stem == "nadam.k2" else p
            for p in sorted((FIXTURES.parent / "keras_train").glob("*.npz"))]


@pytest.mark.parametrize("path", FORMULAS, ids=lambda p: p.stem)
def test_every_optimizer_and_loss_matches_keras(path):
    """Keras 2 and 3 runs of every optimizer and loss (tests/fixtures/make_train_fixtures.py)."""
    record = np.load(path)
    cfg = json.loads(str(record["config"]))
    model = loads(json.dumps({
        "inputs": [{"name": "x", "shape": [6]}],
        "layers": [{"type": "Dense", "units": 8, "activation": "tanh",
                    "kernel_regularizer": {"name": "l1_l2", **cfg["regularizer"]}},
                   {"type": "Dense", "units": 3, "activation": cfg["activation"]}]}), "m.json")
    weights = {"dense": [record["w0"], record["w1"]], "dense_1": [record["w2"], record["w3"]]}
    config = TrainConfig(loss={"name": cfg["loss"], **cfg["loss_args"]},
                         optimizer={"name": cfg["optimizer"], **cfg["optimizer_args"]},
                         batch_size=16, epochs=5, shuffle=False)
    data = Dataset([record["x"]], [record["y"]])
    graphs = build(model.analysis, config, [(data.ys[0].shape[1:], str(data.ys[0].dtype))])
    history = Trainer(OnnxStep(graphs, weights, device="cpu", notice=False), config, verbose=0).fit(data)
    np.testing.assert_allclose(history.history["loss"], record["losses"], rtol=1e-4, atol=1e-6)
