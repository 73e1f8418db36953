"""TimeDistributed over every layer kind that maps one tensor to one: against the numpy reference
(fused and in primitives), in training (the wrapped layer's moving statistics and dropout), and
refused clearly where a kind takes several tensors or makes several."""
import numpy as np
import pytest

from nnspec import api
from nnspec.errors import SpecError
from onnx_support import analysis_of, assert_close, compiled, model_of, random_weights, reference_outputs, run_onnx

# kind -> (input shape without the batch, the wrapped layer)
KINDS = {
    "Dense": ([3, 4], {"type": "Dense", "units": 2}),
    "Conv1D": ([3, 6, 2], {"type": "Conv1D", "filters": 2, "kernel_size": 3}),
    "Conv2D": ([3, 5, 5, 2], {"type": "Conv2D", "filters": 2, "kernel_size": 3, "padding": "same"}),
    "Conv3D": ([2, 4, 4, 4, 1], {"type": "Conv3D", "filters": 2, "kernel_size": 2}),
    "DepthwiseConv2D": ([3, 5, 5, 2], {"type": "DepthwiseConv2D", "kernel_size": 3}),
    "SeparableConv2D": ([3, 5, 5, 2], {"type": "SeparableConv2D", "filters": 3, "kernel_size": 3}),
    "Conv2DTranspose": ([3, 4, 4, 2], {"type": "Conv2DTranspose", "filters": 2, "kernel_size": 3, "strides": 2}),
    "MaxPooling2D": ([3, 4, 4, 2], {"type": "MaxPooling2D"}),
    "AveragePooling1D": ([3, 6, 2], {"type": "AveragePooling1D"}),
    "GlobalAveragePooling2D": ([3, 4, 4, 2], {"type": "GlobalAveragePooling2D"}),
    "GlobalMaxPooling1D": ([3, 6, 2], {"type": "GlobalMaxPooling1D"}),
    "BatchNormalization": ([3, 4], {"type": "BatchNormalization"}),
    "LayerNormalization": ([3, 4], {"type": "LayerNormalization"}),
    "Flatten": ([3, 2, 2], {"type": "Flatten"}),
    "Reshape": ([3, 4], {"type": "Reshape", "target_shape": [2, 2]}),
    "Dropout": ([3, 4], {"type": "Dropout", "rate": 0.5}),
    "Activation": ([3, 4], {"type": "Activation", "activation": "tanh"}),
    "ZeroPadding2D": ([3, 3, 3, 1], {"type": "ZeroPadding2D"}),
    "UpSampling2D": ([3, 2, 2, 1], {"type": "UpSampling2D"}),
    "Cropping1D": ([3, 5, 2], {"type": "Cropping1D"}),
    "RepeatVector": ([3, 4], {"type": "RepeatVector", "n": 2}),
    "LSTM": ([3, 4, 2], {"type": "LSTM", "units": 2}),
    "GRU_seq": ([3, 4, 2], {"type": "GRU", "units": 2, "return_sequences": True}),
    "Bidirectional": ([3, 4, 2], {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 2}}),
    "TimeDistributed": ([3, 2, 4], {"type": "TimeDistributed", "layer": {"type": "Dense", "units": 2}}),
    "Embedding": (([3, 4], "int32"), {"type": "Embedding", "input_dim": 5, "output_dim": 2}),
    "Masking": ([3, 4, 2], {"type": "Masking"}),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_time_distributed_matches_the_reference(kind):
    shape, inner = KINDS[kind]
    model = model_of([{"type": "TimeDistributed", "layer": inner}], shape)
    rng = np.random.default_rng(0)
    weights = random_weights(analysis_of(model), rng)
    if isinstance(shape[-1], str):
        x = [rng.integers(0, 5, (2, *shape[0])).astype(shape[1])]
    else:
        x = [rng.normal(size=(2, *shape)).astype(np.float32)]
    want = reference_outputs(model, weights, x)
    for fused in (True, False):
        assert_close(run_onnx(compiled(model, weights, fused), x), want)


@pytest.mark.parametrize("inner,message", [
    ({"type": "Add"}, "TimeDistributed wraps layers that take one tensor; Add takes 2 or more"),
    ({"type": "LSTM", "units": 2, "return_state": True}, "TimeDistributed wraps layers with a single output"),
])
def test_what_cannot_be_time_distributed_is_refused(inner, message):
    with pytest.raises(SpecError, match=message):
        compiled(model_of([{"type": "TimeDistributed", "layer": inner}], [3, 4, 2]), {})


def test_wrapped_batch_normalization_and_dropout_train(tmp_path):
    """The wrapped BatchNormalization's moving mean follows the batch mean over samples and steps
    (Keras's momentum rule); dropout inside TimeDistributed trains."""
    spec = tmp_path / "td.nn"
    spec.write_text("model td {\n  input x: float32[3, 4]\n  time_distributed(batch_norm(momentum=0.5))\n"
                    "  time_distributed(dropout(0.3))\n  time_distributed(dense(2))\n  flatten()\n  dense(1)\n}\n")
    model = api.load(spec)
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x = (3.0 + rng.normal(size=(8, 3, 4))).astype(np.float32)
    history = model.fit(x, rng.normal(size=(8, 1)).astype(np.float32), epochs=1, batch_size=8, shuffle=False,
                        verbose=0)
    assert np.isfinite(history.history["loss"][0])
    moving_mean = model.weights["time_distributed"][2]
    np.testing.assert_allclose(moving_mean, 0.5 * x.reshape(-1, 4).mean(axis=0), rtol=1e-5)
