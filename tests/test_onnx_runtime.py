"""Sessions: the provider really used, said in one line; options; IOBinding runs; CUDA where usable."""
import numpy as np
import onnxruntime as ort
import pytest

from conftest import FIXTURES, ROOT
from nnspec.backends.onnx import runtime
from nnspec.backends.onnx.runtime import CPU, CUDA, DeviceError, Session, choose, cuda_status, physical_cores
from onnx_support import analysis_of, assert_close, compiled, model_of, random_weights

CUDA_USABLE = cuda_status()[0]
SPECS, MNIST = ROOT / "specs", FIXTURES / "mnist"
LAYERS = [{"type": "Conv1D", "filters": 4, "kernel_size": 3, "padding": "same", "activation": "relu"},
          {"type": "MaxPooling1D"}, {"type": "LSTM", "units": 5},
          {"type": "Dense", "units": 3, "activation": "softmax"}]


@pytest.fixture(scope="module")
def proto():
    model = model_of(LAYERS, (8, 2))
    return compiled(model, random_weights(analysis_of(model), np.random.default_rng(0)))


def test_cpu_session(proto):
    session = Session(proto, "cpu", notice=False)
    assert session.provider == CPU and session.session.get_providers() == [CPU]
    options = session.session.get_session_options()
    assert options.intra_op_num_threads == physical_cores()
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


FAILED_CUDA = (False, "the CUDA provider could not start (libcublasLt.so.13: cannot open shared object file)")


@pytest.fixture
def cuda_fails(monkeypatch):
    """A machine whose onnxruntime-gpu cannot start CUDA; the test says whether it has a GPU."""
    monkeypatch.setattr(runtime, "cuda_status", lambda: FAILED_CUDA)
    return lambda present: monkeypatch.setattr(runtime, "gpu_present", lambda: present)


def test_cpu_fallback_is_said_in_one_line_where_a_gpu_is_present(proto, capsys, cuda_fails):
    cuda_fails(True)
    Session(proto, "auto")
    assert capsys.readouterr().err.splitlines() == [f"nnspec: running on {CPU} ({FAILED_CUDA[1]})"]


@pytest.mark.parametrize("device", ["auto", "cpu"])
def test_cpu_is_no_news_without_a_gpu_or_when_asked_for(proto, capsys, cuda_fails, device):
    cuda_fails(device == "cpu")  # --device cpu stays quiet even on a machine with a GPU
    assert Session(proto, device).provider == CPU
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("present", [True, False])
def test_cli_commands_say_the_fallback_only_where_a_gpu_is_present(tmp_path, capsys, cuda_fails, present):
    from nnspec.cli import main

    cuda_fails(present)
    np.save(tmp_path / "x.npy", np.zeros((4, 28, 28), np.float32))
    commands = [["predict", SPECS / "mnist_mlp.nn", "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy"],
                ["train", SPECS / "mnist_mlp.nn", "--data", f"mnist('{MNIST}', stop=64)", "--epochs", "1",
                 "--verbose", "2", "-o", tmp_path / "t.onnx"]]
    for command in commands:
        for device in "auto", "cpu":
            assert main([*map(str, command), "--device", device]) == 0
            said = [line for line in capsys.readouterr().err.splitlines() if "running on" in line]
            assert said == ([f"nnspec: running on {CPU} ({FAILED_CUDA[1]})"] if present and device == "auto" else []), command


@pytest.mark.skipif(CUDA_USABLE, reason="CUDA works here")
def test_without_cuda(proto):
    choice = choose("auto")
    assert choice.device == "cpu" and "CUDA" in choice.reason
    with pytest.raises(DeviceError, match="CUDA was requested but"):
        Session(proto, "cuda")


def test_unknown_device(proto):
    with pytest.raises(DeviceError, match="unknown device 'gpu'"):
        Session(proto, "gpu")


def test_repeated_runs_with_bound_inputs(proto):
    session = Session(proto, "cpu", notice=False)
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(n, 8, 2)).astype(np.float32) for n in (4, 1, 7)]
    plain = ort.InferenceSession(proto.SerializeToString(), providers=[CPU])
    for x in xs + xs:
        assert_close(session.run([x]), plain.run(None, {"x": x}), atol=1e-6)


@pytest.mark.skipif(not CUDA_USABLE, reason="no usable CUDA provider")
def test_cuda_matches_cpu(proto):
    cuda = Session(proto, "cuda", notice=False)
    assert cuda.provider == CUDA
    x = np.random.default_rng(2).normal(size=(16, 8, 2)).astype(np.float32)
    assert_close(cuda.run([x]), Session(proto, "cpu", notice=False).run([x]))
