"""Models written as .nn text: formatted, read like a person wrote them (a stack for chains,
named tensors for graphs, no defaults, names only where nnspec would not give them), and read
back to the same model."""
import pytest

from convert_support import CATALOG, catalog_model, fixture
from nnspec.backends.keras.importer import load
from nnspec.formatter import format_text
from nnspec.ir.model import Model
from nnspec.ir.training import TrainConfig
from nnspec.loader import dump_json, loads
from nnspec.writer import write_nn


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_written_specs_read_back_to_the_same_model(name):
    model = catalog_model(name)
    text = write_nn(model)
    assert format_text(text) == text
    assert dump_json(loads(text, "m.nn").model) == dump_json(model)


def test_a_chain_reads_as_a_stack():
    text = write_nn(load(fixture("cnn_mnist.k3.keras")).model, ["converted from cnn_mnist.k3.keras"])
    assert text == """\
# converted from cnn_mnist.k3.keras
model sequential_2 {
  input input_layer_2: float32[28, 28, 1]
  conv2d(8, 3, activation=relu)
  conv2d(16, 3, activation=relu)
  max_pooling2d()
  dropout(0.25, name="dropout_2")
  flatten()
  dense(32, activation=relu, name="dense_5")
  dropout(0.5, name="dropout_3")
  dense(10, activation=softmax, name="dense_6")
}
"""


def test_a_graph_reads_as_named_tensors():
    assert write_nn(load(fixture("functional_residual.k2.h5")).model) == """\
model residual {
  input features: float32[12]
  h1 = dense(features, 16, activation=relu)
  h2 = dense(h1, 16, activation=relu)
  skip = add(h1, h2)
  cat = concatenate(skip, features)
  probs = dense(4, activation=softmax)
}
"""


def test_states_are_unpacked_and_outputs_listed():
    text = write_nn(catalog_model("shapes"))
    assert "lstm, lstm_state1, lstm_state2 = lstm(2, return_state=true)" in text
    assert "from_c = dense(lstm_state2, 2)" in text and text.rstrip().endswith("output sum, lstm_state1\n}")


def test_activation_layers_wrappers_and_arguments():
    text = write_nn(catalog_model("activations")) + write_nn(catalog_model("wrappers"))
    for line in ("dense(8, activation=leaky_relu(0.1))", "leaky_relu(0.3)", "relu6()",
                 "bidirectional(lstm(3, return_sequences=true))", "time_distributed(dense(2))"):
        assert line in text


def test_names_that_are_not_identifiers_are_kept_as_names():
    model = Model.model_validate({
        "name": "my-model", "inputs": [{"name": "in-put", "shape": [3]}],
        "layers": [{"type": "Dense", "name": "dense-1", "units": 2, "inputs": ["in-put"]},
                   {"type": "Dense", "name": "model", "units": 2, "inputs": ["in-put"]},
                   {"type": "Add", "name": "sum", "inputs": ["dense-1", "model"]}]})
    back = loads(write_nn(model), "m.nn").model
    assert back.name == "my_model" and back.inputs[0].name == "in_put"
    assert [l.name for l in back.layers] == ["dense-1", "model", "sum"]


def test_keras_floats_read_as_written_and_training_settings():
    model = load(fixture("mlp_dropout_l2.k2.h5")).model  # Keras 2 stored l2(1e-3) as float32
    model.train = TrainConfig.model_validate({
        "loss": "categorical_crossentropy", "metrics": ["accuracy"],
        "optimizer": {"name": "adam", "learning_rate": 0.0010000000474974513}, "epochs": 3})
    text = write_nn(model)
    assert "kernel_regularizer=l2(0.001)" in text
    assert ("  loss      categorical_crossentropy\n  metrics   [accuracy]\n  optimizer adam(0.001)\n"
            "  epochs    3\n") in text
