"""Every layer kind, compiled to ONNX and run by onnxruntime (float32), against the float64 numpy
reference within 1e-5: a few seeded random configurations each, fused and in primitives only."""
import itertools
import math

import numpy as np
import pytest

from nnspec.backends.onnx.layers import LAYERS
from nnspec.errors import SpecError
from nnspec.ir.layers import LAYER_CLASSES
from onnx_support import (analysis_of, assert_close, compiled, model_of, random_input, random_weights,
                          reference_outputs, run_onnx)

ACTIVATIONS = ["linear", "relu", "relu6", "leaky_relu", "elu", "selu", "softplus", "softsign", "tanh", "sigmoid",
               "hard_sigmoid", "exponential", "swish", "hard_silu", "mish", "gelu", "softmax", "log_softmax",
               "celu", "hard_tanh", "log_sigmoid", "tanh_shrink", "hard_shrink", "soft_shrink", "squareplus",
               "sparse_plus"]


def _cases():
    """(id, layers, inputs, outputs) with layer dicts as a JSON spec writes them."""
    rng = np.random.default_rng(20240501)
    pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    cases = []

    def case(kind, layers, *inputs, outputs=None):
        cases.append((f"{kind}-{sum(c[0].startswith(kind + '-') for c in cases)}", layers, inputs, outputs))

    for i, shape in enumerate([(6,), (4, 6), (2, 3, 6)]):
        case("Dense", [{"type": "Dense", "units": int(rng.integers(1, 9)), "activation": pick(ACTIVATIONS),
                        "use_bias": i != 1}], shape)
    for name in ACTIVATIONS:
        case("Activation", [{"type": "Activation", "activation": name}], (3, 4))
    case("Dropout", [{"type": "Dropout", "rate": 0.3}], (4,))
    case("ActivityRegularization", [{"type": "ActivityRegularization", "l1": 0.1}], (4,))
    case("Flatten", [{"type": "Flatten"}], (3, 4, 2))
    case("Reshape", [{"type": "Reshape", "target_shape": [4, -1]}], (3, 4, 2))
    case("Reshape", [{"type": "Reshape", "target_shape": [24]}], (3, 4, 2))
    for dims in ([2, 1], [3, 1, 2], [2, 3, 1]):
        case("Permute", [{"type": "Permute", "dims": dims}], (2, 3, 4)[:len(dims)])
    case("RepeatVector", [{"type": "RepeatVector", "n": 3}], (5,))
    case("Masking", [{"type": "Masking", "mask_value": 0.0}], (5, 3))
    case("Embedding", [{"type": "Embedding", "input_dim": 7, "output_dim": 3}], ((6,), "int32"))
    case("Embedding", [{"type": "Embedding", "input_dim": 5, "output_dim": 2}], ((2, 3), "int64"))
    case("Embedding", [{"type": "Embedding", "input_dim": 6, "output_dim": 4}], ((4,), "uint8"))

    for rank in (1, 2):
        for i in range(4):
            padding = (["valid", "same", "causal", "same"] if rank == 1 else ["valid", "same", "valid", "same"])[i]
            dilate = i % 2 == 1
            kernel = [int(rng.integers(1, 4)) for _ in range(rank)]
            groups = pick([1, 2])
            case(f"Conv{rank}D", [{
                "type": f"Conv{rank}D", "filters": 2 * int(rng.integers(1, 3)), "kernel_size": kernel,
                "strides": 1 if dilate else [int(rng.integers(1, 3)) for _ in range(rank)],
                "dilation_rate": [int(rng.integers(1, 3)) for _ in range(rank)] if dilate else 1,
                "padding": padding, "groups": groups, "activation": pick(ACTIVATIONS),
                "use_bias": i != 2}], (*[int(rng.integers(6, 9)) for _ in range(rank)], 2 * groups))
        # unknown sizes: 'same' padding with strides is then ONNX's SAME_UPPER, worked out at run time
        case(f"Conv{rank}D", [{"type": f"Conv{rank}D", "filters": 2, "kernel_size": 3, "strides": 2,
                               "padding": "same"}], (*[None] * rank, 3))
        case(f"AveragePooling{rank}D", [{"type": f"AveragePooling{rank}D", "pool_size": 3, "strides": 2,
                                         "padding": "same"}], (*[None] * rank, 3))
        for kind in ("MaxPooling", "AveragePooling"):
            for _ in range(3):
                pool = [int(rng.integers(1, 4)) for _ in range(rank)]
                case(f"{kind}{rank}D", [{"type": f"{kind}{rank}D", "pool_size": pool,
                                         "strides": pick([None, [int(rng.integers(1, 3)) for _ in range(rank)]]),
                                         "padding": pick(["valid", "same"])}],
                     (*[int(rng.integers(5, 8)) for _ in range(rank)], 3))
            for keepdims in (False, True):
                case(f"Global{kind}{rank}D", [{"type": f"Global{kind}{rank}D", "keepdims": keepdims}], (*[5] * rank, 3))

    for kernel, strides, padding, dilation in ((3, 1, "valid", 1), (2, 2, "same", 1), ([3, 2, 2], 1, "same", 2)):
        case("Conv3D", [{"type": "Conv3D", "filters": 3, "kernel_size": kernel, "strides": strides, "padding": padding,
                         "dilation_rate": dilation, "activation": "relu"}], (5, 6, 5, 2))
    for rank in (1, 2):
        for i, (strides, padding, dilation, multiplier) in enumerate(
                ((1, "valid", 1, 1), (2, "same", 1, 2), (1, "same", 2, 3), (2, "valid", 1, 1))):
            window = {"kernel_size": [3 - i % 2] * rank, "strides": strides, "padding": padding,
                      "dilation_rate": dilation, "depth_multiplier": multiplier, "use_bias": i != 3,
                      "activation": ("swish", "relu6", "tanh", "linear")[i]}
            case(f"DepthwiseConv{rank}D", [{"type": f"DepthwiseConv{rank}D", **window}], (*[7] * rank, 3))
            case(f"SeparableConv{rank}D", [{"type": f"SeparableConv{rank}D", "filters": 4, **window}], (*[7] * rank, 3))
    for rank in (1, 2, 3):
        for strides, padding, output_padding, dilation, kernel in (
                (2, "valid", None, 1, 3), (2, "same", None, 1, 3), (3, "same", 1, 1, 2), (1, "valid", None, 2, 2),
                (3, "valid", 2, 1, 2), (2, "same", 0, 1, 4)):
            case(f"Conv{rank}DTranspose", [{"type": f"Conv{rank}DTranspose", "filters": 3, "kernel_size": kernel,
                                            "strides": strides, "padding": padding, "output_padding": output_padding,
                                            "dilation_rate": dilation, "activation": "tanh"}], (*[4] * rank, 2))
    for rank, size in ((1, 3), (2, [2, 3]), (3, [1, 2, 2])):
        case(f"UpSampling{rank}D", [{"type": f"UpSampling{rank}D", "size": size}], (*[3] * rank, 2))
    case("UpSampling2D", [{"type": "UpSampling2D", "size": [3, 2], "interpolation": "bilinear"}], (4, 3, 2))
    for height, width, interpolation, crop in ((5, 6, "bilinear", False), (14, 12, "nearest", False),
                                               (4, 4, "bilinear", True), (3, 9, "nearest", True)):
        case("Resizing", [{"type": "Resizing", "height": height, "width": width, "interpolation": interpolation,
                           "crop_to_aspect_ratio": crop}], (9, 7, 2))
    for height, width in ((5, 4), (9, 7), (12, 4)):  # the last is taller than the input: crop and resize
        case("CenterCrop", [{"type": "CenterCrop", "height": height, "width": width}], (9, 7, 2))
    margins = {1: [2, [1, 3], [[0, 2]]], 2: [1, [2, 0], [[1, 0], [2, 3]]], 3: [1, [0, 1, 2], [[1, 0], [0, 0], [2, 1]]]}
    for rank, forms in margins.items():
        for form in forms:
            case(f"ZeroPadding{rank}D", [{"type": f"ZeroPadding{rank}D", "padding": form}], (*[4] * rank, 2))
            case(f"Cropping{rank}D", [{"type": f"Cropping{rank}D", "cropping": form}], (*[6] * rank, 2))
        case(f"Cropping{rank}D", [{"type": f"Cropping{rank}D", "cropping": forms[-1]}], (*[None] * rank, 2))

    case("BatchNormalization", [{"type": "BatchNormalization"}], (4,))
    case("BatchNormalization", [{"type": "BatchNormalization", "scale": False, "epsilon": 0.01}], (3, 4))
    case("BatchNormalization", [{"type": "BatchNormalization", "axis": 1, "center": False}], (3, 4))
    case("BatchNormalization", [{"type": "BatchNormalization"}], (5, 5, 3))
    for kind in ("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"):
        case(kind, [{"type": kind, "rate": 0.3}], (*[3] * int(kind[-2]), 2))
    case("GaussianNoise", [{"type": "GaussianNoise", "stddev": 0.5}], (4,))
    case("GaussianDropout", [{"type": "GaussianDropout", "rate": 0.2}], (4,))
    case("AlphaDropout", [{"type": "AlphaDropout", "rate": 0.2}], (4,))
    case("StochasticDepth", [{"type": "StochasticDepth", "drop_path_rate": 0.2}], (3, 3, 4))
    case("Rescaling", [{"type": "Rescaling", "scale": 1 / 127.5, "offset": -1.0}], (4, 4, 3))
    case("Rescaling", [{"type": "Rescaling", "scale": [0.5, 2.0, 1.0], "offset": [0.1, 0.0, -1.0]}], (2, 3))
    case("Rescaling", [{"type": "Rescaling", "scale": 0.5}], ((5,), "uint8"))
    case("NotEqual", [{"type": "NotEqual"}, {"type": "Cast", "dtype": "float32"}], ((6,), "int32"))
    case("NotEqual", [{"type": "NotEqual", "value": 0.5}, {"type": "Cast", "dtype": "float32"}], (4,))
    case("Cast", [{"type": "Cast", "dtype": "int64"}], ((3,), "int32"))
    case("Normalization", [{"type": "Normalization"}], (4, 3))
    case("Normalization", [{"type": "Normalization", "axis": 1}], (3, 4))
    case("Normalization", [{"type": "Normalization", "mean": [1.0, -2.0, 0.5], "variance": [4.0, 0.25, 1.0]}], (2, 3))
    case("Normalization", [{"type": "Normalization", "mean": 2.0, "variance": 9.0, "invert": True}], (3,))
    case("UnitNormalization", [{"type": "UnitNormalization"}], (5,))
    case("UnitNormalization", [{"type": "UnitNormalization", "axis": [1, 2]}], (3, 4))
    case("LayerScale", [{"type": "LayerScale", "init_values": 1e-6, "projection_dim": 4}], (3, 4))
    case("GroupNormalization", [{"type": "GroupNormalization", "groups": 2}], (5, 5, 4))
    case("GroupNormalization", [{"type": "GroupNormalization", "groups": 3, "center": False}], (6,))
    case("GroupNormalization", [{"type": "GroupNormalization", "groups": 1, "epsilon": 1e-5}], (4, 6))
    case("LayerNormalization", [{"type": "LayerNormalization"}], (6,))
    case("LayerNormalization", [{"type": "LayerNormalization", "axis": [-2, -1]}], (3, 4))
    case("LayerNormalization", [{"type": "LayerNormalization", "axis": [1, 3], "center": False}], (3, 2, 4))
    case("LayerNormalization", [{"type": "LayerNormalization", "axis": 1, "scale": False}], (3, 4))
    case("LayerNormalization", [{"type": "LayerNormalization", "center": False, "epsilon": 1e-5}], (3, 4))

    # Activations with an ONNX RNN name (fused) and without (selu, gelu: unrolled even when fusing).
    rnn_activations = ["tanh", "relu", "softsign", "linear", "elu", "selu"]
    gate_activations = ["sigmoid", "hard_sigmoid", {"name": "hard_sigmoid", "slope": 0.2}, "softplus", "gelu"]

    def recurrent(kind, i):
        """Flags cycle through every combination of return_sequences, return_state, go_backwards."""
        layer = {"type": kind, "units": int(rng.integers(2, 6)), "return_sequences": bool(i & 1),
                 "return_state": bool(i & 2), "go_backwards": bool(i & 4), "use_bias": i % 3 != 2,
                 "activation": rnn_activations[i % len(rnn_activations)]}
        if kind != "SimpleRNN":
            layer["recurrent_activation"] = gate_activations[i % len(gate_activations)]
        if kind == "GRU":
            layer["reset_after"] = i % 2 == 0
        return layer

    def outputs_of(layer, name):
        states = {"LSTM": 2, "GRU": 1, "SimpleRNN": 1}[layer["type"]] if layer.get("return_state") else 0
        return [name] + [f"{name}:{k}" for k in range(1, states + 1)]

    for kind in ("SimpleRNN", "GRU", "LSTM"):
        for i in range(8):
            layer = recurrent(kind, i)
            case(kind, [{**layer, "name": "rnn"}], (5, 3), outputs=outputs_of(layer, "rnn"))
    for i, mode in enumerate(("concat", "sum", "mul", "ave", None, "concat")):
        inner = recurrent(("GRU", "LSTM", "SimpleRNN")[i % 3], (0, 1, 3, 6, 2, 5)[i])
        states = outputs_of(inner, "bi")[1:] * 2
        heads = ["bi", "bi:1"] if mode is None else ["bi"]
        case("Bidirectional", [{"type": "Bidirectional", "name": "bi", "layer": inner, "merge_mode": mode}], (4, 3),
             outputs=heads + [f"bi:{len(heads) + k}" for k in range(len(states))])

    case("TimeDistributed", [{"type": "TimeDistributed", "layer": {"type": "Dense", "units": 3,
                                                                    "activation": "tanh"}}], (4, 5))
    case("TimeDistributed", [{"type": "TimeDistributed", "layer": {"type": "Conv2D", "filters": 2, "kernel_size": 2,
                                                                    "activation": "relu"}}], (3, 4, 4, 1))
    case("TimeDistributed", [{"type": "TimeDistributed", "layer": {"type": "Flatten"}}], (3, 2, 2))

    for kind, n in (("Add", 3), ("Subtract", 2), ("Multiply", 2), ("Average", 3), ("Maximum", 2), ("Minimum", 3)):
        case(kind, [{"type": kind, "inputs": [f"x{i}" for i in range(n)]}], *[(2, 3)] * n)
    case("Multiply", [{"type": "Multiply", "inputs": ["x0", "x1"]}], (4, 4, 3), (1, 1, 3))  # squeeze-and-excite
    case("Add", [{"type": "Add", "inputs": ["x0", "x1", "x2"]}], (2, 3), (1, 3), (2, 1))
    case("Concatenate", [{"type": "Concatenate", "inputs": ["x0", "x1"]}], (2, 3), (2, 4))
    case("Concatenate", [{"type": "Concatenate", "axis": 1, "inputs": ["x0", "x1", "x2"]}], (2, 3), (1, 3), (4, 3))
    case("Dot", [{"type": "Dot", "axes": 1, "inputs": ["x0", "x1"]}], (5,), (5,))
    case("Dot", [{"type": "Dot", "axes": 1, "normalize": True, "inputs": ["x0", "x1"]}], (5,), (5,))
    case("Dot", [{"type": "Dot", "axes": [2, 1], "inputs": ["x0", "x1"]}], (3, 4), (4, 2))
    case("Dot", [{"type": "Dot", "axes": [2, 2], "inputs": ["x0", "x1"]}], (3, 4), (5, 4))  # attention scores
    case("Dot", [{"type": "Dot", "axes": [1, 2], "normalize": True, "inputs": ["x0", "x1"]}], (3, 2, 4), (2, 3))
    qv = {"inputs": ["x0", "x1"]}
    case("Attention", [{"type": "Attention", **qv}], (4, 6), (5, 6))
    case("Attention", [{"type": "Attention", "use_scale": True, "inputs": ["x0", "x1", "x2"]}], (4, 6), (5, 3), (5, 6))
    case("Attention", [{"type": "Attention", "score_mode": "concat", "use_scale": True, **qv}], (4, 6), (5, 6))
    case("Attention", [{"type": "Attention", "name": "a", "use_causal_mask": True, "return_attention_scores": True,
                        **qv}], (4, 6), (5, 6), outputs=["a", "a:1"])
    case("AdditiveAttention", [{"type": "AdditiveAttention", **qv}], (4, 6), (5, 6))
    case("AdditiveAttention", [{"type": "AdditiveAttention", "use_scale": False, "use_causal_mask": True,
                                "inputs": ["x0", "x1", "x2"]}], (4, 6), (5, 2), (5, 6))
    case("MultiHeadAttention", [{"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 3, "inputs": ["x", "x"]}],
         (5, 4))
    case("MultiHeadAttention", [{"type": "MultiHeadAttention", "num_heads": 2, "key_dim": 3, "value_dim": 2,
                                 "output_shape": 5, "use_bias": False, "use_causal_mask": True, **qv}], (4, 6), (5, 3))
    case("MultiHeadAttention", [{"type": "MultiHeadAttention", "name": "m", "num_heads": 3, "key_dim": 2,
                                 "return_attention_scores": True, "inputs": ["x0", "x1", "x2", "x3"]}],
         (4, 6), (5, 3), (5, 2), ((4, 5), "bool"), outputs=["m", "m:1"])
    return cases


CASES = _cases()


def test_every_layer_kind_has_an_expansion_and_cases():
    kinds = {cls.model_fields["type"].default for cls in LAYER_CLASSES}
    assert set(LAYERS) == kinds
    assert {c[1][0]["type"] for c in CASES} | {"Lambda"} == kinds  # Lambda: test_lambda below


def _check(layers, inputs, outputs, fused, seed=0):
    rng = np.random.default_rng(seed)
    model = model_of(layers, *inputs, outputs=outputs)
    analysis = analysis_of(model)
    weights = random_weights(analysis, rng)
    arrays = [random_input(i.shape, i.dtype, rng) for i in model.inputs]
    got = run_onnx(compiled(model, weights, fused), arrays)
    assert_close(got, reference_outputs(model, weights, arrays))


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "primitives"])
@pytest.mark.parametrize("name,layers,inputs,outputs", CASES, ids=[c[0] for c in CASES])
def test_layer(name, layers, inputs, outputs, fused):
    _check(layers, inputs, outputs, fused)


# ---- activations with their parameters ----------------------------------------------------

ACTIVATION_PARAMS = [
    ({"name": "leaky_relu", "alpha": 0.1}, "leaky_relu", {"negative_slope": 0.1}, 3),
    ({"name": "elu", "alpha": 0.5}, "elu", {"alpha": 0.5}, 3),
    ({"name": "hard_sigmoid"}, "hard_sigmoid", {}, 3),
    ({"name": "hard_sigmoid", "slope": 0.2}, "hard_sigmoid", {}, 2),
    ({"name": "gelu", "approximate": True}, "gelu", {"approximate": True}, 3),
    ({"name": "gelu", "approximate": False}, "gelu", {}, 3),
    ({"name": "softmax", "axis": 1}, "softmax", {"axis": 1}, 3),
    ({"name": "softmax", "axis": -1}, "softmax", {}, 3),
    ({"name": "log_softmax", "axis": 1}, "log_softmax", {"axis": 1}, 3),
    ({"name": "relu", "max_value": 6.0, "negative_slope": 0.1, "threshold": 1.0}, "relu",
     {"max_value": 6.0, "negative_slope": 0.1, "threshold": 1.0}, 3),
    ({"name": "relu", "threshold": -0.5}, "relu", {"threshold": -0.5}, 3),
    ({"name": "relu", "max_value": 2.5}, "relu", {"max_value": 2.5}, 3),
    ({"name": "hard_swish"}, "hard_silu", {}, 3),
    ({"name": "celu", "alpha": 0.5}, "celu", {"alpha": 0.5}, 3),
    ({"name": "hard_shrink", "threshold": 1.0}, "hard_shrink", {"threshold": 1.0}, 3),
    ({"name": "soft_shrink", "threshold": 0.2}, "soft_shrink", {"threshold": 0.2}, 3),
    ({"name": "squareplus", "b": 1.0}, "squareplus", {"b": 1.0}, 3),
]


@pytest.mark.parametrize("spec,name,kwargs,version", ACTIVATION_PARAMS, ids=[repr(a[0]) for a in ACTIVATION_PARAMS])
def test_activation_parameters(spec, name, kwargs, version):
    from reference import activation

    model = model_of([{"type": "Activation", "activation": spec}], (4, 5))
    x = 3 * np.random.default_rng(1).normal(size=(6, 4, 5)).astype(np.float32)
    (got,) = run_onnx(compiled(model, {}), [x])
    assert_close([got], [activation(name, x, version, **kwargs)])


# ---- Lambda: numpy gives the expected values -------------------------------------------------

LAMBDAS = [
    ("x * x + 1", lambda x: x * x + 1),
    ("clip(x, -0.5, 0.5) - 2 / (1 + abs(x))", lambda x: np.clip(x, -0.5, 0.5) - 2 / (1 + np.abs(x))),
    ("sigmoid(x) * 2 - tanh(x) ** 2", lambda x: 2 / (1 + np.exp(-x)) - np.tanh(x) ** 2),
    ("exp(-x ** 2) + log(abs(x) + 1) + sqrt(abs(x))", lambda x: np.exp(-x ** 2) + np.log(np.abs(x) + 1)
     + np.sqrt(np.abs(x))),
    ("maximum(x, 0.1 * x) + minimum(x, 0) + relu(x) + softplus(-x)",
     lambda x: np.maximum(x, 0.1 * x) + np.minimum(x, 0) + np.maximum(x, 0) + np.logaddexp(0, -x)),
    ("pow(abs(x), 1.5) + square(x) + reciprocal(abs(x) + 1) + neg(x)",
     lambda x: np.abs(x) ** 1.5 + x * x + 1 / (np.abs(x) + 1) - x),
    ("floor(x) + ceil(x) + sign(x) + sin(x) * cos(x) + erf(x)",
     lambda x: np.floor(x) + np.ceil(x) + np.sign(x) + np.sin(x) * np.cos(x) + np.vectorize(math.erf)(x)),
]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "primitives"])
@pytest.mark.parametrize("expression,fn", LAMBDAS, ids=[e for e, _ in LAMBDAS])
def test_lambda(expression, fn, fused):
    model = model_of([{"type": "Lambda", "expression": expression}], (3, 4))
    x = np.random.default_rng(2).normal(size=(5, 3, 4)).astype(np.float32)
    (got,) = run_onnx(compiled(model, {}, fused), [x])
    assert_close([got], [fn(x.astype(np.float64))])


# ---- masks ---------------------------------------------------------------------------------------

def _padded(rng, batch, steps, features, post=True):
    """Sequences of random lengths (one empty, one full), zero after the end (post) or anywhere."""
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    lengths = [0, steps, *rng.integers(1, steps, batch - 2)]
    for b, n in enumerate(lengths):
        if post:
            x[b, n:] = 0.0
        else:
            x[b, rng.permutation(steps)[:steps - n]] = 0.0
    return x


MASKED = [
    ("GRU", {"reset_after": True}), ("GRU", {"reset_after": False}), ("SimpleRNN", {}), ("LSTM", {}),
    ("LSTM", {"go_backwards": True}), ("GRU", {"go_backwards": True, "return_state": True}),
]


def _masked_model(kind, options, return_sequences):
    layer = {"type": kind, "name": "rnn", "units": 3, "return_sequences": return_sequences, **options}
    outputs = ["rnn"] + (["rnn:1"] + (["rnn:2"] if kind == "LSTM" else []) if options.get("return_state") else [])
    return [{"type": "Masking"}, layer], outputs


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "primitives"])
@pytest.mark.parametrize("post", [True, False], ids=["post-padded", "any-mask"])
@pytest.mark.parametrize("return_sequences", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("kind,options", MASKED, ids=[f"{k}{o}" for k, o in MASKED])
def test_masked_recurrent(kind, options, return_sequences, fused, post):
    layers, outputs = _masked_model(kind, options, return_sequences)
    rng = np.random.default_rng(3)
    model = model_of(layers, (6, 2), outputs=outputs)
    weights = random_weights(analysis_of(model), rng)
    x = _padded(rng, 5, 6, 2, post)
    assert_close(run_onnx(compiled(model, weights, fused), [x]), reference_outputs(model, weights, [x]))


# every mask pattern: fully masked, post-padded, pre-padded, holes, pre- and post-padded, none
TOKENS = np.array([[0, 0, 0, 0, 0], [3, 1, 0, 0, 0], [0, 0, 2, 5, 4], [1, 0, 3, 0, 2], [0, 4, 4, 1, 0], [5, 2, 1, 3, 1]],
                  np.int32)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "primitives"])
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
@pytest.mark.parametrize("return_sequences,return_state", [(False, False), (True, False), (True, True)])
def test_masked_bidirectional(merge_mode, return_sequences, return_state, fused):
    rnn = {"type": "GRU" if return_state else "LSTM", "units": 2, "return_sequences": return_sequences,
           "return_state": return_state}
    layers = [{"type": "Embedding", "input_dim": 6, "output_dim": 3, "mask_zero": True},
              {"type": "Bidirectional", "name": "bi", "merge_mode": merge_mode, "layer": rnn}]
    count = (merge_mode is None) + 1 + 2 * return_state
    rng = np.random.default_rng(4)
    model = model_of(layers, ((5,), "int32"), outputs=["bi"] + [f"bi:{i}" for i in range(1, count)])
    weights = random_weights(analysis_of(model), rng)
    assert_close(run_onnx(compiled(model, weights, fused), [TOKENS]), reference_outputs(model, weights, [TOKENS]))


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "SimpleRNN"])
def test_masks_gather_steps_and_no_mask_gathers_nothing(kind):
    """The native node runs the kept steps only; without a mask no index math is emitted."""
    rnn = {"type": kind, "units": 2, "return_sequences": True}
    ops = {}
    for mask_zero in (True, False):
        model = model_of([{"type": "Embedding", "input_dim": 6, "output_dim": 3, "mask_zero": mask_zero}, rnn],
                         ((5,), "int32"))
        proto = compiled(model, random_weights(analysis_of(model), np.random.default_rng(6)), True)
        ops[mask_zero] = [n.op_type for n in proto.graph.node]
    assert {"GatherND", "TopK", "CumSum"} <= set(ops[True]) and {"RNN", "GRU", "LSTM"} & set(ops[True])
    assert not {"GatherND", "TopK", "CumSum"} & set(ops[False])
    assert not {"Loop", "Scan"} & set(ops[False] + ops[True])


def test_masked_recurrent_over_sequences_of_any_length():
    """The step order and counts come from the mask's run-time shape: one model, any length."""
    layers = [{"type": "Embedding", "input_dim": 6, "output_dim": 3, "mask_zero": True},
              {"type": "GRU", "units": 2, "return_sequences": True, "go_backwards": True}]
    model = model_of(layers, ((None,), "int32"))
    weights = random_weights(analysis_of(model), np.random.default_rng(7))
    proto = compiled(model, weights)
    for steps in (4, 9):
        x = np.random.default_rng(steps).integers(0, 6, (5, steps)).astype(np.int32)
        assert_close(run_onnx(proto, [x]), reference_outputs(model, weights, [x]))


def test_masked_global_average_pooling():
    model = model_of([{"type": "Masking"}, {"type": "GlobalAveragePooling1D"}], (6, 3))
    rng = np.random.default_rng(5)
    x = _padded(rng, 4, 6, 3)[1:]  # a fully masked row would be 0/0 in Keras too
    assert_close(run_onnx(compiled(model, {}), [x]), reference_outputs(model, {}, [x]))


@pytest.mark.parametrize("kind,options", [
    ("Attention", {}), ("AdditiveAttention", {}),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 3, "use_causal_mask": True}),
    ("MultiHeadAttention", {"num_heads": 2, "key_dim": 3, "empty_rows": "zero"})])
@pytest.mark.parametrize("lengths", ["known", "unknown"])
def test_attention_reads_the_keras_masks(kind, options, lengths):
    """Embedding(mask_zero) masks: the query's zeroes its outputs (Attention) or its rows of
    scores (MultiHeadAttention), the value's hides keys; a query with no key left is zero."""
    layers = [{"type": "Embedding", "name": "q", "input_dim": 6, "output_dim": 4, "mask_zero": True, "inputs": ["x0"]},
              {"type": "Embedding", "name": "v", "input_dim": 6, "output_dim": 4, "mask_zero": True, "inputs": ["x1"]},
              {"type": kind, "inputs": ["q", "v"], **options}]
    rng = np.random.default_rng(6)
    if lengths == "unknown" and options.get("use_causal_mask"):
        model = model_of(layers, ((None,), "int32"), ((None,), "int32"))
        with pytest.raises(SpecError, match="use_causal_mask needs the query's and the key's lengths known"):
            compiled(model, random_weights(analysis_of(model), rng))
        return
    model = model_of(layers, *([((4,), "int32"), ((5,), "int32")] if lengths == "known" else [((None,), "int32")] * 2))
    weights = random_weights(analysis_of(model), rng)
    xs = [rng.integers(1, 6, (4, n)).astype(np.int32) for n in (4, 5)]
    xs[0][0, 1], xs[0][1, 3], xs[1][1, 0], xs[1][2, 2:] = 0, 0, 0, 0
    xs[1][3, :] = 0  # nothing to attend to
    for fused in (True, False):
        assert_close(run_onnx(compiled(model, weights, fused), xs), reference_outputs(model, weights, xs))


def test_conv_stack_with_batch_norm_and_separate_activations():
    """Conv -> BN -> Activation -> pool -> Conv -> GAP: channels-first throughout, fused or not."""
    layers = [{"type": "Conv2D", "filters": 4, "kernel_size": 3, "padding": "same"},
              {"type": "BatchNormalization"}, {"type": "Activation", "activation": "relu"},
              {"type": "MaxPooling2D"}, {"type": "Conv2D", "filters": 3, "kernel_size": 2, "activation": "softmax"},
              {"type": "GlobalAveragePooling2D"}]
    for fused in (True, False):
        _check(layers, [(8, 8, 2)], None, fused)


def test_unknown_sequence_length():
    """Fused recurrent ops take any length; the unrolled loop needs it known and says so."""
    layers = [{"type": "LSTM", "units": 3, "return_sequences": True}, {"type": "GRU", "units": 2}]
    _check(layers, [(None, 2)], None, fused=True)
    with pytest.raises(SpecError, match="needs a known sequence length"):
        _check(layers, [(None, 2)], None, fused=False)
