"""`nnspec predict --backend ray`: shards of a folder predicted as a Ray Dataset by an actor pool, written as
parts in the input's order; the same numbers as local `nnspec predict`, with the driver holding no data."""
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("ray")

from conftest import ROOT  # noqa: E402
from nnspec.cli import main  # noqa: E402

DRIVER = """
import os, sys, threading, time
import ray, ray.data
from nnspec.cli import main
import nnspec.api, nnspec.distributed.predict, onnxruntime  # nnspec's own imports come before the baseline

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

ray.init(address=sys.argv[1])
ray.data.range(4).map_batches(lambda b: b).take_all()  # Ray Data's own start-up happens before the baseline
base, peak, done = rss(), [0], threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)

sampler = threading.Thread(target=sample)
sampler.start()
code = main(["predict", *sys.argv[2:], "--backend", "ray"])
done.set()
sampler.join()
print(code, peak[0] - base)
"""


@pytest.fixture(scope="module")
def mnist_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    assert main(["compile", str(ROOT / "specs" / "mnist_mlp.nn"), "--seed", "3", "-o", str(folder / "m.onnx")]) == 0
    return folder / "m.onnx"


def parts(folder):
    index = json.loads((folder / "index.json").read_text())
    return index, np.concatenate([np.load(folder / p["file"]) for p in index["parts"]])


def test_twenty_thousand_samples_in_eight_shards_match_local_predict_with_the_driver_holding_no_data(
        tmp_path, mnist_model, ray_address):
    x = np.random.default_rng(0).random((20_000, 28, 28), dtype=np.float32)
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, part in enumerate(np.array_split(x, 8)):
        np.save(shards / f"{i:02d}.npy", part)
    np.save(tmp_path / "all.npy", x)
    assert main(["predict", str(mnist_model), "-i", str(tmp_path / "all.npy"), "-o", str(tmp_path / "local.npy"),
                 "--batch-size", "500"]) == 0
    del x

    run = subprocess.run([sys.executable, "-c", DRIVER, ray_address, str(mnist_model), "-i", str(shards),
                          "-o", str(tmp_path / "out"), "--batch-size", "500"],
                         capture_output=True, text=True, timeout=600)
    code, growth = run.stdout.split()[-2:]
    assert code == "0", run.stderr
    assert int(growth) < 20_000 * 28 * 28 * 4  # the driver's peak memory grew by less than the data's size
    index, predicted = parts(tmp_path / "out")
    assert [p["input"] for p in index["parts"]] == [f"{i:02d}.npy" for i in range(8)]
    assert [p["rows"] for p in index["parts"]] == [2500] * 8
    assert np.array_equal(predicted, np.load(tmp_path / "local.npy"))
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == ["index.json"] + [f"part-{i:05d}.npy" for i in range(8)]


def test_parquet_npz_and_image_shards_match_local_predict(tmp_path, mnist_model, ray_address):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    x = np.random.default_rng(1).random((60, 28, 28), dtype=np.float32)
    np.save(tmp_path / "all.npy", x)
    assert main(["predict", str(mnist_model), "-i", str(tmp_path / "all.npy"), "-o", str(tmp_path / "local.npy")]) == 0
    (tmp_path / "pq").mkdir()
    (tmp_path / "npz").mkdir()
    for i, part in enumerate(np.array_split(x, 3)):
        table = pa.table({"x": pa.array(list(part.reshape(len(part), -1)), pa.list_(pa.float32()))})
        pq.write_table(table, tmp_path / "pq" / f"p{i}.parquet")
        np.savez(tmp_path / "npz" / f"p{i}.npz", x=part)
    for kind in ("pq", "npz"):
        assert main(["predict", str(mnist_model), "-i", str(tmp_path / kind), "-o", str(tmp_path / f"{kind}.out"),
                     "--backend", "ray", "--address", ray_address, "--workers", "2"]) == 0
        assert np.array_equal(parts(tmp_path / f"{kind}.out")[1], np.load(tmp_path / "local.npy")), kind

    images = tmp_path / "images"
    (images / "digits").mkdir(parents=True)  # an image folder: a sub-folder per class
    for i in range(5):
        Image.fromarray((x[i] * 255).astype(np.uint8)).save(images / "digits" / f"{i}.png")
    assert main(["predict", str(mnist_model), "-i", str(images), "-o", str(tmp_path / "img.npy")]) == 0
    assert main(["predict", str(mnist_model), "-i", str(images), "-o", str(tmp_path / "img.out"),
                 "--backend", "ray", "--address", ray_address]) == 0
    index, predicted = parts(tmp_path / "img.out")
    assert index["parts"] == [{"file": "part-00000.npy", "input": "0.png..4.png", "rows": 5}]
    assert np.array_equal(predicted, np.load(tmp_path / "img.npy"))


def test_bad_input_is_a_one_line_error_and_writes_nothing(tmp_path, mnist_model, ray_address, capsys):
    (tmp_path / "in").mkdir()
    np.save(tmp_path / "in" / "a.npy", np.zeros((4, 5), np.float32))  # not the model's input shape
    out = tmp_path / "out"
    assert main(["predict", str(mnist_model), "-i", str(tmp_path / "in"), "-o", str(out), "--backend", "ray",
                 "--address", ray_address]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the actors' lines about their provider
    assert err == f"nnspec predict: error: {tmp_path / 'in' / 'a.npy'}: input 'image' takes arrays of shape " \
                  "(None, 28, 28), got (4, 5)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no output folder, no staging folder left
    out.mkdir()
    (out / "old.npy").write_bytes(b"")
    assert main(["predict", str(mnist_model), "-i", str(tmp_path / "in"), "-o", str(out), "--backend", "ray"]) == 2
    assert "give a new or empty folder" in capsys.readouterr().err
    assert main(["predict", str(mnist_model), "-i", str(tmp_path / "in" / "a.npy"), "-o", str(tmp_path / "o2"),
                 "--backend", "ray"]) == 2
    assert "reads a folder of .npy, .npz, Parquet or image files" in capsys.readouterr().err


def test_the_ray_backend_without_ray_is_a_one_line_error_naming_the_extra(tmp_path, mnist_model):
    shim = "import sys; sys.modules['ray'] = None; from nnspec.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", shim, "predict", str(mnist_model), "-i", str(tmp_path), "-o",
                           str(tmp_path / "out"), "--backend", "ray"], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (2, "nnspec predict: error: --backend ray needs Ray: "
                                                 "pip install 'nnspec[ray]'\n")
