"""The CUDA provider against the CPU provider: every layer's forward and gradient, the whole
training step placed on the GPU, and parameters that stay on the device between steps.

Skipped where onnxruntime cannot start CUDA (`bash bench/gpu.sh` sets up a GPU machine and runs
this file). TF32 stays off (`use_tf32=0`, the Session default), so float32 results must agree
with the CPU's up to summation order.
"""
import json
import os

import numpy as np
import onnxruntime as ort
import pytest

from nnspec.backends.onnx.runtime import CPU, CUDA, Session, cuda_status
from nnspec.backends.onnx.step import OnnxStep
from nnspec.backends.onnx.training import build
from nnspec.loader import loads
from nnspec.train.run import configure
from nnspec.weights import initial_weights
from onnx_support import analysis_of, compiled, model_of, random_input, random_weights
from test_layer_gradients import CASES as GRADIENT_CASES, gradient_model
from test_onnx_layers import CASES as FORWARD_CASES

DEVICE = os.environ.get("NNSPEC_TEST_DEVICE", "cuda")  # "cpu" dry-runs this file's logic without a GPU
CUDA_USABLE, WHY = cuda_status()
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not CUDA_USABLE, reason=f"no CUDA here: {WHY}")
PROVIDER = {"cuda": CUDA, "cpu": CPU}[DEVICE]
RTOL, ATOL = 1e-4, 1e-5


def assert_agree(got, want, what):
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"{what}: output {i}")


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "primitives"])
@pytest.mark.parametrize("name,layers,inputs,outputs", FORWARD_CASES, ids=[c[0] for c in FORWARD_CASES])
def test_forward_on_cuda_matches_cpu(name, layers, inputs, outputs, fused):
    rng = np.random.default_rng(0)
    model = model_of(layers, *inputs, outputs=outputs)
    proto = compiled(model, random_weights(analysis_of(model), rng), fused)
    arrays = [random_input(i.shape, i.dtype, rng) for i in model.inputs]
    device = Session(proto, DEVICE, notice=False)
    assert device.provider == PROVIDER
    assert_agree(device.run(arrays), Session(proto, "cpu", notice=False).run(arrays), name)


def _runs(proto, feeds, names, provider):
    options = [{"use_tf32": "0"}] if provider == CUDA else None
    session = ort.InferenceSession(proto.SerializeToString(), providers=[provider], provider_options=options)
    return session.run(["loss", *[f"g:{n}" for n in names]], feeds)


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_gradient_on_cuda_matches_cpu(case):
    proto, feeds, names = gradient_model(case)
    assert_agree(_runs(proto, feeds, names, PROVIDER), _runs(proto, feeds, names, CPU), case)


# A convnet with batch normalization and dropout, and a recurrent model: the step graphs of what
# users train, with every kind of update (Adam's slots, moving statistics, dropout masks).
STEP_SPECS = {
    "cnn": """model cnn {
  input image: float32[12, 12, 1]
  conv2d(8, 3, activation=relu)
  batch_normalization()
  max_pooling2d(2)
  dropout(0.25)
  flatten()
  dense(10, activation=softmax)
}
train { loss categorical_crossentropy  optimizer adam  batch_size 16 }""",
    "lstm": """model lstm {
  input x: float32[6, 3]
  lstm(8, return_sequences=true)
  gru(4)
  dense(1)
}
train { loss mse  optimizer rmsprop  batch_size 16 }""",
}


def _step(name: str, device: str) -> tuple[OnnxStep, list, list, np.ndarray]:
    spec = loads(STEP_SPECS[name], f"{name}.nn")
    config = configure(spec, {})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, *spec.model.inputs[0].shape)).astype(np.float32)
    out = spec.analysis.output_types[0].shape
    y = np.eye(out[-1], dtype=np.float32)[rng.integers(0, out[-1], 16)] if out[-1] > 1 else \
        rng.normal(size=(16, 1)).astype(np.float32)
    graphs = build(spec.analysis, config, [(y.shape[1:], "float32")])
    step = OnnxStep(graphs, initial_weights(spec.analysis, 0), device=device, notice=False, batch_size=16)
    return step, [x], [y], np.ones(16, np.float32)


@pytest.mark.parametrize("name", sorted(STEP_SPECS))
def test_training_steps_on_cuda_match_cpu(name):
    """Three whole steps (forward, loss, gradients, update) on each provider: the same losses and
    the same parameters and slots after them."""
    device, xs, ys, sw = _step(name, DEVICE)
    cpu = _step(name, "cpu")[0]
    assert device.train_session.provider == PROVIDER
    for k in range(3):
        got, want = device.train(xs, ys, sw, 1e-3, k)[0], cpu.train(xs, ys, sw, 1e-3, k)[0]
        assert got == pytest.approx(want, rel=1e-4), f"loss at step {k}"
    mine, theirs = device.state(), cpu.state()
    assert_agree([mine[k] for k in sorted(mine)], [theirs[k] for k in sorted(theirs)], f"{name} state")


@pytest.mark.parametrize("name", sorted(STEP_SPECS))
def test_parameters_stay_on_the_device_between_steps(name):
    step, xs, ys, sw = _step(name, DEVICE)
    before = {k: v.data_ptr() for k, v in step._state.items()}
    for k in range(2):  # double buffering: after two steps each state is back in its first buffer
        step.train(xs, ys, sw, 1e-3, k)
    assert all(v.device_name().lower() == DEVICE for v in step._state.values())
    updated = set(step.graphs.updates)
    assert {k: v.data_ptr() for k, v in step._state.items() if k in updated} == \
        {k: p for k, p in before.items() if k in updated}


@pytest.mark.parametrize("name", sorted(STEP_SPECS))
def test_whole_training_step_runs_on_cuda(name, tmp_path):
    """Node placement read from the session's own profile: no node of the step falls back to the CPU."""
    step, xs, ys, sw = _step(name, DEVICE)
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp_path / "step")
    providers = [(CUDA, {"use_tf32": "0"})] if PROVIDER == CUDA else [CPU]
    session = ort.InferenceSession(step.graphs.train.SerializeToString(), options, providers=providers)
    feeds = {i.name: np.zeros([d if isinstance(d, int) else 16 for d in i.shape], np.float32)
             for i in session.get_inputs()}
    feeds.update({step.graphs.x_names[0]: xs[0], step.graphs.y_names[0]: ys[0],
                  "sample_weight": sw, "batch_size": np.array(16, np.float32), "learning_rate": np.array(1e-3, np.float32),
                  "iteration": np.array(1, np.float32)})
    feeds.update(step.state())
    for d in step.graphs.noise:
        feeds[d.name] = np.ones((16, *d.shape[1:]), np.float32)
    session.run(None, feeds)
    with open(session.end_profiling()) as f:
        events = [e for e in json.load(f) if e.get("cat") == "Node" and "provider" in e.get("args", {})]
    assert events, "the profile recorded no node"
    elsewhere = sorted({(e["args"]["op_name"], e["args"]["provider"]) for e in events
                        if e["args"]["provider"] != PROVIDER})
    assert not elsewhere, f"nodes not on {PROVIDER}: {elsewhere}"
