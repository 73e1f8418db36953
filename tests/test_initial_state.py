"""Recurrent layers called with initial states (Keras's `initial_state`, encoder-decoders): the
spec language, the shape rule, ONNX (native initial_h/initial_c and the unrolled loop) against the
numpy reference, and training. Gradients: test_layer_gradients; Keras files: test_keras_apps_convert
and the catalog's encoder_decoder (test_keras_export, test_lift)."""
import json
from pathlib import Path

import numpy as np
import pytest

from nnspec import api
from nnspec.backends.keras import reader
from nnspec.backends.keras.importer import import_model
from nnspec.errors import SpecError
from onnx_support import analysis_of, assert_close, compiled, model_of, random_weights, reference_outputs, run_onnx

FIX = Path(__file__).parent / "fixtures" / "keras_apps"
ENCODER_DECODER = """
model encdec {
  input source: float32[6, 3]
  input target: float32[5, 4]
  enc, h, c = lstm(source, 8, return_state=true)
  seq = lstm(target, h, c, 8, return_sequences=true)
  out = dense(seq, 2)
  output out
}
"""

# (kind, options): the encoder returns its states and the decoder starts from them
ENCODERS = [("SimpleRNN", {}), ("GRU", {"reset_after": False}), ("GRU", {"go_backwards": True}),
            ("LSTM", {}), ("LSTM", {"go_backwards": True, "activation": "selu"})]  # selu: unrolled even fused


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "primitives"])
@pytest.mark.parametrize("kind,options", ENCODERS, ids=[f"{k}{o}" for k, o in ENCODERS])
def test_decoder_starts_from_the_encoders_states(kind, options, fused):
    states = ["enc:1", "enc:2"] if kind == "LSTM" else ["enc:1"]
    layers = [{"type": kind, "name": "enc", "units": 3, "return_state": True, "inputs": ["x0"]},
              {"type": kind, "name": "dec", "units": 3, "return_sequences": True, "return_state": True,
               "inputs": ["x1", *states], **options}]
    model = model_of(layers, (4, 2), (5, 3), outputs=["dec", *[s.replace("enc", "dec") for s in states]])
    rng = np.random.default_rng(7)
    weights = random_weights(analysis_of(model), rng)
    xs = [rng.normal(size=(3, 4, 2)).astype(np.float32), rng.normal(size=(3, 5, 3)).astype(np.float32)]
    want = reference_outputs(model, weights, xs)
    assert_close(run_onnx(compiled(model, weights, fused), xs), want)
    # the states matter: starting from zeros gives other outputs
    cold = model_of([layers[0], {**layers[1], "inputs": ["x1"]}], (4, 2), (5, 3), outputs=["dec", "enc"])
    assert np.abs(run_onnx(compiled(cold, weights, fused), xs)[0] - want[0]).max() > 1e-3


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "primitives"])
@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_bidirectional_states_go_to_each_direction(kind, fused):
    n = 2 if kind == "LSTM" else 1
    layers = [{"type": "Bidirectional", "name": "enc", "layer": {"type": kind, "units": 2, "return_state": True},
               "inputs": ["x"]},
              {"type": "Bidirectional", "name": "dec", "merge_mode": "concat", "inputs": ["x", *[f"enc:{k}" for k in
                                                                                              range(1, 2 * n + 1)]],
               "layer": {"type": kind, "units": 2, "return_sequences": True}}]
    model = model_of(layers, (4, 3), outputs=["dec"])
    rng = np.random.default_rng(8)
    weights = random_weights(analysis_of(model), rng)
    x = [rng.normal(size=(2, 4, 3)).astype(np.float32)]
    assert_close(run_onnx(compiled(model, weights, fused), x), reference_outputs(model, weights, x))


@pytest.mark.parametrize("layers,message", [
    ([{"type": "LSTM", "name": "enc", "units": 4, "return_state": True, "inputs": ["x"]},
      {"type": "LSTM", "name": "dec", "units": 3, "inputs": ["x", "enc:1", "enc:2"]}],
     "LSTM's initial state must be (None, 3) (its units), got (None, 4)"),
    ([{"type": "LSTM", "name": "enc", "units": 3, "return_state": True, "inputs": ["x"]},
      {"type": "LSTM", "name": "dec", "units": 3, "inputs": ["x", "enc:1"]}],
     "LSTM takes 2 initial state tensor(s), got 1"),
    ([{"type": "GRU", "name": "enc", "units": 3, "return_state": True, "inputs": ["x"]},
      {"type": "GRU", "name": "dec", "units": 3, "inputs": ["x", "enc:1", "enc"]}],
     "GRU takes 1 to 2 input tensor(s), got 3"),
    ([{"type": "GRU", "name": "enc", "units": 3, "return_state": True, "inputs": ["x"]},
      {"type": "Bidirectional", "name": "dec", "layer": {"type": "GRU", "units": 3}, "inputs": ["x", "enc:1"]}],
     "Bidirectional(GRU) takes 2 initial state tensor(s) (forward, then backward), got 1"),
])
def test_wrong_initial_states_are_refused(layers, message):
    with pytest.raises(SpecError) as info:
        compiled(model_of(layers, (4, 2), outputs=[layers[-1]["name"]]), {})
    assert message in str(info.value)


def test_encoder_decoder_spec_trains(tmp_path):
    """The spec language's encoder-decoder trains: the loss falls over a few steps."""
    spec_path = tmp_path / "encdec.nn"
    spec_path.write_text(ENCODER_DECODER)
    model = api.load(spec_path)
    layer = next(l for l in model.spec.model.layers if l.name == "seq")
    assert layer.inputs == ["target", "enc:1", "enc:2"]
    rng = np.random.default_rng(0)
    source = rng.normal(size=(32, 6, 3)).astype(np.float32)
    target = rng.normal(size=(32, 5, 4)).astype(np.float32)
    y = np.repeat(source[:, :1, :2], 5, axis=1)  # the answer is in the source only: it must pass through the states
    model.compile(optimizer="adam(learning_rate=0.02)", loss="mse")
    history = model.fit([source, target], y, epochs=8, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses


def test_keras2_initial_state_in_inbound_kwargs(tmp_path):
    """tf.keras may keep a call's initial_state in the inbound node's kwargs rather than as extra
    inbound tensors: both read the same."""
    doc = json.loads((FIX / "lstm_initial_state.k2.json").read_text())
    decoder = next(l for l in doc["config"]["layers"] if l["name"] == "decoder_lstm")
    sequence, *states = decoder["inbound_nodes"][0]
    decoder["inbound_nodes"] = [[[*sequence[:3], {"initial_state": [s[:3] for s in states]}]]]
    path = tmp_path / "kwargs.json"
    path.write_text(json.dumps(doc))
    imported = import_model(reader.load(path, FIX / "lstm_initial_state.k2.weights.h5"))
    assert next(l for l in imported.model.layers if l.name == "decoder_lstm").inputs == [
        "decoder", "encoder_lstm:1", "encoder_lstm:2"]
    io = np.load(FIX / "lstm_initial_state.k2.io.npz")
    assert_close(run_onnx(compiled(imported.model, imported.weights), [io["x0"], io["x1"]]), [io["y0"]])
