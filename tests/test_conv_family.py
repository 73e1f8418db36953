"""The convolution family end to end, beyond the per-kind tables: the spec language's argument
forms, parameter counts equal to Keras's, Keras 2 and 3 configs as they spell them, and bad
arguments refused in one line."""
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from nnspec.backends.keras.errors import KerasFormatError
from nnspec.backends.keras.importer import load
from test_keras_import import keras_json

SPEC = """\
model family {
  input x: float32[12, 12, 3]
  zero_padding2d([[1, 0], [2, 1]])
  conv2d(8, 3, strides=2)
  depthwise_conv2d(3, padding=same, depth_multiplier=2, activation=relu)
  separable_conv2d(16, 3)
  cropping2d(1)
  global_average_pooling2d()
  dense(2)
}
"""
# Keras's model.summary() for the same model: conv 3*3*3*8 + 8; depthwise 3*3*8*2 + 16;
# separable 3*3*16 + 16*16 + 16; dense 16*2 + 2.
KERAS_TOTAL = 224 + 160 + 416 + 34


def test_spec_forms_and_keras_parameter_count(tmp_path):
    spec = tmp_path / "family.nn"
    spec.write_text(SPEC)
    result = run_cli("summary", spec)
    assert result.returncode == 0, result.stderr
    assert f"Total params: {KERAS_TOTAL:,}" in result.stdout
    assert "(None, 13, 15, 3)" in result.stdout  # zero padding: 12 + 1 + 0, 12 + 2 + 1


@pytest.mark.parametrize("call, problem", [
    ("zero_padding2d([1, 2, 3])", "padding takes an int, 2 ints, or 2 (before, after) pairs"),
    ("cropping1d(-1)", "cropping takes non-negative sizes"),
    ("cropping2d(6)", "leaves nothing"),
    ("depthwise_conv2d(3, strides=2, dilation_rate=2)", "strides > 1 cannot be combined with dilation_rate > 1"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, call, problem):
    spec = tmp_path / "bad.nn"
    spec.write_text(f"model bad {{\n  input x: float32[12, 12, 3]\n  {call}\n}}\n")
    result = run_cli("check", spec)
    assert result.returncode == 2 and problem in result.stderr and "Traceback" not in result.stderr


# As tf.keras 2.15 and Keras 3 serialize them (Keras 2 keeps Conv's `groups` on these classes).
KERAS2 = [
    ("ZeroPadding2D", {"padding": [[1, 1], [2, 0]], "data_format": "channels_last"}),
    ("DepthwiseConv2D", {"kernel_size": [3, 3], "strides": [1, 1], "padding": "same", "data_format": "channels_last",
                         "dilation_rate": [1, 1], "groups": 1, "activation": "linear", "use_bias": False,
                         "bias_initializer": {"class_name": "Zeros", "config": {}}, "bias_regularizer": None,
                         "activity_regularizer": None, "bias_constraint": None, "depth_multiplier": 2,
                         "depthwise_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                         "depthwise_regularizer": None, "depthwise_constraint": None}),
    ("SeparableConv2D", {"filters": 4, "kernel_size": [2, 2], "strides": [1, 1], "padding": "valid",
                         "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "relu",
                         "use_bias": True, "depth_multiplier": 1, "pointwise_regularizer": None,
                         "pointwise_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}}}),
    ("Cropping2D", {"cropping": [[1, 0], [0, 1]], "data_format": "channels_last"}),
]
KERAS3 = [
    ("ZeroPadding1D", {"padding": [2, 1]}),
    ("DepthwiseConv1D", {"kernel_size": [3], "strides": [1], "padding": "valid", "data_format": "channels_last",
                         "dilation_rate": [1], "depth_multiplier": 1, "activation": "relu", "use_bias": True}),
    ("SeparableConv1D", {"filters": 3, "kernel_size": [2], "strides": [2], "padding": "same", "depth_multiplier": 2}),
    ("Cropping1D", {"cropping": [1, 1]}),
]


def test_keras_configs_read_as_keras_writes_them(tmp_path):
    two = load(keras_json(tmp_path, KERAS2, 2, (8, 8, 3), "k2.json")).model.layers
    assert [l.type for l in two] == [c for c, _ in KERAS2]
    assert two[0].padding == [[1, 1], [2, 0]] and two[1].depth_multiplier == 2 and two[2].filters == 4
    assert two[3].pairs() == [(1, 0), (0, 1)]
    three = load(keras_json(tmp_path, KERAS3, 3, (10, 2), "k3.json")).model.layers
    assert three[0].pairs() == [(2, 1)] and three[2].depth_multiplier == 2 and three[3].pairs() == [(1, 1)]


def test_a_grouped_conv_other_than_depthwise_is_refused_on_a_depthwise_layer(tmp_path):
    layer = ("DepthwiseConv2D", {"kernel_size": 3, "groups": 2})
    with pytest.raises(KerasFormatError, match="groups=2 is not supported"):
        load(keras_json(tmp_path, [layer], 2, (8, 8, 4)))


def test_depthwise_reference_is_a_conv_per_channel():
    """tests/reference.py's depthwise conv against a loop of single-channel correlations."""
    from reference import run_layer

    rng = np.random.default_rng(0)
    x, k = rng.normal(size=(2, 5, 6, 3)), rng.normal(size=(3, 2, 3, 2))
    y = run_layer("DepthwiseConv2D", {"kernel_size": [3, 2], "padding": "valid", "depth_multiplier": 2,
                                      "use_bias": False}, [k], [x])
    want = np.zeros((2, 3, 5, 6))
    for c in range(3):
        for m in range(2):
            for i in range(3):
                for j in range(5):
                    want[:, i, j, 2 * c + m] = np.sum(x[:, i:i + 3, j:j + 2, c] * k[:, :, c, m], axis=(1, 2))
    np.testing.assert_allclose(y, want, atol=1e-12)


# ---- batch normalization folded into the Conv/Gemm before it ------------------------------------

FOLDED = [{"type": "Conv2D", "name": "conv", "filters": 4, "kernel_size": 3, "padding": "same", "use_bias": False},
          {"type": "BatchNormalization", "name": "bn", "epsilon": 0.01},
          {"type": "Activation", "activation": "relu"},
          {"type": "DepthwiseConv2D", "name": "dw", "kernel_size": 3, "depth_multiplier": 2},
          {"type": "BatchNormalization", "name": "bn_dw", "center": False},
          {"type": "Flatten"}, {"type": "Dense", "name": "dense", "units": 3},
          {"type": "BatchNormalization", "name": "bn_dense", "scale": False}]


def _ops(proto):
    return [n.op_type for n in proto.graph.node]


def test_batch_norm_folds_into_the_weights_before_it():
    from nnspec.onnx_file import lift
    from onnx_support import analysis_of, assert_close, compiled, model_of, random_weights, reference_outputs, run_onnx

    model = model_of(FOLDED, (6, 6, 2))
    rng = np.random.default_rng(7)
    weights = random_weights(analysis_of(model), rng)
    weights["bn"][3] = rng.uniform(0.5, 2.0, 4).astype(np.float32)  # variances far from 1
    x = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
    proto = compiled(model, weights)
    assert "BatchNormalization" not in _ops(proto) and _ops(proto).count("Mul") == 0
    assert _ops(proto).count("Conv") == 2 and _ops(proto).count("Gemm") == 1
    assert_close(run_onnx(proto, [x]), reference_outputs(model, weights, [x]))
    # back from ONNX: the spec, the conv/dense with the folded weights, each BN an identity
    lifted = lift(proto)
    assert lifted.model == model and sum("was folded into the weights" in n for n in lifted.notes) == 3
    assert np.allclose(lifted.weights["bn"][0], 1.0) and np.allclose(lifted.weights["bn"][2], 0.0)
    assert np.allclose(lifted.weights["bn_dense"][0], 0.0)  # beta: the dense's own bias took the shift
    assert_close(run_onnx(compiled(model, lifted.weights), [x]), reference_outputs(model, weights, [x]))


def test_a_conv_read_elsewhere_still_folds_exactly():
    """The conv's own output feeds a second layer too: the unfolded conv stays for it."""
    from onnx_support import analysis_of, assert_close, compiled, model_of, random_weights, reference_outputs, run_onnx

    layers = [{"type": "Conv1D", "name": "c", "filters": 3, "kernel_size": 2, "inputs": ["x"]},
              {"type": "BatchNormalization", "name": "b", "inputs": ["c"]},
              {"type": "Add", "name": "sum", "inputs": ["b", "c"]}]
    model = model_of(layers, (5, 2))
    weights = random_weights(analysis_of(model), np.random.default_rng(1))
    x = np.random.default_rng(2).normal(size=(2, 5, 2)).astype(np.float32)
    assert_close(run_onnx(compiled(model, weights), [x]), reference_outputs(model, weights, [x]))


# ---- files written by real Keras 2 and 3 (tests/fixtures/keras_apps) ------------------------------

APPS = Path(__file__).parent / "fixtures" / "keras_apps"
# The layer models of this family (test_keras_apps_convert.py converts them and the networks
# built from them against Keras's outputs and tf2onnx's node counts).
FAMILY = ["zero_padding1d", "zero_padding2d", "zero_padding3d", "cropping1d", "cropping2d", "cropping3d",
          "depthwise_conv1d", "depthwise_conv2d", "separable_conv1d", "separable_conv2d", "conv1d_transpose",
          "conv2d_transpose", "conv3d_transpose", "upsampling1d", "upsampling2d", "upsampling3d", "resizing",
          "center_crop"]


def _io(name, version):
    data = np.load(APPS / f"{name}.{version}.io.npz")
    return ([data[k] for k in sorted(k for k in data.files if k.startswith("x"))],
            [data[k] for k in sorted(k for k in data.files if k.startswith("y"))])


# tf2onnx files that are not lifted, and why.
TF2ONNX_NOT_LIFTED = {
    "conv2d_transpose": "tf2onnx writes ConvTranspose pads below zero, which onnxruntime itself refuses to load",
    "conv1d_transpose": "tf2onnx writes it as 107 nodes of Split, Concat and single-cell ops, not a ConvTranspose",
    "upsampling1d": "tf2onnx writes a Split and a Concat of copies, not a Resize",
    "upsampling3d": "tf2onnx writes a Split and a Concat of copies, not a Resize",
    "resizing": "tf2onnx computes the aspect-ratio crop at run time (Shape, Cast, Slice of computed bounds)",
    "center_crop": "tf2onnx keeps Keras's run-time choice between cropping and resizing (GreaterOrEqual, If)",
}


@pytest.mark.parametrize("name", [n for n in FAMILY if n not in TF2ONNX_NOT_LIFTED])
def test_tf2onnx_files_lift_to_the_keras_layers(name):
    from nnspec.onnx_file import lift
    from onnx_support import assert_close, compiled, run_onnx

    lifted = lift(APPS / f"{name}.tf2onnx.onnx")
    keras = load(APPS / f"{name}.k2.h5").model
    assert [(l.type, l.name) for l in lifted.model.layers] == [(l.type, l.name) for l in keras.layers]
    xs, ys = _io(name, "k2")
    assert_close(run_onnx(compiled(lifted.model, lifted.weights), xs), ys)


@pytest.mark.parametrize("name", ["separable_conv2d", "depthwise_conv1d", "conv3d_transpose", "cropping2d"])
@pytest.mark.parametrize("target", ["k2.h5", "k3.keras"])
def test_written_back_to_keras_and_read_again(tmp_path, name, target):
    """Keras file -> nnspec's ONNX -> Keras file (the spec from the ONNX metadata) -> the same numbers."""
    from onnx_support import assert_close, compiled, run_onnx

    onnx_path, out = tmp_path / "m.onnx", tmp_path / f"m.{target.split('.')[1]}"
    for src, dst in ((APPS / f"{name}.k2.h5", onnx_path), (onnx_path, out)):
        result = run_cli("convert", src, dst)
        assert result.returncode == 0, result.stderr
    again = load(out)
    xs, ys = _io(name, "k2")
    assert_close(run_onnx(compiled(again.model, again.weights), xs), ys)


# ---- training ---------------------------------------------------------------------------------------

TRAINED = """
model family_train {
  input x: float32[8, 8, 2]
  zero_padding2d(1)
  depthwise_conv2d(3, strides=2, depth_multiplier=2, activation=relu)
  separable_conv2d(4, 3, padding=same)
  batch_normalization()
  conv2d_transpose(3, 3, strides=2, padding=same, activation=tanh)
  up_sampling2d(2, interpolation=bilinear)
  cropping2d(2)
  resizing(6, 6)
  global_average_pooling2d()
  dense(1)
}
train { loss mse  optimizer adam(learning_rate=0.02)  batch_size 16  epochs 8 }
"""


def test_the_family_trains():
    """Depthwise (grouped) and transposed convs, paddings, croppings and resizes learn a target."""
    from nnspec.data import Dataset
    from nnspec.loader import loads
    from nnspec.train.run import configure, train

    spec = loads(TRAINED, "family_train.nn")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 2)).astype(np.float32)
    y = x[:, 2:6, 2:6, 0].mean(axis=(1, 2))[:, None] * 4.0
    run = train(spec, configure(spec, {"verbose": 0, "callbacks": []}), Dataset([x], [y.astype(np.float32)]), None,
                seed=0, verbose=0, device="cpu")
    losses = run.history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]


# specs/cifar_cnn.nn in miniature: 'same'-padded convs with batch normalization, pooling, dropout.
PADDED_CNN = """\
model padded {
  input image: float32[8, 8, 3]
  conv2d(4, 3, padding=same, use_bias=false)
  batch_norm()
  relu()
  conv2d(4, 3, padding=same)
  max_pooling2d(2)
  dropout(0.25)
  zero_padding2d(1)
  conv2d(3, 3)
  flatten()
  dense(3, activation=softmax)
}
train { loss categorical_crossentropy  optimizer adam(learning_rate=1e-2)  batch_size 8 }
"""


def test_padded_convs_train_and_onnxruntime_optimizations_keep_the_step_exact():
    """The kernel gradient of a padded conv pads the transposed input: onnxruntime's transpose
    optimizer once turned that Pad into an out-of-range Gather (training specs/cifar_cnn.nn). The
    step, optimized as training runs it, gives the unoptimized step's numbers, and training moves."""
    import onnxruntime as ort

    from nnspec.backends.onnx.training import build
    from nnspec.loader import loads
    from nnspec.train.run import configure, train
    from test_training import synthetic

    spec = loads(PADDED_CNN, "padded.nn")
    config = configure(spec, {"optimizer": {"name": "sgd", "learning_rate": 0.01}, "metrics": [], "callbacks": [],
                              "batch_size": 8})
    step = build(spec.analysis, config, [(spec.analysis.output_types[0].shape, "float32")]).train
    rng = np.random.default_rng(0)
    feeds = {}
    for i in step.graph.input:  # any values: both sessions get the same (the batch dimension is named)
        shape = [d.dim_value if d.HasField("dim_value") else 8 for d in i.type.tensor_type.shape.dim]
        feeds[i.name] = rng.uniform(0.5, 1.0, shape).astype(np.float32)
    results = []
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        session = ort.InferenceSession(step.SerializeToString(), options, providers=["CPUExecutionProvider"])
        results.append(session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()}))
    for plain, optimized in zip(*results):
        np.testing.assert_allclose(optimized, plain, rtol=1e-4, atol=1e-5)

    config = configure(spec, {"epochs": 2, "verbose": 0, "callbacks": [], "batch_size": 8})
    run = train(spec, config, synthetic(spec, n=16), None, seed=0, verbose=0, device="cpu")
    losses = run.history.history["loss"]
    assert np.isfinite(losses).all() and losses[1] < losses[0]
