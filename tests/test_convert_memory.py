"""Converting to ONNX streams the weights: each is read from the Keras file, folded and written in
its turn, so a conversion never holds a whole model's weights (the property behind ResNet50's peak
memory in bench/CONVERT_RESULTS.md). The streamed file is the model compiled in memory, byte for
byte in every tensor; a failure part-way leaves nothing behind."""
import tracemalloc
import zipfile

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from conftest import run_cli
from nnspec.backends.onnx import stream
from nnspec.cli import main
from nnspec.convert import convert, read
from nnspec.onnx_file import compile_model

# 16 convolutions of 3x3x128x128, each followed by a batch normalization folded into it: 9 MB of
# weights in 16 near-equal parts.
WIDE = """model wide {
  input x: float32[8, 8, 16]
  repeat 16 {
    conv2d(128, 3, padding=same)
    batch_normalization()
  }
  global_average_pooling2d()
  dense(10)
}
"""


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wide")
    (folder / "wide.nn").write_text(WIDE)
    for suffix in (".h5", ".keras"):
        convert(str(folder / "wide.nn"), str(folder / f"wide{suffix}"), seed=0)
    return folder


def _weight_bytes(path) -> int:
    source = read(str(path))
    return sum(np.asarray(a).nbytes for arrays in source.weights.values() for a in arrays)


@pytest.mark.parametrize("suffix, target", [(".h5", ".onnx"), (".keras", ".onnx"), (".h5", ".h5"),
                                            (".keras", ".keras"), (".keras", ".nn")])
def test_conversion_holds_about_one_layer_of_weights_at_a_time(wide, suffix, target, tmp_path):
    total = _weight_bytes(wide / f"wide{suffix}")
    convert(str(wide / f"wide{suffix}"), str(tmp_path / f"warm{target}"))  # imports outside the measure
    tracemalloc.start()
    try:
        convert(str(wide / f"wide{suffix}"), str(tmp_path / f"wide{target}"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Holding every weight once would take `total`; the file written is nearly as large.
    assert peak < 0.4 * total, f"peak {peak / 1e6:.1f} MB for {total / 1e6:.1f} MB of weights"
    written = sum(p.stat().st_size for p in tmp_path.glob("wide.*"))  # a .nn's weights are in wide.npz
    assert written > 0.9 * total  # a folded BN's 4 vectors are gone


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_the_streamed_file_is_the_model_compiled_in_memory(wide, suffix, tmp_path):
    convert(str(wide / f"wide{suffix}"), str(tmp_path / "wide.onnx"))
    onnx.checker.check_model(str(tmp_path / "wide.onnx"))
    streamed = onnx.load(str(tmp_path / "wide.onnx"))
    source = read(str(wide / f"wide{suffix}"))
    whole = compile_model(source.model, source.weights)
    assert streamed.graph.node == whole.graph.node
    assert streamed.graph.input == whole.graph.input and streamed.graph.output == whole.graph.output
    assert streamed.metadata_props == whole.metadata_props and streamed.opset_import == whole.opset_import
    tensors = {t.name: t.SerializeToString() for t in whole.graph.initializer}
    assert {t.name: t.SerializeToString() for t in streamed.graph.initializer} == tensors
    # the same input gives the same bytes
    convert(str(wide / f"wide{suffix}"), str(tmp_path / "again.onnx"))
    assert (tmp_path / "again.onnx").read_bytes() == (tmp_path / "wide.onnx").read_bytes()


@pytest.mark.parametrize("array", [np.arange(120, dtype=np.float32).reshape(2, 3, 20),
                                   np.arange(200, dtype=np.int64)[::2], np.ones((9, 9), bool),
                                   np.arange(100, dtype=">f4"), np.arange(90, dtype=np.float16)])
def test_a_streamed_tensor_is_the_one_numpy_helper_makes(array):
    model = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    data = b"".join(bytes(chunk) for chunk in stream.chunks(model, [("w", array)]))
    (tensor,) = onnx.load_from_string(data).graph.initializer
    assert tensor.SerializeToString() == numpy_helper.from_array(array.astype(array.dtype.newbyteorder("<")),
                                                                 "w").SerializeToString()
    np.testing.assert_array_equal(numpy_helper.to_array(tensor), array)


def test_a_model_over_protobufs_limit_is_refused_with_nothing_written(wide, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stream, "MAX_PROTO_BYTES", 1 << 20)
    assert main(["convert", str(wide / "wide.h5"), str(tmp_path / "wide.onnx")]) == 2
    err = capsys.readouterr().err
    assert "an ONNX file holds at most 2 GiB" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_weight_unreadable_while_writing_leaves_nothing(wide, tmp_path, monkeypatch, capsys):
    from nnspec.backends.keras import h5safe
    from nnspec.backends.keras.errors import KerasFormatError

    def unreadable(self, dtype=None, copy=None):
        raise KerasFormatError("wide.h5", "/model_weights/conv2d_7", "unreadable dataset: test")

    monkeypatch.setattr(h5safe.Stored, "__array__", unreadable)
    assert main(["convert", str(wide / "wide.h5"), str(tmp_path / "wide.onnx")]) == 2
    err = capsys.readouterr().err
    assert "unreadable dataset" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_weights_member_of_a_keras_archive_is_refused(wide, tmp_path):
    data = bytearray((wide / "wide.keras").read_bytes())
    with zipfile.ZipFile(wide / "wide.keras") as zf:
        info = zf.getinfo("model.weights.h5")
    data[info.header_offset + info.compress_size - 1000] ^= 0xFF  # inside the member's last dataset
    (tmp_path / "bad.keras").write_bytes(bytes(data))
    result = run_cli("convert", tmp_path / "bad.keras", tmp_path / "bad.onnx")
    assert result.returncode == 2 and "bad.keras" in result.stderr and "Bad CRC-32" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bad.onnx").exists()
