"""`nnspec compile` and `nnspec predict`, run as a user runs them."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from nnspec.backends.onnx.runtime import cuda_status

FIXTURES = Path(__file__).parent / "fixtures" / "keras"
SPEC = """model grid {
  input image: float32[2, 3]
  flatten()
  dense(4, activation=softmax)
}
"""
TWO_OUTPUTS = """model two {
  input seq: float32[5, 2]
  out, state = gru(seq, 3, return_state=true)
  output out, state
}
"""


def nnspec(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nnspec.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True)


@pytest.fixture
def work(tmp_path):
    (tmp_path / "grid.nn").write_text(SPEC)
    (tmp_path / "two.nn").write_text(TWO_OUTPUTS)
    x = np.random.default_rng(0).normal(size=(5, 2, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return tmp_path


def assert_one_line_error(result, *absent):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], result.stderr
    for path in absent:
        assert not Path(path).exists()


def test_compile_then_predict(work):
    r = nnspec("compile", "grid.nn", "-o", "out/grid.onnx", "--seed", 4, "--opset", 21, cwd=work)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "out/grid.onnx: 3 nodes, 28 parameters, opset 21"
    model = onnx.load(str(work / "out/grid.onnx"))
    onnx.checker.check_model(model, full_check=True)
    from_onnx = nnspec("predict", "out/grid.onnx", "-i", "x.npy", "-o", "a.npy", cwd=work)
    assert from_onnx.returncode == 0, from_onnx.stderr
    from_spec = nnspec("predict", "grid.nn", "--seed", 4, "-i", "x.npy", "-o", "b.npy", cwd=work)
    assert from_spec.returncode == 0, from_spec.stderr
    a, b = np.load(work / "a.npy"), np.load(work / "b.npy")
    assert a.shape == (5, 4) and np.array_equal(a, b)
    printed = nnspec("predict", "out/grid.onnx", "-i", "x.npy", "--batch-size", 2, "--device", "cpu", cwd=work)
    assert printed.stdout.splitlines()[0].split() == ["index", "class", "probability"]  # a softmax: classes
    assert [int(line.split()[1]) for line in printed.stdout.splitlines()[1:]] == a.argmax(axis=1).tolist()
    assert printed.stderr == ""  # --device cpu: the CPU is no news


def test_input_formats(work):
    x = np.load(work / "x.npy")
    rows = "\n".join(",".join(map(repr, row)) for row in x.reshape(5, 6).tolist())
    (work / "x.csv").write_text("a,b,c,d,e,f\n" + rows + "\n")
    (work / "bare.csv").write_text(rows + "\n")
    np.savez(work / "x.npz", x=x)
    np.savez(work / "named.npz", image=x)
    want = None
    for path in ("x.npy", "x.csv", "bare.csv", "x.npz", "named.npz"):
        r = nnspec("predict", "grid.nn", "--seed", 0, "-i", path, "-o", f"{path}.npy", cwd=work)
        assert r.returncode == 0, r.stderr
        got = np.load(work / f"{path}.npy")
        want = got if want is None else want
        assert np.allclose(got, want, atol=1e-7), path


def test_several_outputs(work):
    np.save(work / "seq.npy", np.ones((2, 5, 2), np.float32))
    r = nnspec("predict", "two.nn", "--seed", 0, "-i", "seq.npy", "-o", "y.npz", cwd=work)
    assert r.returncode == 0, r.stderr
    with np.load(work / "y.npz") as y:
        assert sorted(y.files) == ["out", "out:1"] and np.array_equal(y["out"], y["out:1"])
    printed = nnspec("predict", "two.nn", "-i", "seq.npy", cwd=work)
    assert printed.stdout.startswith("out:\nindex  values (shape (3,))") and "\nout:1:\nindex" in printed.stdout
    assert_one_line_error(nnspec("predict", "two.nn", "-i", "seq.npy", "-o", "y.npy", cwd=work), work / "y.npy")


def test_predict_a_foreign_onnx_file(work):
    np.save(work / "digits.npy", np.zeros((2, 784), np.float32))
    r = nnspec("predict", FIXTURES / "mlp_sigmoid.tf2onnx.onnx", "-i", "digits.npy", "-o", "y.npy", cwd=work)
    assert r.returncode == 0, r.stderr
    assert np.load(work / "y.npy").shape == (2, 10)


def test_bad_input(work):
    (work / "broken.nn").write_text("model broken {\n  input x: float32[3]\n  dens(4)\n}\n")
    np.savez(work / "w.npz", **{"dense/0/kernel": np.zeros((6, 4))})
    np.save(work / "wrong.npy", np.zeros((2, 7), np.float32))
    (work / "text.csv").write_text("1,2,3,4,5,6\n1,2,x,4,5,6\n")
    out = work / "o.onnx"
    r = nnspec("compile", "broken.nn", "-o", out, cwd=work)
    assert r.returncode == 2 and "unknown layer 'dens'; did you mean 'dense'?" in r.stderr and not out.exists()
    assert_one_line_error(nnspec("compile", "missing.nn", "-o", out, cwd=work), out)
    assert_one_line_error(nnspec("compile", "grid.nn", "-o", out, "--weights", "w.npz", cwd=work), out)
    assert_one_line_error(nnspec("compile", "grid.nn", "-o", out, "--weights", "x.npy", cwd=work), out)
    assert_one_line_error(nnspec("compile", "grid.nn", "-o", out, "--opset", 99, cwd=work), out)
    assert_one_line_error(nnspec("compile", "grid.nn", "-o", out, "--seed", 1, "--weights", "w.npz", cwd=work), out)
    assert_one_line_error(nnspec("compile", "x.npy", "-o", out, cwd=work), out)
    (work / "taken").mkdir()
    assert_one_line_error(nnspec("compile", "grid.nn", "-o", "taken", cwd=work))
    y = work / "y.npy"
    assert_one_line_error(nnspec("predict", "grid.nn", "-i", "wrong.npy", "-o", y, cwd=work), y)
    assert_one_line_error(nnspec("predict", "grid.nn", "-i", "text.csv", "-o", y, cwd=work), y)
    assert_one_line_error(nnspec("predict", "grid.nn", "-i", "nothing.npy", "-o", y, cwd=work), y)
    assert_one_line_error(nnspec("predict", "grid.nn", "-i", "grid.nn", "-o", y, cwd=work), y)
    assert_one_line_error(nnspec("predict", FIXTURES / "cnn_mnist.tf2onnx.onnx", "--seed", 1, "-i", "x.npy",
                                 cwd=work))


@pytest.mark.skipif(cuda_status()[0], reason="CUDA works here")
def test_cuda_requested_without_cuda(work):
    r = nnspec("predict", "grid.nn", "-i", "x.npy", "--device", "cuda", "-o", "y.npy", cwd=work)
    assert_one_line_error(r, work / "y.npy")
    assert "CUDA was requested but" in r.stderr
