"""Real models written by Keras 2 and 3 (tests/fixtures/keras_apps) convert to ONNX and predict
what Keras's own `predict` gave: within 1e-5 max-abs, or 1e-4 relative where outputs are large;
and the ONNX holds no more nodes than tf2onnx's for the same Keras 2 model.

A model joins CONVERTED when nnspec takes every layer it holds; the reader test
(test_keras_apps_fixtures.py) keeps the others refused in one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from nnspec.convert import convert
from onnx_support import run_onnx

FIX = Path(__file__).parent / "fixtures" / "keras_apps"
TF2ONNX = json.loads((FIX / "tf2onnx_nodes.json").read_text())

# model -> what to skip (None: nothing); one line each, so that layer work merges cleanly
CONVERTED = {
    "activations": None,
    "dense_activations": None,
    "relu_variants": None,
    "softmax_axis": None,
    "rescaling": None,
    "normalization": None,
    "group_normalization": None,
    "unit_normalization": None,
    "layer_normalization": None,
    "inference_identity": None,
    "merge_elementwise": None,
    "dot": None,
    "op_layers": None,
    "convnext_narrow": None,
    "transfer_base": None,
    "transfer_sgd": None,
    "transfer_adam": None,
    "zero_padding1d": None,
    "zero_padding2d": None,
    "zero_padding3d": None,
    "cropping1d": None,
    "cropping2d": None,
    "cropping3d": None,
    "depthwise_conv1d": None,
    "depthwise_conv2d": None,
    "separable_conv1d": None,
    "separable_conv2d": None,
    "conv1d_transpose": None,
    "conv2d_transpose": None,
    "conv3d_transpose": None,
    "upsampling1d": None,
    "upsampling2d": None,
    "upsampling3d": None,
    "resizing": None,
    "center_crop": None,
    "resnet_narrow": None,
    "resnet_v2_narrow": None,
    "densenet_narrow": None,
    "xception_narrow": None,
    "nasnet_narrow": None,
    "mobilenet_v2": None,
    "mobilenet_v3_small_minimalistic": None,
    "mobilenet_v3_small": None,
    "autoencoder": None,
    "unet_tiny": None,
    "bidirectional_merge": None,
    "bidirectional_state": None,
    "time_distributed_dense": None,
    "masked_lstm": None,
    "masked_gru": None,
    "masked_bilstm": None,
    "efficientnet_narrow": None,
    "lstm_initial_state": None,
    "seq2seq_gru": None,
    "time_distributed_conv2d": None,
    "attention": None,
    "additive_attention": None,
    "mha_self": None,
    "mha_cross": None,
    "transformer_block": None,
}
FORMATS = ["k2.h5", "k3.h5", "k3.keras"]


def _cases():
    for name in CONVERTED:
        for fmt in FORMATS:
            if (FIX / f"{name}.{fmt}").exists():
                yield name, fmt


def assert_matches_keras(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape, (g.shape, w.shape)
        err = np.abs(g.astype(np.float64) - w)
        scale = np.maximum(1.0, np.abs(w))  # 1e-5 absolute, or 1e-4 relative for unbounded outputs
        assert float(np.max(err / scale)) <= (1e-5 if float(np.max(np.abs(w))) <= 1.0 else 1e-4), \
            f"max abs error {float(err.max()):.3g}"


@pytest.mark.parametrize("name,fmt", list(_cases()))
def test_converts_and_predicts_what_keras_did(name, fmt, tmp_path):
    out = tmp_path / f"{name}.onnx"
    convert(str(FIX / f"{name}.{fmt}"), str(out))
    proto = onnx.load(str(out))
    io = np.load(FIX / f"{name}.{fmt.split('.')[0]}.io.npz")
    xs, ys = ([io[k] for k in sorted((k for k in io.files if k[0] == c), key=lambda k: int(k[1:]))] for c in "xy")
    assert_matches_keras(run_onnx(proto, xs), ys)
    reference = TF2ONNX.get(name, {})
    if fmt == "k2.h5" and "nodes" in reference:
        assert len(proto.graph.node) <= reference["nodes"], f"{len(proto.graph.node)} nodes, tf2onnx {reference['nodes']}"
