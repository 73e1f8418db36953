"""The CIFAR-10 source reads the official binary distribution, written here in its own format:
records of one label byte and 3,072 pixel bytes (red, green, blue 32x32 planes), never pickles."""
import json

import numpy as np
import pytest

from conftest import ROOT, run_cli
from nnspec.data import DataError, load, parse_source

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(folder, batches=((30, 20)), test=10, seed=0):
    """cifar-10-batches-bin as the archive unpacks it; returns {file: (labels, CHW pixels)}."""
    rng = np.random.default_rng(seed)
    bins = folder / "cifar-10-batches-bin"
    bins.mkdir(parents=True)
    written = {}
    names = [f"data_batch_{i + 1}.bin" for i in range(len(batches))] + ["test_batch.bin"]
    for name, n in zip(names, [*batches, test]):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        pixels = rng.integers(0, 256, (n, 3, 32, 32)).astype(np.uint8)
        (bins / name).write_bytes(np.concatenate([labels[:, None], pixels.reshape(n, -1)], axis=1).tobytes())
        written[name] = (labels, pixels)
    (bins / "batches.meta.txt").write_text("\n".join(NAMES) + "\n\n")
    return written


def test_records_become_channels_last_images_and_labels(tmp_path):
    written = write_cifar(tmp_path)
    data = load(parse_source(f"cifar10('{tmp_path}', start=25, stop=35)"))
    assert len(data) == 10 and data.classes == NAMES
    x, y = data.read_x(np.arange(10))[0], data.read_y(np.arange(10))[0]
    labels = np.concatenate([written["data_batch_1.bin"][0], written["data_batch_2.bin"][0]])[25:35]
    pixels = np.concatenate([written["data_batch_1.bin"][1], written["data_batch_2.bin"][1]])[25:35]
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x, pixels.transpose(0, 2, 3, 1) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    assert data.describe(6) == f"{tmp_path / 'cifar-10-batches-bin' / 'data_batch_2.bin'}: record 1"
    test = load(parse_source(f"cifar10('{tmp_path / 'cifar-10-batches-bin'}', subset=test, normalize=1)"))
    np.testing.assert_array_equal(test.read_x(np.array([3]))[0][0], written["test_batch.bin"][1][3].transpose(1, 2, 0))


def test_cifar_cnn_spec_trains_on_the_binary_distribution(tmp_path):
    write_cifar(tmp_path / "data")
    result = run_cli("train", ROOT / "specs" / "cifar_cnn.nn", "--data", 'cifar10("data")', "--epochs", "1",
                     "--verbose", "0", "--no-plot", "-o", "c.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "c.classes.json").read_text()) == NAMES
    assert len(json.loads((tmp_path / "c.history.json").read_text())["loss"]) == 1


@pytest.mark.parametrize("damage, message", [
    (lambda bins: (bins / "data_batch_2.bin").write_bytes(b"\0" * 3072), "3072 bytes is not a whole number"),
    (lambda bins: [p.unlink() for p in bins.glob("data_batch_*")], "no data_batch_1.bin"),
    (lambda bins: (bins / "data_batch_1.bin").write_bytes(bytes([12]) + b"\0" * 3072), "label 12 is not one of"),
])
def test_a_damaged_distribution_is_one_line(tmp_path, damage, message):
    write_cifar(tmp_path / "data")
    damage(tmp_path / "data" / "cifar-10-batches-bin")
    result = run_cli("train", ROOT / "specs" / "cifar_cnn.nn", "--data", 'cifar10("data")', "-o", "c.onnx",
                     cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr and not list(tmp_path.glob("c.*"))


def test_a_folder_without_the_binary_version_is_refused():
    with pytest.raises(DataError, match="no such folder"):
        load(parse_source("cifar10('/nonexistent/cifar')"))
