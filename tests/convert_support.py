"""Shared by the conversion tests: the Keras fixtures, a catalog of IR models covering every
layer the converters handle, and comparisons of weights bit for bit."""
from pathlib import Path

import numpy as np

from nnspec.backends.keras import catalog, reader
from onnx_support import analysis_of, model_of, random_weights

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
MODELS = ["bn_mlp", "cnn_mnist", "conv1d_gap", "embed_lstm", "functional_residual", "gru_stack", "lstm_cosine",
          "mlp_dropout_l2", "mlp_sigmoid"]
VERSIONS = ["k2", "k3"]


def fixture(name: str) -> Path:
    return FIXTURES / name


def io(name: str, version: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    data = np.load(FIXTURES / f"{name}.{version}.io.npz")
    xs = sorted(k for k in data.files if k.startswith("x"))
    ys = sorted(k for k in data.files if k.startswith("y"))
    return [data[k] for k in xs], [data[k] for k in ys]


def keras_weights(path, weights_path=None) -> dict[str, list[np.ndarray]]:
    """{layer name: arrays} as the reader gives them (weightless layers left out)."""
    model = reader.load(path, weights_path)
    return {l.name: l.weights for l in model.layers if l.weights}


def flat_layers(model):
    """A Keras model's layers, those of the models nested in it in their place."""
    for layer in model.layers:
        if layer.class_name in catalog.MODEL_CLASSES:
            yield from flat_layers(layer.config["model"])
        else:
            yield layer


def assert_same_weights(got: dict, want: dict) -> None:
    """Same layers, same arrays: dtype, shape and every bit."""
    assert sorted(got) == sorted(want)
    for name in want:
        assert len(got[name]) == len(want[name]), name
        for a, b in zip(got[name], want[name]):
            a, b = np.asarray(a), np.asarray(b)
            assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name


# A catalog of models, as (input shapes, layers, outputs); layer fields are Keras config names.
def _dense(units, **kw):
    return {"type": "Dense", "units": units, **kw}


CATALOG = {
    "activations": ([[6]], [
        _dense(8, activation={"name": "leaky_relu", "alpha": 0.1}), _dense(8, activation={"name": "elu", "alpha": 0.5}),
        _dense(8, activation="exponential"), _dense(8, activation="selu"),
        {"type": "Activation", "activation": "softplus"}, {"type": "Activation", "activation": "relu6"},
        {"type": "Activation", "activation": "softsign"}, {"type": "Activation", "activation": "tanh"},
        {"type": "Activation", "activation": {"name": "leaky_relu", "alpha": 0.3}},
        _dense(3, activation="softmax")], None),
    "conv2d_bn": ([[8, 8, 3]], [
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same"}, {"type": "BatchNormalization"},
        {"type": "Activation", "activation": "relu"},
        {"type": "Conv2D", "filters": 4, "kernel_size": [3, 2], "strides": 2, "use_bias": False},
        {"type": "MaxPooling2D", "pool_size": 2, "padding": "same"}, {"type": "AveragePooling2D", "pool_size": [2, 1]},
        {"type": "GlobalMaxPooling2D"}, _dense(3)], None),
    "conv2d_gap": ([[6, 6, 2]], [
        {"type": "Conv2D", "filters": 3, "kernel_size": 2}, {"type": "GlobalAveragePooling2D"}, _dense(2)], None),
    "conv1d": ([[16, 3]], [
        {"type": "Conv1D", "filters": 4, "kernel_size": 3, "padding": "causal", "dilation_rate": 2},
        {"type": "Conv1D", "filters": 4, "kernel_size": 3, "padding": "same", "strides": 2, "activation": "tanh"},
        {"type": "MaxPooling1D", "pool_size": 2, "strides": 1}, {"type": "LayerNormalization", "epsilon": 1e-5},
        {"type": "AveragePooling1D", "pool_size": 2, "padding": "same"}, {"type": "GlobalAveragePooling1D"},
        _dense(2)], None),
    "separable2d": ([[9, 9, 3]], [
        {"type": "ZeroPadding2D", "padding": [[1, 0], [2, 1]]},
        {"type": "Conv2D", "filters": 4, "kernel_size": 3, "strides": 2, "use_bias": False},
        {"type": "DepthwiseConv2D", "kernel_size": 3, "padding": "same", "depth_multiplier": 2, "activation": "relu"},
        {"type": "SeparableConv2D", "filters": 3, "kernel_size": 2, "depth_multiplier": 2},
        {"type": "Cropping2D", "cropping": [[1, 0], [0, 1]]}, {"type": "GlobalAveragePooling2D"}, _dense(2)], None),
    "separable1d": ([[12, 2]], [
        {"type": "ZeroPadding1D", "padding": [2, 1]},
        {"type": "DepthwiseConv1D", "kernel_size": 3, "strides": 2, "use_bias": False},
        {"type": "SeparableConv1D", "filters": 3, "kernel_size": 2, "padding": "same", "activation": "tanh"},
        {"type": "Cropping1D", "cropping": [1, 2]}, {"type": "Flatten"}, _dense(2)], None),
    "conv3d": ([[5, 6, 4, 2]], [
        {"type": "ZeroPadding3D", "padding": [1, 0, 1]}, {"type": "Conv3D", "filters": 3, "kernel_size": 2},
        {"type": "Cropping3D", "cropping": [[1, 0], [0, 1], [0, 0]]}, {"type": "Flatten"},
        _dense(2)], None),
    "conv_transpose": ([[6, 5, 2]], [
        {"type": "Conv2D", "filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"},
        {"type": "Conv2DTranspose", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "same",
         "output_padding": [1, 0], "activation": "relu"},
        {"type": "Reshape", "target_shape": [30, 2]},
        {"type": "Conv1DTranspose", "filters": 2, "kernel_size": 4, "strides": 2, "use_bias": False},
        {"type": "Reshape", "target_shape": [2, 2, 31, 1]},
        {"type": "Conv3DTranspose", "filters": 1, "kernel_size": [1, 2, 2], "dilation_rate": [1, 1, 2]},
        {"type": "Flatten"}, _dense(2)], None),
    "resizing": ([[6, 5, 2]], [
        {"type": "UpSampling2D", "size": [2, 1]}, {"type": "Conv2D", "filters": 2, "kernel_size": 3},
        {"type": "UpSampling2D", "interpolation": "bilinear"}, {"type": "Resizing", "height": 7, "width": 5},
        {"type": "Resizing", "height": 4, "width": 4, "interpolation": "nearest", "crop_to_aspect_ratio": True},
        {"type": "CenterCrop", "height": 3, "width": 2}, {"type": "Reshape", "target_shape": [6, 2]},
        {"type": "UpSampling1D", "size": 2}, {"type": "Reshape", "target_shape": [3, 4, 2, 1]},
        {"type": "UpSampling3D", "size": [1, 2, 1]}, {"type": "Flatten"}, _dense(2)], None),
    "recurrent": ([[5, 4]], [
        {"type": "GRU", "units": 6, "reset_after": False, "return_sequences": True},
        {"type": "GRU", "units": 5, "return_sequences": True},
        {"type": "LSTM", "units": 5, "return_sequences": True},
        {"type": "SimpleRNN", "units": 3, "activation": "relu"}, _dense(2)], None),
    "graph": ([[6], [6]], [
        _dense(4, name="a", inputs=["x0"]), _dense(4, name="b", inputs=["x1"]),
        {"type": "Subtract", "name": "sub", "inputs": ["a", "b"]},
        {"type": "Multiply", "name": "mul", "inputs": ["a", "b"]},
        {"type": "Average", "name": "avg", "inputs": ["a", "b", "sub"]},
        {"type": "Maximum", "name": "hi", "inputs": ["avg", "mul"]},
        {"type": "Minimum", "name": "lo", "inputs": ["avg", "mul"]},
        {"type": "Concatenate", "name": "cat", "inputs": ["hi", "lo", "x0"]},
        _dense(3, name="out", activation="softmax", inputs=["cat"])], ["out", "avg"]),
    "shapes": ([[12]], [
        {"type": "Reshape", "target_shape": [3, 4]}, {"type": "Permute", "dims": [2, 1]}, {"type": "Flatten"},
        {"type": "RepeatVector", "n": 3},
        {"type": "LSTM", "name": "lstm", "units": 2, "return_state": True},
        _dense(2, name="from_c", inputs=["lstm:2"]), {"type": "Add", "name": "sum", "inputs": ["lstm", "from_c"]}],
        ["sum", "lstm:1"]),
    "embedding": ([([7], "int32")], [
        {"type": "Embedding", "input_dim": 20, "output_dim": 4}, {"type": "Conv1D", "filters": 3, "kernel_size": 2},
        {"type": "GlobalMaxPooling1D"}, _dense(1, activation="sigmoid")], None),
    "bn_rank3": ([[5, 4]], [_dense(4), {"type": "BatchNormalization", "epsilon": 0.01}, _dense(2)], None),
    # exported and written, not lifted: ONNX has them as loops of ops that are not layers
    "wrappers": ([[5, 4]], [
        {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 3, "return_sequences": True}},
        {"type": "TimeDistributed", "layer": _dense(2)}, {"type": "Flatten"}, _dense(1)], None),
    "masking": ([[5, 3]], [{"type": "Masking"}, {"type": "LSTM", "units": 4}, {"type": "Dropout", "rate": 0.5},
                           {"type": "ActivityRegularization", "l2": 0.01}, _dense(2)], None),
    "preprocessing_and_norms": ([[4, 4, 4]], [
        {"type": "Rescaling", "scale": 0.5, "offset": -1.0}, {"type": "Normalization"},
        {"type": "Normalization", "mean": [0.5, 1.0, 0.0, 2.0], "variance": [2.0, 0.5, 1.0, 4.0]}, {"type": "GaussianNoise", "stddev": 0.1},
        {"type": "SpatialDropout2D", "rate": 0.2}, {"type": "GroupNormalization", "groups": 2},
        {"type": "Reshape", "target_shape": [16, 4]}, {"type": "SpatialDropout1D", "rate": 0.2},
        {"type": "UnitNormalization"}, {"type": "GaussianDropout", "rate": 0.1},
        {"type": "AlphaDropout", "rate": 0.1}, {"type": "Reshape", "target_shape": [2, 2, 4, 4]},
        {"type": "SpatialDropout3D", "rate": 0.2}, {"type": "Flatten"}, _dense(3)], None),
    # keras.applications' own classes: Keras 3 only (tf.keras needs custom_objects for them)
    "convnext_parts": ([[4, 4, 4]], [
        {"type": "LayerScale", "init_values": 0.1, "projection_dim": 4},
        {"type": "StochasticDepth", "drop_path_rate": 0.1}, {"type": "GlobalAveragePooling2D"}, _dense(2)], None),
    "dot": ([[3, 4], [5, 4]], [
        {"type": "Dot", "axes": [2, 2], "name": "scores", "inputs": ["x0", "x1"]},
        {"type": "Dot", "axes": [2, 1], "normalize": True, "name": "mixed", "inputs": ["scores", "x1"]},
        {"type": "Flatten", "name": "flat", "inputs": ["mixed"]}, _dense(2, name="out", inputs=["flat"])], None),
    # wrappers in wrappers: Keras's nested weight names and groups
    "wrappers_nested": ([[2, 3, 2]], [
        {"type": "TimeDistributed", "layer": {"type": "TimeDistributed", "layer": _dense(3)}},
        {"type": "TimeDistributed", "layer": {"type": "Bidirectional", "layer": {"type": "LSTM", "units": 2}}},
        {"type": "TimeDistributed", "layer": {"type": "BatchNormalization"}}, {"type": "Flatten"}, _dense(1)], None),
    # encoder-decoders: states passed as the next layer's initial_state
    "encoder_decoder": ([[6, 3], [5, 4]], [
        {"type": "LSTM", "name": "enc", "units": 4, "return_state": True, "inputs": ["x0"]},
        {"type": "LSTM", "name": "dec", "units": 4, "return_sequences": True, "inputs": ["x1", "enc:1", "enc:2"]},
        {"type": "GRU", "name": "gru_enc", "units": 3, "return_state": True, "inputs": ["x0"]},
        {"type": "GRU", "name": "gru_dec", "units": 3, "reset_after": False, "inputs": ["dec", "gru_enc:1"]},
        {"type": "SimpleRNN", "name": "rnn_dec", "units": 3, "inputs": ["x1", "gru_dec"]},
        _dense(2, name="out", inputs=["rnn_dec"])], None),
    # (an attention_mask input is written for one Keras version only: test_keras_export)
    "attention": ([[4, 6], [5, 6], [5, 3]], [
        {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 3, "name": "mha", "inputs": ["x0", "x1", "x2"]},
        {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 2, "value_dim": 3, "output_shape": 5,
         "use_causal_mask": True, "return_attention_scores": True, "name": "causal", "inputs": ["x0", "x0"]},
        {"type": "Attention", "use_scale": True, "use_causal_mask": True, "name": "dot", "inputs": ["mha", "x1"]},
        {"type": "AdditiveAttention", "name": "additive", "inputs": ["dot", "x1", "x1"]},
        {"type": "Attention", "score_mode": "concat", "name": "concat", "inputs": ["additive", "x1"]}],
        ["concat", "causal", "causal:1"]),
}
NOT_LIFTED = {"wrappers", "wrappers_nested", "masking", "preprocessing_and_norms", "dot", "convnext_parts", "attention"}
KERAS3_ONLY = {"convnext_parts"}


def catalog_model(name: str):
    shapes, layers, outputs = CATALOG[name]
    return model_of(layers, *shapes, outputs=outputs)


def catalog_weights(model, seed: int = 0) -> dict:
    return random_weights(analysis_of(model), np.random.default_rng(seed))


def catalog_inputs(model, seed: int = 1, batch: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in model.inputs:
        shape = [5 if d is None else d for d in i.shape]
        if i.dtype == "bool":
            out.append(rng.random((batch, *shape)) < 0.8)
        elif i.dtype.startswith("int"):
            out.append(rng.integers(0, 20, (batch, *shape)).astype(i.dtype))
        else:
            out.append(rng.normal(size=(batch, *shape)).astype(i.dtype))
    return out
