"""The real-model fixtures of tests/fixtures/keras_apps (written by Keras 2 and 3 with
make_keras_apps_fixtures.py) are complete, safe and taken in by nnspec's Keras reader: every
file loads, or, where the model holds a layer kind the reader's catalog does not have yet, is
refused with one line that names that layer. Conversion against Keras's outputs is tested with
each layer kind."""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest

from nnspec.backends.keras import catalog, h5safe, reader

FIX = Path(__file__).parent / "fixtures" / "keras_apps"
LAYER_MODELS = [
    "zero_padding1d", "zero_padding2d", "zero_padding3d", "cropping1d", "cropping2d", "cropping3d",
    "depthwise_conv1d", "depthwise_conv2d", "separable_conv1d", "separable_conv2d", "conv1d_transpose",
    "conv2d_transpose", "conv3d_transpose", "upsampling1d", "upsampling2d", "upsampling3d", "relu_variants",
    "softmax_axis", "activations", "dense_activations", "rescaling", "normalization", "resizing", "center_crop",
    "merge_elementwise", "dot", "layer_normalization", "group_normalization", "unit_normalization", "mha_self",
    "mha_cross", "attention", "additive_attention", "masked_lstm", "masked_gru", "masked_bilstm",
    "bidirectional_merge", "bidirectional_state", "time_distributed_dense", "time_distributed_conv2d",
    "lstm_initial_state", "inference_identity", "op_layers",
]
APP_MODELS = [
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_small_minimalistic", "efficientnet_narrow",
    "resnet_narrow", "resnet_v2_narrow", "densenet_narrow", "xception_narrow", "nasnet_narrow", "convnext_narrow",
    "unet_tiny", "autoencoder", "transformer_block", "seq2seq_gru",
]
TRANSFER_MODELS = ["transfer_base", "transfer_sgd", "transfer_adam"]
MODELS = LAYER_MODELS + APP_MODELS + TRANSFER_MODELS
MANIFEST = json.loads((FIX / "manifest.json").read_text())
TF2ONNX = json.loads((FIX / "tf2onnx_nodes.json").read_text())


def expected_files(name: str) -> set[str]:
    files = {f"{name}.{v}.{ext}" for v in ("k2", "k3") for ext in ("json", "io.npz")} | {f"{name}.k2.h5",
                                                                                       f"{name}.k3.keras"}
    if name not in APP_MODELS:  # the applications only in their users' formats: HDF5 costs kilobytes a layer
        files |= {f"{name}.k3.h5", f"{name}.k2.weights.h5", f"{name}.k3.weights.h5"}
    if name in ("transfer_sgd", "transfer_adam"):
        files |= {f"{name}.{v}.{ext}" for v in ("k2", "k3") for ext in ("train.npz", "train.json", "trained.weights.h5")}
    if name in LAYER_MODELS and "error" not in TF2ONNX[name]:
        files.add(f"{name}.tf2onnx.onnx")
    return files


def test_fixture_set_is_complete_and_small():
    assert sorted(MANIFEST) == sorted(MODELS)
    for name in MODELS:
        present = {p.name for p in FIX.glob(f"{name}.*")}
        assert present == expected_files(name), name
        assert set(MANIFEST[name]["files"]) == present, name
    readme = (FIX / "README.md").read_text()
    assert all(f"| {name} |" in readme for name in MODELS)
    total = sum(p.stat().st_size for p in FIX.iterdir())
    assert total < 20 << 20, f"{total / 2**20:.1f} MiB"


def test_tf2onnx_node_counts():
    """tf2onnx converted every Keras 2 model: its node counts are the ones to beat, available
    without TensorFlow at test time."""
    assert set(TF2ONNX) == set(LAYER_MODELS + APP_MODELS)
    for name, entry in TF2ONNX.items():
        assert "error" not in entry, (name, entry)
        assert entry["nodes"] == sum(entry["ops"].values()) > 0
        if "file" in entry:
            graph = onnx.load(str(FIX / entry["file"])).graph
            assert len(graph.node) == entry["nodes"], name


# ---------------------------------------------------------------- inputs and Keras's outputs

def _config(path: Path) -> dict:
    return json.loads(path.read_text())["config"]


def _layer_names(config) -> set[str]:
    """The names of a model config's layers, nested models' layers included."""
    if isinstance(config, list):
        return set().union(*map(_layer_names, config)) if config else set()
    if not isinstance(config, dict):
        return set()
    own = {config["config"]["name"]} if isinstance(config.get("config"), dict) and "name" in config["config"] else set()
    return own | _layer_names(list(config.values()))


def _count(refs: list) -> int:
    """Keras 3 writes a single input or output as one [name, node, index], not a list of them."""
    return 1 if isinstance(refs[0], str) else len(refs)


@pytest.mark.parametrize("stem", [f"{n}.{v}" for n in MODELS for v in ("k2", "k3")])
def test_io_holds_inputs_and_keras_outputs(stem):
    config = _config(FIX / f"{stem}.json")
    io = np.load(FIX / f"{stem}.io.npz")
    xs = sorted(k for k in io.files if k.startswith("x"))
    ys = sorted(k for k in io.files if k.startswith("y"))
    assert len(xs) == _count(config["input_layers"]) and len(ys) == _count(config["output_layers"])
    for key in ys:
        assert io[key].dtype == np.float32 and io[key].shape[0] in (2, 4) and np.isfinite(io[key]).all(), key
        assert np.ptp(io[key]) > 0, f"{key} is constant: it would not catch a wrong conversion"


def test_masked_inputs_cover_every_mask_pattern():
    """post-padding, pre-padding (pad_sequences' default), zeros inside, unpadded."""
    for name in ("masked_lstm", "masked_gru", "masked_bilstm"):
        for v in ("k2", "k3"):
            tokens = np.load(FIX / f"{name}.{v}.io.npz")["x0"]
            padded = tokens == 0
            assert padded[0, -1] and not padded[0, 0]
            assert padded[1, 0] and not padded[1, -1]
            assert not padded[2, 0] and not padded[2, -1] and padded[2].any()
            assert not padded[3].any()


def test_transfer_trajectories():
    for name in ("transfer_sgd", "transfer_adam"):
        for v in ("k2", "k3"):
            run = np.load(FIX / f"{name}.{v}.train.npz")
            meta = json.loads((FIX / f"{name}.{v}.train.json").read_text())
            assert run["losses"].shape == (meta["epochs"],) and np.isfinite(run["losses"]).all()
            assert run["losses"][-1] < run["losses"][0]
            assert run["x0"].shape[0] == run["y"].shape[0] == meta["batch_size"]
            finals = [run[k] for k in sorted((k for k in run.files if k.startswith("final")), key=lambda k: int(k[5:]))]
            head_kernel = finals[-2]
            assert head_kernel.shape == (16, 3)


# ---------------------------------------------------------------- the reader

KERAS_FILES = sorted(p.name for p in FIX.iterdir() if p.name.endswith((".h5", ".keras", ".json"))
                     and ".train." not in p.name and p.name not in ("manifest.json", "tf2onnx_nodes.json"))


def _load(name: str) -> reader.KerasModel:
    if name.endswith(".weights.h5"):  # with the architecture it was saved from
        architecture = name.removesuffix(".weights.h5").removesuffix(".trained") + ".json"
        return reader.load(FIX / architecture, weights_path=FIX / name)
    return reader.load(FIX / name)


def _read_weight_count(model: reader.KerasModel) -> int:
    """Every number the reader took in: nested models' weights and optimizer state included."""
    optimizer = sum(np.size(v) for v in (model.optimizer_weights or {}).values())
    return optimizer + sum(sum(w.size for w in layer.weights) + (
        _read_weight_count(layer.config["model"]) if layer.class_name in catalog.MODEL_CLASSES else 0)
        for layer in model.layers)


def _stored_weight_count(path: Path) -> int:
    """Every number Keras wrote into the file's HDF5 weights."""
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            return _stored_weight_count_h5(h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r"))
    return _stored_weight_count_h5(h5py.File(path, "r"))


def _stored_weight_count_h5(f: h5py.File) -> int:
    """Metric accumulators (Keras 3's `metrics/` group) are not the model's: left out."""
    sizes = []
    with f:
        f.visititems(lambda name, obj: sizes.append(obj.size)
                     if isinstance(obj, h5py.Dataset) and not name.startswith("metrics/") else None)
    return sum(sizes)


@pytest.mark.parametrize("name", KERAS_FILES)
def test_every_file_is_safe_and_read_or_refused_in_one_line(name):
    """Read whole (inputs, outputs, every stored weight), or refused with one line that names
    the place: until a layer kind is added, a refusal is what it must get."""
    if name.endswith(".h5"):
        with h5safe.open_file(FIX / name, name) as f:
            h5safe.check_file(f, name)  # no links, external or virtual datasets, custom filters
    stem = ".".join(name.split(".")[:2])
    try:
        model = _load(name)
    except reader.KerasFormatError as exc:
        message = exc.render()
        assert "\n" not in message and exc.where, message
        named = re.fullmatch(r"layer '([^']+)'", exc.where)  # the Keras layer, not its place in a list
        assert named and named.group(1) in _layer_names(_config(FIX / f"{stem}.json")), message
        return
    arrays = np.load(FIX / f"{stem}.io.npz")
    assert len(model.inputs) == sum(k.startswith("x") for k in arrays.files)
    assert len(model.outputs) == sum(k.startswith("y") for k in arrays.files)
    if not name.endswith(".json"):
        assert _read_weight_count(model) == _stored_weight_count(FIX / name)
