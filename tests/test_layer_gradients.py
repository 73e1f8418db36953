"""Gradients of every layer kind (through its primitive expansion, as training uses it) against
central finite differences: with respect to each weight and to the input."""
import numpy as np
import onnxruntime as ort
import pytest

from nnspec.backends.onnx import primitives as P
from nnspec.backends.onnx.autograd import grad
from nnspec.backends.onnx.compile import trace
from nnspec.backends.onnx.emit import to_onnx
from nnspec.backends.onnx.graph import Graph
from nnspec.backends.onnx.noise import NoiseInput, noise_shape
from gradcheck import central_difference
from onnx_support import analysis_of, model_of, random_weights

CASES = {
    "dense_gelu": ([4], [{"type": "Dense", "units": 3, "activation": "gelu"}]),
    "dense_swish_3d": ([2, 4], [{"type": "Dense", "units": 3, "activation": "swish"}]),
    "hard_silu_mish": ([5], [{"type": "Dense", "units": 4, "activation": "hard_silu"},
                             {"type": "Activation", "activation": "mish"}]),
    "shrinks_and_pluses": ([6], [{"type": "Dense", "units": 5, "activation": {"name": "celu", "alpha": 0.7}},
                                 {"type": "Activation", "activation": "log_sigmoid"},
                                 {"type": "Activation", "activation": "tanh_shrink"},
                                 {"type": "Dense", "units": 5, "activation": "squareplus"},
                                 {"type": "Dense", "units": 5, "activation": {"name": "soft_shrink", "threshold": 0.1}},
                                 {"type": "Dense", "units": 5, "activation": "sparse_plus"},
                                 {"type": "Activation", "activation": "hard_tanh"}]),
    "log_softmax_axis": ([3, 4], [{"type": "Activation", "activation": {"name": "log_softmax", "axis": 1}}]),
    "relu_general": ([6], [{"type": "Dense", "units": 5, "activation": {"name": "relu", "max_value": 0.6,
                                                                        "negative_slope": 0.2, "threshold": 0.1}}]),
    "noise_layers_inference": ([4], [{"type": "GaussianNoise", "stddev": 0.3}, {"type": "GaussianDropout", "rate": 0.2},
                                     {"type": "AlphaDropout", "rate": 0.2}, {"type": "Dense", "units": 2}]),
    "rescaling": ([3], [{"type": "Rescaling", "scale": [0.5, 2.0, -1.0], "offset": 0.25}, {"type": "Dense", "units": 2}]),
    "mask_as_float": (([5], "int32"), [{"type": "NotEqual"}, {"type": "Cast", "dtype": "float32"},
                                       {"type": "Dense", "units": 2}]),
    "normalization": ([3, 2], [{"type": "Normalization", "axis": 1}, {"type": "Normalization", "mean": [1.0, 2.0],
                                                                       "variance": [0.5, 4.0]}]),
    "unit_normalization": ([3, 4], [{"type": "UnitNormalization", "axis": [1, 2]}]),
    "layer_scale": ([3, 4], [{"type": "LayerScale", "init_values": 0.5, "projection_dim": 4}]),
    "group_normalization": ([3, 4], [{"type": "GroupNormalization", "groups": 2}]),
    "dot": ([4], [{"type": "Dense", "units": 6, "name": "a", "inputs": ["x"]},
                  {"type": "Reshape", "target_shape": [2, 3], "name": "ra", "inputs": ["a"]},
                  {"type": "Dense", "units": 6, "name": "b", "inputs": ["x"]},
                  {"type": "Reshape", "target_shape": [3, 2], "name": "rb", "inputs": ["b"]},
                  {"type": "Dot", "axes": [2, 1], "name": "d", "inputs": ["ra", "rb"]},
                  {"type": "Dot", "axes": 2, "normalize": True, "name": "cos", "inputs": ["d", "d"]}]),
    "softmax_axis": ([3, 4], [{"type": "Activation", "activation": {"name": "softmax", "axis": 1}}]),
    "hard_sigmoid_selu": ([5], [{"type": "Dense", "units": 4, "activation": "selu"},
                                {"type": "Activation", "activation": "hard_sigmoid"}]),
    "flatten_reshape_permute": ([2, 3, 2], [{"type": "Permute", "dims": [3, 1, 2]}, {"type": "Flatten"},
                                            {"type": "Reshape", "target_shape": [3, 4]}, {"type": "Dense", "units": 2}]),
    "repeat_vector": ([3], [{"type": "RepeatVector", "n": 2}, {"type": "Dense", "units": 2}]),
    "lambda": ([4], [{"type": "Lambda", "expression": "clip(x, -0.8, 0.8) * x + sin(x)"}]),
    "embedding": (([5], "int32"), [{"type": "Embedding", "input_dim": 6, "output_dim": 3}, {"type": "Flatten"},
                                   {"type": "Dense", "units": 2}]),
    "conv1d_same_stride": ([9, 2], [{"type": "Conv1D", "filters": 3, "kernel_size": 3, "strides": 2, "padding": "same",
                                     "activation": "tanh"}]),
    "conv1d_causal_dilated": ([8, 2], [{"type": "Conv1D", "filters": 2, "kernel_size": 2, "dilation_rate": 2,
                                        "padding": "causal"}]),
    "conv2d_valid": ([5, 5, 2], [{"type": "Conv2D", "filters": 3, "kernel_size": [3, 2], "activation": "elu"}]),
    "conv2d_same_stride": ([6, 5, 1], [{"type": "Conv2D", "filters": 2, "kernel_size": 3, "strides": 2,
                                        "padding": "same"}]),
    "conv3d_same_stride": ([4, 5, 3, 2], [{"type": "Conv3D", "filters": 2, "kernel_size": 2, "strides": 2,
                                           "padding": "same"}]),
    "depthwise_conv2d": ([5, 5, 2], [{"type": "DepthwiseConv2D", "kernel_size": 3, "strides": 2, "padding": "same",
                                      "depth_multiplier": 2, "activation": "tanh"}]),
    "depthwise_conv1d_dilated": ([7, 3], [{"type": "DepthwiseConv1D", "kernel_size": 2, "dilation_rate": 2}]),
    "separable_conv2d": ([5, 4, 2], [{"type": "SeparableConv2D", "filters": 3, "kernel_size": [2, 3],
                                      "depth_multiplier": 2, "padding": "same"}]),
    "separable_conv1d": ([6, 2], [{"type": "SeparableConv1D", "filters": 2, "kernel_size": 3, "strides": 2}]),
    "zero_padding_cropping": ([3, 4, 2], [{"type": "ZeroPadding2D", "padding": [[1, 0], [2, 1]]},
                                          {"type": "Cropping2D", "cropping": [[0, 2], [1, 1]]},
                                          {"type": "Reshape", "target_shape": [-1, 2]},
                                          {"type": "ZeroPadding1D", "padding": [0, 2]},
                                          {"type": "Cropping1D", "cropping": [1, 0]}]),
    "zero_padding_cropping_3d": ([2, 3, 2, 1], [{"type": "ZeroPadding3D", "padding": [1, 0, 1]},
                                                {"type": "Cropping3D", "cropping": [[1, 0], [0, 1], [2, 0]]}]),
    "conv2d_transpose_same": ([3, 2, 2], [{"type": "Conv2DTranspose", "filters": 2, "kernel_size": 3, "strides": 2,
                                           "padding": "same", "output_padding": [1, 0], "activation": "tanh"}]),
    "conv1d_transpose_dilated": ([4, 2], [{"type": "Conv1DTranspose", "filters": 2, "kernel_size": 2,
                                           "dilation_rate": 2}]),
    "conv3d_transpose": ([2, 2, 3, 1], [{"type": "Conv3DTranspose", "filters": 2, "kernel_size": 2, "strides": 2}]),
    "upsampling_bilinear": ([2, 3, 2], [{"type": "UpSampling2D", "size": [2, 2], "interpolation": "bilinear"},
                                        {"type": "Reshape", "target_shape": [4, 3, 2, 2]},
                                        {"type": "UpSampling3D", "size": [1, 2, 1]},
                                        {"type": "Reshape", "target_shape": [8, 12]},
                                        {"type": "UpSampling1D", "size": 2}]),
    "resizing_center_crop": ([5, 6, 1], [{"type": "Resizing", "height": 4, "width": 3, "crop_to_aspect_ratio": True},
                                         {"type": "Resizing", "height": 5, "width": 4, "interpolation": "nearest"},
                                         {"type": "CenterCrop", "height": 3, "width": 2}]),
    "max_pool2d_same": ([5, 5, 2], [{"type": "MaxPooling2D", "pool_size": 2, "padding": "same"}]),
    "avg_pool1d": ([7, 2], [{"type": "AveragePooling1D", "pool_size": 3, "strides": 2}]),
    "avg_pool2d_same": ([5, 4, 1], [{"type": "AveragePooling2D", "pool_size": 2, "padding": "same"}]),
    "max_pool1d": ([6, 2], [{"type": "MaxPooling1D", "pool_size": 2}]),
    "global_pools": ([4, 3, 2], [{"type": "GlobalMaxPooling2D"}]),
    "global_avg1d": ([5, 3], [{"type": "GlobalAveragePooling1D"}]),
    "global_max1d": ([4, 3], [{"type": "GlobalMaxPooling1D"}]),
    "global_avg2d": ([3, 4, 2], [{"type": "GlobalAveragePooling2D"}]),
    "activity_regularization": ([4], [{"type": "ActivityRegularization", "l1": 0.1}, {"type": "Dense", "units": 2}]),
    "batch_norm_inference": ([3, 4], [{"type": "BatchNormalization"}]),
    "layer_norm": ([3, 4], [{"type": "LayerNormalization"}]),
    "layer_norm_two_axes": ([3, 2, 4], [{"type": "LayerNormalization", "axis": [1, 3]}]),
    "simple_rnn": ([4, 2], [{"type": "SimpleRNN", "units": 3}]),
    "gru": ([4, 2], [{"type": "GRU", "units": 3, "return_sequences": True}]),
    "gru_reset_before": ([3, 2], [{"type": "GRU", "units": 2, "reset_after": False}]),
    "lstm_backwards": ([4, 2], [{"type": "LSTM", "units": 3, "go_backwards": True}]),
    "bidirectional": ([3, 2], [{"type": "Bidirectional", "layer": {"type": "LSTM", "units": 2, "return_sequences": True}}]),
    "time_distributed": ([3, 2], [{"type": "TimeDistributed", "layer": {"type": "Dense", "units": 2}}]),
    "masking_lstm": ([4, 2], [{"type": "Masking", "mask_value": 9.0}, {"type": "LSTM", "units": 2}]),
    "masked_lstm_holes": (([6], "int32"), [{"type": "Embedding", "input_dim": 6, "output_dim": 3, "mask_zero": True},
                                           {"type": "LSTM", "units": 2, "return_sequences": True}]),
    "masked_gru_backwards": (([6], "int32"), [{"type": "Embedding", "input_dim": 6, "output_dim": 3, "mask_zero": True},
                                              {"type": "GRU", "units": 2, "go_backwards": True}]),
    "merges": ([4], [{"type": "Dense", "units": 4, "name": "a", "inputs": ["x"]},
                     {"type": "Dense", "units": 4, "name": "b", "inputs": ["x"]},
                     {"type": "Subtract", "name": "s", "inputs": ["a", "b"]},
                     {"type": "Multiply", "name": "m", "inputs": ["s", "a"]},
                     {"type": "Average", "name": "v", "inputs": ["m", "b"]},
                     {"type": "Maximum", "name": "mx", "inputs": ["v", "a"]},
                     {"type": "Minimum", "name": "mn", "inputs": ["mx", "b"]},
                     {"type": "Add", "name": "ad", "inputs": ["mn", "x"]},
                     {"type": "Concatenate", "name": "c", "inputs": ["ad", "x"]}]),
    "attention": ([4, 3], [{"type": "Dense", "units": 3, "name": "k", "inputs": ["x"]},
                           {"type": "Attention", "use_scale": True, "use_causal_mask": True, "name": "dot",
                            "inputs": ["x", "x", "k"]},
                           {"type": "Attention", "score_mode": "concat", "use_scale": True, "name": "concat",
                            "inputs": ["dot", "x"]},
                           {"type": "AdditiveAttention", "name": "additive", "inputs": ["concat", "x", "k"]}]),
    "multi_head_attention": ([4, 3], [{"type": "Dense", "units": 2, "name": "v", "inputs": ["x"]},
                                      {"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 2, "value_dim": 3,
                                       "output_shape": 4, "use_causal_mask": True, "inputs": ["x", "v", "x"]}]),
}


# tokens (0 masked): pre-padding with a hole; holes and post-padding; pre- and post-padding
_PATTERNS = np.array([[0, 0, 3, 1, 0, 2], [4, 0, 0, 5, 1, 0], [0, 2, 3, 0, 0, 0]], np.int32)
MASK_PATTERNS = {"masked_lstm_holes": _PATTERNS, "masked_gru_backwards": _PATTERNS}

# Gradients reach an encoder's weights only through the decoder's initial states.
CASES.update({
    "lstm_initial_state": ([4, 2], [{"type": "LSTM", "name": "enc", "units": 3, "return_state": True, "inputs": ["x"]},
                                    {"type": "LSTM", "name": "dec", "units": 3, "return_sequences": True,
                                     "inputs": ["x", "enc:1", "enc:2"]}]),
    "gru_simple_rnn_initial_state": ([3, 2], [
        {"type": "GRU", "name": "enc", "units": 2, "return_state": True, "inputs": ["x"]},
        {"type": "SimpleRNN", "name": "dec", "units": 2, "go_backwards": True, "inputs": ["x", "enc:1"]}]),
    "bidirectional_initial_state": ([3, 2], [
        {"type": "Bidirectional", "name": "enc", "layer": {"type": "GRU", "units": 2, "return_state": True},
         "inputs": ["x"]},
        {"type": "Bidirectional", "name": "dec", "layer": {"type": "GRU", "units": 2, "return_sequences": True},
         "inputs": ["x", "enc:1", "enc:2"]}]),
})


class FixedTraining:
    """Training mode with fixed draws (dropout masks, noise), so finite differences see the same function."""

    def __init__(self, rng, batch):
        self.rng, self.batch = rng, batch
        self.updates = {}
        self.drawn = []  # (draw, array) in tracing order

    def noise(self, layer, x, draw):
        array = NoiseInput(layer.name, noise_shape(layer, x.shape), draw).sample(self.rng, self.batch)
        self.drawn.append((draw, array))
        return x.graph.const(array)

    def update(self, layer, weight, value):
        self.updates[(layer.name, weight)] = value

    def layer_outputs(self, layer, outputs):
        pass


TRAINING_CASES = {
    "batch_norm_training": ([3, 4], [{"type": "BatchNormalization", "axis": 1}]),
    "dropout_training": ([6], [{"type": "Dense", "units": 5}, {"type": "Dropout", "rate": 0.4}]),
    "spatial_dropouts_training": ([2, 2, 2, 3], [{"type": "SpatialDropout3D", "rate": 0.4},
                                                 {"type": "Reshape", "target_shape": [4, 2, 3]},
                                                 {"type": "SpatialDropout2D", "rate": 0.3},
                                                 {"type": "Reshape", "target_shape": [8, 3]},
                                                 {"type": "SpatialDropout1D", "rate": 0.5}, {"type": "Dense", "units": 2}]),
    "stochastic_depth_training": ([3, 4], [{"type": "Dense", "units": 4},
                                           {"type": "StochasticDepth", "drop_path_rate": 0.5}]),
    "noise_layers_training": ([3, 4], [{"type": "GaussianNoise", "stddev": 0.3}, {"type": "Dense", "units": 4},
                                       {"type": "GaussianDropout", "rate": 0.3}, {"type": "Dense", "units": 4},
                                       {"type": "AlphaDropout", "rate": 0.4, "noise_shape": [None, 1, 4]},
                                       {"type": "Dense", "units": 2}]),
    "time_distributed_training": ([3, 4], [{"type": "TimeDistributed", "layer": {"type": "BatchNormalization"}},
                                           {"type": "TimeDistributed", "layer": {"type": "Dropout", "rate": 0.4}},
                                           {"type": "TimeDistributed", "layer": {"type": "Dense", "units": 2}}]),
    "attention_dropout_training": ([3, 4], [{"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 2,
                                             "dropout": 0.3, "name": "mha", "inputs": ["x", "x"]},
                                            {"type": "Attention", "dropout": 0.4, "inputs": ["mha", "x"]}]),
}
CASES.update(TRAINING_CASES)


def gradient_model(case: str, batch: int = 2):
    """The case's loss and its gradients with respect to every weight and the input, as one ONNX
    model; with the feeds (a batch of `batch`) to run it on and the names of what is differentiated."""
    shape, layers = CASES[case]
    model = model_of(layers, shape)
    analysis = analysis_of(model)
    rng = np.random.default_rng(0)
    weights = random_weights(analysis, rng)
    graph = Graph()
    params = {name: [graph.input(f"{name}/{i}", a.shape, "float32") for i, a in enumerate(arrays)]
              for name, arrays in weights.items()}
    training = FixedTraining(np.random.default_rng(5), batch) if case in TRAINING_CASES else None
    _, outputs = trace(analysis, params, fused=False, graph=graph, train=training)
    spec = model.inputs[0]
    model_input = next(v for v in graph.inputs if v.hint == "x")
    out = next(iter(outputs.values()))
    r = graph.const(rng.normal(size=(batch, *out.shape[1:])).astype(np.float32))
    loss = P.reduce_sum(out * r, axes=tuple(range(out.rank)), keepdims=False)
    wrt = [v for vs in params.values() for v in vs]
    float_input = spec.dtype.startswith("float")
    if float_input:
        wrt.append(model_input)
    grads = grad(graph, loss, wrt)
    names = [v.hint for v in wrt]
    # no gradient (None) must mean no dependence: then the finite difference must be zero too
    grads = [g if g is not None else v * 0.0 for v, g in zip(wrt, grads)]
    proto = to_onnx(graph, {"loss": loss, **{f"g:{n}": g for n, g in zip(names, grads)}})
    if float_input:
        xv = rng.normal(size=(batch, *spec.shape)).astype(np.float32)
        if case == "masking_lstm":
            xv[0, -1] = 9.0  # a masked (post-padded) step
    elif case in MASK_PATTERNS:
        xv = MASK_PATTERNS[case][:batch].copy()
    else:
        xv = rng.integers(0, 6, (batch, *spec.shape)).astype(spec.dtype)
    feeds = {"x": xv, **{f"{n}/{i}": a for n, arrays in weights.items() for i, a in enumerate(arrays)}}
    return proto, feeds, names


def _check(case: str, batch: int, samples=12):
    proto, feeds, names = gradient_model(case, batch)
    rng = np.random.default_rng(1)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    analytic = sess.run([f"g:{n}" for n in names], feeds)
    for name, g in zip(names, analytic):
        value = feeds[name]
        flat = value.reshape(-1)
        picks = rng.choice(flat.size, size=min(samples, flat.size), replace=False)
        for j in picks:
            if case == "masking_lstm" and name == "x" and flat[j] == 9.0:
                continue
            numeric = central_difference(sess, feeds, name, j, 1e-2)
            close = pytest.approx(numeric, rel=3e-2, abs=3e-3)
            if g.reshape(-1)[j] != close and central_difference(sess, feeds, name, j, 5e-3) != close:
                continue  # the step straddles a kink or jump (maximum, a relu threshold): no derivative to compare
            assert g.reshape(-1)[j] == close, f"d loss / d {name}[{j}]"


@pytest.mark.parametrize("batch", [1, 3])  # 3: unlike any layer's sizes, so a batch axis mixed up shows
@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_gradient(case, batch):
    _check(case, batch)
