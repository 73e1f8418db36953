"""Conversion errors name the Keras layer they are about, by its name and class (`layer 'conv2d_3'
(Conv2D)`), inside nested models and for op layers too, never `layers[N]` of the converted model."""
import json
from pathlib import Path

import pytest

from nnspec.cli import main

FIX = Path(__file__).parent / "fixtures" / "keras_apps"


def _edited(name: str, edit, tmp_path: Path) -> Path:
    doc = json.loads((FIX / name).read_text())
    edit(doc)
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _configs(doc):
    """Every layer entry, nested models' included."""
    for entry in doc["config"]["layers"]:
        yield entry
        if isinstance(entry["config"].get("layers"), list):
            yield from _configs(entry)


def _named(doc, name):
    return next(e for e in _configs(doc) if e["config"]["name"] == name)


def _history(entry, k):
    return entry["inbound_nodes"][0]["args"][k]["config"]["keras_history"]


def _too_wide_nested_conv(doc):  # a valid-padded 200x200 window in the nested base
    _named(doc, "conv2d_3")["config"].update(kernel_size=[200, 200], padding="valid")


def _op_layer_mismatch(doc):  # Keras 3 op layers: (None, 6) * (None, 5)
    _history(_named(doc, "subtract_1"), 0)[0] = "tokens"
    _history(_named(doc, "multiply_2"), 1)[0] = "subtract_1"


def _decoder_units(doc):  # initial states of 8 units for a decoder of 5
    _named(doc, "decoder_lstm")["config"]["units"] = 5


@pytest.mark.parametrize("fixture,edit,message", [
    ("transfer_sgd.k3.json", _too_wide_nested_conv,
     "layer 'base/conv2d_3' (Conv2D): error: as converted: a window of 200 does not fit an input of size"),
    ("op_layers.k3.json", _op_layer_mismatch,
     "layer 'multiply_2' (Multiply): error: as converted: Multiply needs inputs of one shape"),
    ("lstm_initial_state.k3.json", _decoder_units,
     "layer 'decoder_lstm' (LSTM): error: as converted: LSTM's initial state must be (None, 5) (its units), "
     "got (None, 8)"),
])
def test_conversion_errors_name_the_keras_layer(fixture, edit, message, tmp_path, capsys):
    path = _edited(fixture, edit, tmp_path)
    assert main(["convert", str(path), str(tmp_path / "out.onnx")]) == 2
    err = capsys.readouterr().err
    assert message in err and "layers[" not in err and "Traceback" not in err
    assert not (tmp_path / "out.onnx").exists()


def _tf_op_mismatch(doc):  # Keras 2 TFOpLambda: (None, 6) * a bool (None, 5)
    _named(doc, "tf.math.multiply_1")["inbound_nodes"][0][3]["y"] = ["tf.math.not_equal", 0, 0]


def test_keras2_op_layers_name_their_tf_function(tmp_path, capsys):
    """tf.keras's to_json gives TFOpLambda a module: still an op layer, read or named as one."""
    assert main(["convert", str(FIX / "op_layers.k2.json"), str(tmp_path / "ok.nn")]) == 0
    path = _edited("op_layers.k2.json", _tf_op_mismatch, tmp_path)
    assert main(["convert", str(path), str(tmp_path / "out.nn")]) == 2
    assert "layer 'tf.math.multiply_1' (TFOpLambda): error: as converted:" in capsys.readouterr().err
