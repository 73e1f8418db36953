"""What nnspec writes for a Keras layer is a config real Keras accepts: converting a real-Keras fixture
to the same format gives each layer no config key that Keras's own file lacks for that class, and no
list where Keras wrote a bare number. (Keras rejects `data_format` on the classes that have none, and
a list as UpSampling1D's `size`; other keys Keras's get_config leaves out, such as Dense's
`activity_regularizer`, its constructors do take, so the check covers the layers where it bites.)"""
import json
import zipfile
from pathlib import Path

import h5py
import pytest

from nnspec.convert import convert

FIX = Path(__file__).parent / "fixtures" / "keras_apps"


def _layers(path: Path) -> list[dict]:
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    else:
        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["model_config"])
    found = []

    def walk(layer: dict) -> None:
        found.append(layer)
        inner = layer.get("config", {})
        for child in inner.get("layers", []) if isinstance(inner, dict) else []:
            walk(child)
        if isinstance(inner, dict) and isinstance(inner.get("layer"), dict):
            walk(inner["layer"])

    walk(config)
    return found


def _by_class(path: Path) -> dict[str, dict]:
    return {layer["class_name"]: layer.get("config", {}) for layer in _layers(path)}


CHANNELS_LAST_WITHOUT_DATA_FORMAT = ["cropping1d", "zero_padding1d", "upsampling1d", "resizing", "center_crop", "activations"]


@pytest.mark.parametrize("name,fmt", [(n, f) for n in CHANNELS_LAST_WITHOUT_DATA_FORMAT for f in ("k2.h5", "k3.keras")])
def test_written_configs_use_only_what_keras_wrote(name, fmt, tmp_path):
    source = FIX / f"{name}.{fmt}"
    written = tmp_path / f"out.{fmt.split('.')[-1]}"
    convert(str(source), str(written))
    theirs = _by_class(source)
    for cls, ours in _by_class(written).items():
        if cls not in theirs or not isinstance(ours, dict):
            continue
        extra = set(ours) - set(theirs[cls])
        assert not extra, f"{cls}: keys Keras did not write: {sorted(extra)}"
        for key in set(ours) & set(theirs[cls]):
            mine, keras = ours[key], theirs[cls][key]
            if isinstance(keras, (int, float)) and not isinstance(keras, bool):
                assert not isinstance(mine, (list, dict)), f"{cls}.{key}: {mine!r} where Keras wrote {keras!r}"
