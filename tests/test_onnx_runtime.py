"""Sessions: the provider really used, said in one line; options; IOBinding runs; CUDA where usable."""
import numpy as np
import onnxruntime as ort
import pytest

from nnspec.backends.onnx.runtime import CPU, CUDA, DeviceError, Session, choose, cuda_status, physical_cores
from onnx_support import analysis_of, assert_close, compiled, model_of, random_weights

CUDA_USABLE = cuda_status()[0]
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


def test_one_line_notice(proto, capsys):
    Session(proto, "auto")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnspec: running on ")


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
