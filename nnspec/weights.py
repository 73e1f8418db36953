"""A model's weights (nnspec.ir.weights: the type and the check): fresh ones from the spec's
initializers, and the .npz weights file."""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import SpecError
from .initializers import sample
from .ir.base import TensorType, Weight
from .ir.layers import LSTM, Bidirectional, Layer, TimeDistributed
from .ir.model import Analysis
from .ir.weights import Weights, check_weights


def _owners(layer: Layer, ins: list[TensorType]) -> list[tuple[Layer, list[TensorType]]]:
    """The layers that own the weights of `layer`, in order (a wrapper's are its inner layers')."""
    if isinstance(layer, Bidirectional):
        return [(layer.layer, ins), (layer._backward(), ins)]
    if isinstance(layer, TimeDistributed):
        return _owners(layer.layer, [layer._inner(ins[0])])
    return [(layer, ins)]


def _initial(owner: Layer, weight: Weight, rng: np.random.Generator) -> np.ndarray:
    if isinstance(owner, LSTM) and owner.unit_forget_bias and weight.name == "bias":
        u = owner.units  # Keras: the forget gate's bias starts at one
        return np.concatenate([sample(weight.initializer, (u,), rng), np.ones(u, np.float32),
                               sample(weight.initializer, (2 * u,), rng)])
    return sample(weight.initializer, weight.shape, rng)


def initial_weights(analysis: Analysis, seed: int | None = None) -> Weights:
    """Weights drawn from each layer's initializers. With a seed, a layer's values depend only on
    the seed and the layer's name, so adding a layer elsewhere leaves them unchanged."""
    entropy = np.random.SeedSequence(seed).entropy
    out: Weights = {}
    for info in analysis.layers:
        key = zlib.crc32(info.layer.name.encode())
        arrays = []
        for owner, ins in _owners(info.layer, info.inputs):
            for weight in owner.weights(ins):
                rng = np.random.default_rng([entropy, key, len(arrays)])
                try:
                    arrays.append(_initial(owner, weight, rng))
                except ValueError as exc:  # an initializer that cannot make this shape (identity of a 3-D kernel)
                    raise SpecError(f"layer '{info.layer.name}', weight '{weight.name}': {exc}") from None
        if arrays:
            out[info.layer.name] = arrays
    for source in analysis.model.pretrained:
        arrays = pretrained_weights(source.path)
        out.update({name: arrays[name] for name in source.layers})
    return out


def pretrained_weights(path: str) -> Weights:
    """The weights of a model file that a spec splices in with `pretrained(...)`."""
    from .pretrained import read_model_file

    return read_model_file(path).weights


def save_weights(path: str | Path, weights: Weights, analysis: Analysis) -> None:
    """An .npz file with keys 'layer_name/index/weight_name', written atomically."""
    check_weights(analysis, weights)
    arrays = {}
    for info in analysis.layers:
        for i, (w, a) in enumerate(zip(info.layer.weights(info.inputs), weights.get(info.layer.name, []))):
            arrays[f"{info.layer.name}/{i}/{w.name}"] = a
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for key, array in arrays.items():  # np.savez's layout, without its entry times: same weights, same bytes
            with zf.open(zipfile.ZipInfo(f"{key}.npy", (1980, 1, 1, 0, 0, 0)), "w", force_zip64=True) as entry:
                # read here, one at a time, where a weight is still in its Keras file (h5safe.Stored)
                np.lib.format.write_array(entry, np.asarray(array), allow_pickle=False)


def load_weights(path: str | Path, analysis: Analysis | None = None) -> Weights:
    """Read an nnspec .npz weights file (never unpickling); checked against `analysis` if given."""
    path = str(path)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with data:
            entries = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise SpecError("no such file", path) from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SpecError(f"not an nnspec weights file: {exc}", path) from None
    indexed: dict[str, dict[int, np.ndarray]] = {}
    for key, array in entries.items():
        parts = key.rsplit("/", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            raise SpecError(f"key '{key}' is not 'layer_name/index/weight_name'", path)
        indexed.setdefault(parts[0], {})[int(parts[1])] = array
    weights = {}
    for layer, by_index in indexed.items():
        if sorted(by_index) != list(range(len(by_index))):
            raise SpecError(f"the weights of layer '{layer}' are numbered {sorted(by_index)}", path)
        weights[layer] = [by_index[i] for i in range(len(by_index))]
    if analysis is not None:
        check_weights(analysis, weights, path)
    return weights
