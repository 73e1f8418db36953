"""onnxruntime's optimized training graphs, kept for the next session of the same graph
(backends/onnx/runtime.py SessionCache): the steps they run are bit-identical to a fresh session's."""
import numpy as np
import onnxruntime as ort
import pytest

from nnspec.backends.onnx import runtime
from nnspec.backends.onnx.step import OnnxStep
from nnspec.backends.onnx.training import build
from nnspec.loader import loads
from nnspec.train.run import configure
from nnspec.weights import initial_weights

# a convolution (onnxruntime lays it out for the CPU's vector width), dropout (masks from the seed), Adam (slots)
SPEC = """model small {
  input image: float32[8, 8, 1]
  conv2d(4, 3, activation=relu)
  max_pooling2d(2)
  flatten()
  dropout(0.25)
  dense(3, activation=softmax)
}
train {
  loss categorical_crossentropy
  optimizer adam
  metrics [accuracy]
}
"""


def steps(n: int = 3) -> tuple[list[float], list[np.ndarray]]:
    """Losses and final weights of n training steps on fixed data, in a fresh OnnxStep."""
    spec = loads(SPEC, "small.nn")
    graphs = build(spec.analysis, configure(spec, {}), [((3,), "float32")])
    step = OnnxStep(graphs, initial_weights(spec.analysis, 0), device="cpu", notice=False, seed=1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 1)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    losses = [step.train([x], [y], np.ones(16, np.float32), 0.01, i)[0] for i in range(n)]
    losses.append(step.evaluate([x], [y], np.ones(16, np.float32))[0])
    return losses, [w for ws in step.weights().values() for w in ws]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(runtime.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(runtime.SessionCache, "MIN_NODES", 0)  # the small graph counts as deep
    return tmp_path / "sessions"


def loaded_paths(monkeypatch) -> list[str]:
    """The files sessions are created from, from here on (a cached graph is loaded by path)."""
    paths = []
    original = ort.InferenceSession

    def spy(model, *args, **kwargs):
        if isinstance(model, str):
            paths.append(model)
        return original(model, *args, **kwargs)
    monkeypatch.setattr(runtime.ort, "InferenceSession", spy)
    return paths


def assert_identical(a, b):
    assert a[0] == b[0]
    assert all(np.array_equal(x, y) for x, y in zip(a[1], b[1]))


def test_a_cached_optimized_graph_runs_bit_identical_steps(cache, monkeypatch):
    monkeypatch.setattr(runtime.SessionCache, "MIN_NODES", 10 ** 9)
    uncached = steps()
    assert not cache.exists()
    monkeypatch.setattr(runtime.SessionCache, "MIN_NODES", 0)
    first = steps()  # optimizes and saves: the training and the evaluation graph
    assert len(list(cache.glob("*.onnx"))) == 2 and not list(cache.glob("*.tmp"))
    paths = loaded_paths(monkeypatch)
    second = steps()
    assert sorted(paths) == sorted(str(p) for p in cache.glob("*.onnx"))  # both came from the cache
    assert_identical(first, uncached)
    assert_identical(second, uncached)


def test_an_unreadable_cached_graph_is_rebuilt(cache, monkeypatch):
    reference = steps()
    for path in cache.glob("*.onnx"):
        path.write_bytes(b"not a model")
    assert_identical(steps(), reference)
    assert all(path.stat().st_size > 100 for path in cache.glob("*.onnx"))  # written again, whole
    paths = loaded_paths(monkeypatch)
    assert_identical(steps(), reference)
    assert len(paths) == 2


def test_the_cache_keeps_its_newest_files(cache, monkeypatch):
    monkeypatch.setattr(runtime.SessionCache, "ENTRIES", 1)
    steps()
    assert len(list(cache.glob("*.onnx"))) == 1
