"""Activity regularization in training adds Keras's term to the loss: the regularizer of the layer's
output (l1 * sum|h| + l2 * sum h^2 over the whole batch) divided by the batch's size, unweighted by
sample weights (Keras 2 and 3 alike: `add_loss(regularizer(output) / batch_size)`), for the
ActivityRegularization layer and for any layer's `activity_regularizer`."""
import numpy as np
import onnxruntime as ort
import pytest

from nnspec.backends.onnx.training import build
from nnspec.loader import loads
from nnspec.train.run import configure
from nnspec.weights import initial_weights

SPEC = """\
model activity {
  input x: float32[5]
  dense(4, activation=tanh, activity_regularizer=l1_l2(l1=0.03, l2=0.05))
  activity_regularization(l1=0.02, l2=0.01)
  dense(3, activity_regularizer=l2(0.04))
  dense(1)
}

train {
  loss       mse
  optimizer  sgd(learning_rate=0.1)
}
"""


def test_the_step_loss_holds_keras_activity_terms():
    spec = loads(SPEC)
    graphs = build(spec.analysis, configure(spec, {}), [((1,), "float32")])
    rng = np.random.default_rng(0)
    n = 6
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = rng.normal(size=(n, 1)).astype(np.float32)
    sample_weight = rng.uniform(0.5, 2.0, n).astype(np.float32)
    weights = initial_weights(spec.analysis, 0)
    feeds = {graphs.x_names[0]: x, graphs.y_names[0]: y, "sample_weight": sample_weight,
             "batch_size": np.array(n, np.float32), "learning_rate": np.array(0.1, np.float32),
             "iteration": np.array(1, np.float32)}
    feeds.update({p.name: np.asarray(weights[p.layer][p.index], np.float32) for p in graphs.params})
    feeds.update({k: np.asarray(v, np.float32) for k, v in graphs.slots.items()})
    session = ort.InferenceSession(graphs.train.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    loss = session.run(["loss"], {k: feeds[k] for k in wanted})[0]

    (k0, b0), (k1, b1), (k2, b2) = ([np.asarray(w, np.float64) for w in weights[name]]
                                    for name in ("dense", "dense_1", "dense_2"))
    h1 = np.tanh(x @ k0 + b0)
    h2 = h1 @ k1 + b1
    data_loss = np.sum(sample_weight * ((y - (h2 @ k2 + b2)) ** 2).mean(axis=1)) / n
    activity = (0.03 * np.abs(h1).sum() + 0.05 * (h1 ** 2).sum()  # dense's activity_regularizer
                + 0.02 * np.abs(h1).sum() + 0.01 * (h1 ** 2).sum()  # the ActivityRegularization layer
                + 0.04 * (h2 ** 2).sum()) / n
    assert activity > 0.05 * data_loss  # large enough that a missing or unscaled term shows
    assert float(loss) == pytest.approx(data_loss + activity, rel=1e-5)
