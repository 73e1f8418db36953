"""Data sources behind one batch interface: memory-mapped .npy/.npz, CSV with a header, HDF5 read
batch by batch, image folders in Keras's layout, the built-in sets; fitting data to a model; the
prefetching loop; and bad data stopped with one line before training starts."""
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, run_cli
from nnspec import data as D
from nnspec.ir import training as ir
from nnspec.loader import load, loads
from nnspec.train.batches import Batches
from nnspec.train.run import configure, evaluate, load_data, train

SHAPES = ROOT / "tests" / "fixtures" / "shapes"


def rows(data, idx):
    xs, ys = data.batch(np.asarray(idx))
    return xs[0], (ys[0] if ys else None)


# ---- arrays -------------------------------------------------------------------------------------------

def test_uncompressed_npz_and_npy_are_memory_mapped(tmp_path):
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    y = np.arange(10) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = D.load(ir.NpzData(path="d.npz"), tmp_path)
    assert isinstance(data.xs[0], np.memmap) and isinstance(data.ys[0], np.memmap)
    got_x, got_y = rows(data, [7, 2, 7])
    np.testing.assert_array_equal(got_x, x[[7, 2, 7]])
    np.testing.assert_array_equal(got_y, y[[7, 2, 7]])
    np.savez_compressed(tmp_path / "c.npz", x=x, y=y)  # compressed members cannot be mapped: read, and said so
    data = D.load(ir.NpzData(path="c.npz"), tmp_path)
    assert not isinstance(data.xs[0], np.memmap) and "compressed" in data.notes[0]
    np.testing.assert_array_equal(rows(data, [3])[0], x[[3]])
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    data = D.load(ir.NpyData(x="x.npy", y="y.npy"), tmp_path)
    assert isinstance(data.xs[0], np.memmap)
    np.testing.assert_array_equal(rows(data, [9])[1], y[[9]])


def test_npz_refuses_objects_and_truncation(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(D.DataError, match="object arrays are refused"):
        D.load(ir.NpzData(path="o.npz"), tmp_path)
    np.savez(tmp_path / "t.npz", x=np.zeros((100, 10), np.float32))
    raw = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(raw[:2000])
    with pytest.raises(D.DataError, match="t.npz: not a readable .npz file"):
        D.load(ir.NpzData(path="t.npz"), tmp_path)


def test_split_takes_the_last_fraction_and_views_stay_lazy(tmp_path):
    data = D.Dataset([np.arange(10, dtype=np.float32)[:, None]], [np.arange(10)])
    train_part, valid = data.split(0.3)
    assert len(train_part) == 7 and rows(valid, [0, 1, 2])[1].tolist() == [7, 8, 9]
    view = D.Subset(data, np.array([9, 3, 5]))
    assert rows(view.take(slice(1, 3)), [1])[1].tolist() == [5]


# ---- CSV ------------------------------------------------------------------------------------------------

IRIS = "sepal,petal,species,notes\n1.0,0.5,setosa,a\n2.0,1.5,virginica,b\n1.5,1.0,versicolor,c\n1.1,0.4,setosa,d\n"


def test_csv_columns_by_name_and_categorical_labels(tmp_path):
    (tmp_path / "iris.csv").write_text(IRIS)
    data = D.load(ir.CsvData(path="iris.csv", features=["petal", "sepal"], labels="species"), tmp_path)
    assert data.classes == ["setosa", "versicolor", "virginica"]
    x, y = rows(data, [0, 1, 2, 3])
    np.testing.assert_allclose(x, [[0.5, 1.0], [1.5, 2.0], [1.0, 1.5], [0.4, 1.1]], rtol=1e-6)
    assert y.tolist() == [0, 2, 1, 0]
    # a trained model's classes keep their indices, whatever the new file holds
    (tmp_path / "new.csv").write_text("sepal,petal,species,notes\n1,1,virginica,x\n")
    data = D.load(ir.CsvData(path="new.csv", features=["petal", "sepal"], labels="species"), tmp_path,
                  classes=["setosa", "versicolor", "virginica"])
    assert rows(data, [0])[1].tolist() == [2]
    with pytest.raises(D.DataError, match=r"new.csv:2: label 'virginica' is not one of the model's classes"):
        D.load(ir.CsvData(path="new.csv", features=["petal"], labels="species"), tmp_path, classes=["setosa"])


@pytest.mark.parametrize("text, fragment", [
    ("a,b\n1,2\n", "bad.csv: no column 'label'; the header has a, b"),
    ("a,label\n1,0\nx,1\n", "bad.csv:3: column 'a' is not a number: 'x'"),
    ("a,label\n1,0\nnan,1\n", "bad.csv:3: column 'a' is not finite: 'nan'"),
    ("a,label\n1,0\n,1\n", "bad.csv:3: column 'a' is empty"),
    ("a,label\n1,0\n2\n", "bad.csv:3: 1 fields, the header has 2"),
    ("", "bad.csv: empty file"),
])
def test_csv_problems_name_the_row(tmp_path, text, fragment):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(D.DataError) as err:
        D.load(ir.CsvData(path="bad.csv", labels="label"), tmp_path)
    assert fragment in str(err.value)


# ---- HDF5 -------------------------------------------------------------------------------------------------

def test_hdf5_is_read_batch_by_batch_in_any_order(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("features/x", data=x)
        f.create_dataset("labels", data=np.arange(50) % 4)
    data = D.load(ir.Hdf5Data(path="d.h5", x="features/x", y="labels"), tmp_path)
    assert isinstance(data, D.Hdf5Dataset) and len(data) == 50
    for idx in ([49, 0, 17, 17, 3], list(range(10, 20)), [5]):
        got_x, got_y = rows(data, idx)
        np.testing.assert_array_equal(got_x, x[idx])
        assert got_y.tolist() == [i % 4 for i in idx]
    with pytest.raises(D.DataError, match="d.h5: no dataset 'x'; it has features/x, labels"):
        D.load(ir.Hdf5Data(path="d.h5"), tmp_path)


def test_hdf5_external_datasets_are_refused(tmp_path):
    (tmp_path / "secret.bin").write_bytes(np.zeros(8, np.float32).tobytes())
    with h5py.File(tmp_path / "ext.h5", "w") as f:
        f.create_dataset("x", shape=(8,), dtype="f4", external=[(str(tmp_path / "secret.bin"), 0, 32)])
    with pytest.raises(D.DataError, match="external dataset"):
        D.load(ir.Hdf5Data(path="ext.h5", y=None), tmp_path)


# ---- image folders -----------------------------------------------------------------------------------------

class Inp:
    def __init__(self, *shape):
        self.shape = list(shape)


def test_image_folder_in_keras_layout():
    data = D.load(ir.ImageFolderData(path=str(SHAPES)), inputs=[Inp(24, 24, 3)])
    assert data.classes == ["circle", "square", "triangle"] and len(data) == 60
    assert data.notes[0].startswith("Found 60 images belonging to 3 classes")
    x, y = rows(data, [0, 59])
    assert x.shape == (2, 24, 24, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
    assert y.tolist() == [0, 2]
    source = Image.open(data.files[0]).convert("RGB").resize((24, 24), Image.BILINEAR)
    np.testing.assert_array_equal(x[0], np.asarray(source, np.float32))  # Pillow, resized to the input
    valid = D.load(D.validation_folder(ir.ImageFolderData(path=str(SHAPES)), Path(".")), inputs=[Inp(24, 24, 3)])
    assert len(valid) == 18
    sample = D.load(ir.ImageFolderData(path=str(SHAPES), sample=True, size=(8, 10), color_mode="grayscale"))
    assert len(sample) == 12 and rows(sample, [0])[0].shape == (1, 8, 10, 1)
    gray = D.load(ir.ImageFolderData(path=str(SHAPES), subset="test"), inputs=[Inp(12, 12)])
    assert rows(gray, [0])[0].shape == (1, 12, 12)  # an input without a channel axis: (h, w)
    first, last = data.split(0.25)  # per class: the last quarter of each class's images
    assert np.bincount(rows(last, np.arange(len(last)))[1]).tolist() == [5, 5, 5]


def test_image_folder_streams_when_it_does_not_fit(monkeypatch):
    monkeypatch.setattr(D, "IMAGE_CACHE_BYTES", 100)
    data = D.load(ir.ImageFolderData(path=str(SHAPES), subset="test"), inputs=[Inp(24, 24, 3)])
    assert data.cache is None
    monkeypatch.setattr(D, "IMAGE_CACHE_BYTES", 1 << 30)
    cached = D.load(ir.ImageFolderData(path=str(SHAPES), subset="test"), inputs=[Inp(24, 24, 3)])
    np.testing.assert_array_equal(rows(data, [5, 1])[0], rows(cached, [5, 1])[0])


def image_tree(tmp_path, bad=None):
    for cls in ("cats", "dogs"):
        (tmp_path / "pets" / "train" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (9, 7), (40 * i, 80, 120)).save(tmp_path / "pets" / "train" / cls / f"{i}.png")
    (tmp_path / "pets" / "train" / "cats" / "notes.txt").write_text("not an image")
    if bad:
        (tmp_path / "pets" / "train" / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return tmp_path / "pets"


def test_unreadable_images_stop_or_are_skipped_and_counted(tmp_path):
    root = image_tree(tmp_path, bad=True)
    with pytest.raises(D.DataError, match=r"train/dogs/broken.png: unreadable image"):
        D.load(ir.ImageFolderData(path=str(root), size=(4, 4)))
    data = D.load(ir.ImageFolderData(path=str(root), size=(4, 4), skip_bad=True))
    assert len(data) == 6
    assert any("skipped 1 unreadable image(s)" in n and "broken.png" in n for n in data.notes)
    assert any("ignored 1 file(s) that are not images" in n for n in data.notes)


@pytest.mark.parametrize("setup, fragment", [
    (lambda r: [p.unlink() for p in (r / "train" / "dogs").iterdir()], "train/dogs: no images (class 'dogs' is empty)"),
    (lambda r: None, "no folder for class 'cows'"),
    (lambda r: (r / "valid").mkdir(), "no test/ folder"),
])
def test_image_folder_problems(tmp_path, setup, fragment):
    root = image_tree(tmp_path)
    setup(root)
    source = {"path": str(root), "size": (4, 4)}
    if "cows" in fragment:
        source["classes"] = ["cats", "cows"]
    if "test/" in fragment:
        source["subset"] = "test"
    with pytest.raises(D.DataError) as err:
        D.load(ir.ImageFolderData(**source))
    assert fragment in str(err.value)
    (tmp_path / "flat").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "flat" / "a.png")
    with pytest.raises(D.DataError, match="no class folders .1 images lie directly in it."):
        D.load(ir.ImageFolderData(path=str(tmp_path / "flat"), size=(4, 4)))


# ---- built-in sets ------------------------------------------------------------------------------------------

def test_builtin_sets():
    xor = D.load(ir.XorData(repeat=2))
    x, y = rows(xor, range(8))
    assert x.tolist()[:4] == [[0, 0], [0, 1], [1, 0], [1, 1]] and y.tolist() == [0, 1, 1, 0] * 2
    circles = D.load(ir.CirclesData(samples=200, noise=0.0, factor=0.3))
    x, y = rows(circles, range(200))
    radius = np.hypot(x[:, 0], x[:, 1])
    np.testing.assert_allclose(radius[y == 0], 1.0, rtol=1e-5)
    np.testing.assert_allclose(radius[y == 1], 0.3, rtol=1e-5)
    assert (y == 1).sum() == 100
    cosine = D.load(ir.CosineData(window=5, samples=3, step=0.5))
    x, y = rows(cosine, [2])
    np.testing.assert_allclose(x[0, :, 0], np.cos(0.5 * np.arange(2, 7)), rtol=1e-6)
    np.testing.assert_allclose(y[0], [np.cos(0.5 * 7)], rtol=1e-6)
    assert D.source_for_path("cosine(window=7)") == ir.CosineData(window=7)
    assert D.source_for_path("xor") == ir.XorData()


def test_digits_come_from_scikit_learn_and_name_the_extra_when_missing(monkeypatch):
    pytest.importorskip("sklearn")
    data = D.load(ir.DigitsData())
    x, y = rows(data, range(len(data)))
    assert x.shape == (1797, 8, 8) and 0 <= x.min() and x.max() == 1.0 and sorted(set(y.tolist())) == list(range(10))
    from sklearn.datasets import load_digits

    np.testing.assert_allclose(x[:5].reshape(5, 64) * 16, load_digits().data[:5])
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(D.DataError, match=r"pip install 'nnspec\[datasets\]'"):
        D.load(ir.DigitsData())


# ---- fitting data to a model --------------------------------------------------------------------------------

CLASSIFIER = "model c {{ input x: float32[{shape}]\n flatten()\n dense(3, activation=softmax) }}\ntrain {{ loss {loss} }}"


def fitted(data, shape="2", loss="categorical_crossentropy"):
    spec = loads(CLASSIFIER.format(shape=shape, loss=loss), "c.nn")
    return D.for_model(data, spec.model, spec.analysis, spec.model.train.loss, one_hot=data.one_hot)


def test_labels_take_the_form_the_loss_wants_and_channels_are_added():
    data = D.Dataset([np.ones((4, 2), np.float64)], [np.array([0, 2, 1, 2])])
    x, y = rows(fitted(data), range(4))
    assert x.dtype == np.float32 and y.tolist() == np.eye(3)[[0, 2, 1, 2]].tolist()
    x, y = rows(fitted(data, loss="sparse_categorical_crossentropy"), range(4))
    assert y.dtype == np.int64 and y.tolist() == [0, 2, 1, 2]
    images = D.Dataset([np.ones((4, 5, 5), np.float32)], [np.array([0, 1, 1, 2])])
    x, _ = rows(fitted(images, shape="5, 5, 1"), [0])
    assert x.shape == (1, 5, 5, 1)


def test_preprocessing_rescales_and_normalizes_per_channel():
    source = ir.XorData(rescale=2.0, mean=[1.0, 0.0], std=[2.0, 4.0])
    x, _ = rows(D.load(source), range(4))
    np.testing.assert_allclose(x, [[-0.5, 0], [-0.5, 0.5], [0.5, 0], [0.5, 0.5]])


@pytest.mark.parametrize("data, fragment", [
    (D.Dataset([np.ones((3, 2), np.float32)], [np.array([0, 3, 1])], source="d.npz"),
     "d.npz: sample 1: label 3 is outside the model's 3 classes (0 to 2)"),
    (D.Dataset([np.ones((3, 4), np.float32)], [np.array([0, 1, 1])], source="d.npz"),
     "d.npz: input 'x' expects samples of shape (2,), the data has (4,)"),
    (D.Dataset([np.array([[1, 2], [3, np.inf]], np.float32)], [np.array([0, 1])], source="d.npz"),
     "d.npz: sample 1: x has NaN or infinite values"),
    (D.Dataset([np.array([["a", "b"]])], [np.array([0])], source="d.npz"), "x holds strings (dtype <U1)"),
    (D.Dataset([np.ones((3, 2), np.float32)], [np.array([0, 1])], source="d.npz"), "y has 2 samples, x has 3"),
    (D.Dataset([np.ones((2, 2), np.float32)], [np.ones((2, 4), np.float32)], source="d.npz"),
     "output 0 gives samples of shape (3,), the targets have (4,)"),
])
def test_bad_data_is_named_before_training(data, fragment):
    with pytest.raises(D.DataError) as err:
        fitted(data)
    assert fragment in str(err.value)


# ---- batches, prefetching, resuming ---------------------------------------------------------------------------

def test_prefetched_batches_arrive_in_order_and_errors_surface():
    seen = []

    def prepare(b):
        seen.append(b)
        if b == 5:
            raise D.DataError("bad batch 5")
        return [np.array([b])], [], np.ones(1)

    got = [xs[0][0] for xs, _, _ in Batches(prepare, 5, depth=2)]
    assert got == [0, 1, 2, 3, 4]
    with pytest.raises(D.DataError, match="bad batch 5"):
        list(Batches(prepare, 8, depth=3))
    early = Batches(lambda b: ([np.array([b])], [], np.ones(1)), 1000, depth=2)
    for xs, _, _ in early:
        break
    early.close()  # stopping early leaves no thread behind
    assert early._thread is None


TINY_CNN = """model t {
  input image: float32[8, 8, 1]
  conv2d(4, 3, activation=relu)
  flatten()
  dropout(0.2)
  dense(2, activation=softmax)
}
train { loss categorical_crossentropy  optimizer adam(0.01)  batch_size 8  metrics [accuracy]  seed 3
  augment image_data_generator(rotation_range=20, width_shift_range=0.2, zoom_range=0.1, horizontal_flip=true) }
"""


def tiny_images(n=40):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    x = rng.random((n, 8, 8), np.float32) * 0.2
    x[y == 1, 2:6, 3:5] += 1.0  # class 1: a bar
    return D.Dataset([x], [y])


def test_augmented_prefetched_training_is_exact_and_resumes_exactly(tmp_path):
    spec = loads(TINY_CNN, "t.nn")

    def run(epochs, prefetch=4, resume=False, folder="a"):
        config = configure(spec, {"epochs": epochs, "verbose": 0})
        return train(spec, config, tiny_images(), None, seed=3, verbose=0, device="cpu", prefetch=prefetch,
                     checkpoint_dir=tmp_path / folder, resume=resume)

    straight = run(4)
    inline = run(4, prefetch=0, folder="b")
    assert straight.history.history == inline.history.history  # the thread changes nothing
    run(2, folder="c")
    resumed = run(4, resume=True, folder="c")
    assert resumed.history.history == straight.history.history
    for layer, arrays in straight.weights.items():
        for a, b in zip(arrays, resumed.weights[layer]):
            np.testing.assert_array_equal(a, b)


def test_streamed_sources_train_like_arrays(tmp_path):
    """The same samples from memory, from HDF5 and from a memory-mapped .npz give the same training."""
    data = tiny_images()
    with h5py.File(tmp_path / "t.h5", "w") as f:
        f["x"], f["y"] = data.xs[0], data.ys[0]
    np.savez(tmp_path / "t.npz", x=data.xs[0], y=data.ys[0])
    spec = loads(TINY_CNN.split("  augment")[0] + " }", "t.nn")
    config = configure(spec, {"epochs": 2, "verbose": 0, "validation_split": 0.25})
    histories = [train(spec, config, d, None, seed=0, verbose=0, device="cpu").history.history
                 for d in (data, D.load(ir.Hdf5Data(path="t.h5"), tmp_path), D.load(ir.NpzData(path="t.npz"), tmp_path))]
    assert histories[0] == histories[1] == histories[2]


# ---- the command line ------------------------------------------------------------------------------------------

def test_spec_data_sources_and_command_line_sources(tmp_path):
    spec = loads("model x { input p: float32[2]\n dense(4, activation=tanh)\n dense(1, activation=sigmoid) }\n"
                 "train { data xor(repeat=4)  loss binary_crossentropy  optimizer adam(0.05)  batch_size 4 }", "x.nn")
    assert spec.model.train.data == ir.XorData(repeat=4)
    data = load_data(spec.model.train.data, tmp_path, spec)
    config = configure(spec, {"epochs": 2, "verbose": 0})
    run = train(spec, config, data, None, seed=0, verbose=0, device="cpu")
    assert len(run.history.history["loss"]) == 2
    assert evaluate(spec, config, load_data("xor", tmp_path, spec), run.weights, device="cpu")["loss"] > 0
    csv_source = D.source_for_path('csv("a.csv", labels=species, features=[x, y])')
    assert csv_source == ir.CsvData(path="a.csv", labels="species", features=["x", "y"])
    with pytest.raises(Exception, match="unknown data source 'cvs'"):
        D.source_for_path('cvs("a.csv")')


@pytest.mark.parametrize("make, args, fragment", [
    ("empty", ["--data", "pets"], "pets/train/dogs: no images (class 'dogs' is empty)"),
    ("broken", ["--data", "pets"], "pets/train/dogs/broken.png: unreadable image"),
    ("labels", ["--data", "labels.npz"], "labels.npz: sample 2: label 7 is outside the model's 2 classes"),
    ("csv", ["--data", 'csv("t.csv", labels=kind)'], "t.csv: no column 'kind'; the header has a, label"),
])
def test_train_command_stops_on_bad_data_with_one_line(tmp_path, make, args, fragment):
    (tmp_path / "m.nn").write_text("model m { input image: float32[4, 4, 3]\n flatten()\n dense(2, activation=softmax) }"
                                   "\ntrain { loss categorical_crossentropy  epochs 1 }")
    root = image_tree(tmp_path, bad=(make == "broken"))
    if make == "empty":
        for p in (root / "train" / "dogs").iterdir():
            p.unlink()
    np.savez(tmp_path / "labels.npz", x=np.zeros((3, 4, 4, 3), np.float32), y=np.array([0, 1, 7]))
    (tmp_path / "t.csv").write_text("a,label\n1,0\n")
    result = run_cli("train", "m.nn", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "m.trained.onnx").exists()
    if make == "broken":  # --skip-bad trains on the rest and says how many it skipped
        result = run_cli("train", "m.nn", *args, "--skip-bad", "--verbose", "2", "--no-plot", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "skipped 1 unreadable image(s)" in result.stdout and "Found 6 images belonging to 2 classes" in result.stdout
        assert json.loads((tmp_path / "m.trained.classes.json").read_text()) == ["cats", "dogs"]
