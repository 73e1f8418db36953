"""Inference speed: nnspec's runtime path against plain onnxruntime on tf2onnx's exports.

    python bench/inference.py [--seconds 0.5] [--rounds 5]

Latency is the median time of one batch-1 call; throughput is samples per second at batch 128.
Every contender runs in this one process, round-robin, so drift in the machine's speed falls on
all of them alike. Contenders per model:
- nnspec predict: `nnspec.load(...).predict(x, batch_size=len(x))` (input checks included);
- nnspec session: the runtime's Session.run (IOBinding) on the same model;
- onnxruntime: `InferenceSession(file).run(None, {name: x})` with default options, on
  tf2onnx's export of the same architecture with the same Keras weights where one exists.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fixtures' specs and Keras weights reader live with the tests

import nnspec  # noqa: E402
from test_onnx_graph import FIXTURES, keras_model, keras_weights  # noqa: E402

BATCHES = {"latency": 1, "throughput": 128}


def timed(fn, seconds: float) -> float:
    """Median seconds per call over about `seconds` of calls."""
    fn()
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def keras_model_file(path: Path):
    """The fixture loaded by real Keras 2 (tf_keras) or Keras 3, where installed by hand; else None."""
    try:
        import tf_keras as keras
    except ImportError:
        try:
            from tensorflow import keras
        except ImportError:
            return None
    return keras.models.load_model(str(path), compile=False), keras.__version__


def contenders(model: nnspec.Model, tf2onnx: Path | None, keras_file: Path | None) -> dict[str, tuple[int, callable]]:
    """Per contender: (ONNX nodes, make(x) -> a no-argument call running one batch)."""
    nodes = len(model.onnx.graph.node)
    out = {
        "nnspec predict": (nodes, lambda x: lambda: model.predict(x, batch_size=len(x))),
        "nnspec session": (nodes, lambda x: lambda: model.session.run([x])),
    }
    if tf2onnx is not None:
        plain = ort.InferenceSession(str(tf2onnx), providers=["CPUExecutionProvider"])
        feed = plain.get_inputs()[0].name
        out["onnxruntime, tf2onnx file"] = (len(onnx.load(str(tf2onnx)).graph.node),
                                            lambda x: lambda: plain.run(None, {feed: x}))
    loaded = keras_model_file(keras_file) if keras_file is not None else None
    if loaded is not None:
        keras, version = loaded
        out[f"Keras {version} predict"] = (0, lambda x: lambda: keras.predict(x, batch_size=len(x), verbose=0))
    return out


def models():
    """(row name, nnspec model, tf2onnx file or None)."""
    for name in ("mlp_sigmoid", "cnn_mnist"):
        spec_model = keras_model(name)
        model = nnspec.load(spec_model, weights=keras_weights(FIXTURES / f"{name}.k2.h5"), device="cpu")
        yield f"{name} (Keras fixture)", model, FIXTURES / f"{name}.tf2onnx.onnx", FIXTURES / f"{name}.k2.h5"
    for name in ("mnist_mlp", "mnist_cnn"):
        yield f"specs/{name}.nn", nnspec.load(ROOT / "specs" / f"{name}.nn", seed=0, device="cpu"), None, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="round-robin rounds; the median is reported")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for row, model, tf2onnx, keras_file in models():
        shape = model.inputs[0].shape[1:]
        inputs = {k: rng.normal(size=(b, *shape)).astype(np.float32) for k, b in BATCHES.items()}
        who = contenders(model, tf2onnx, keras_file)
        calls = {(name, k): make(inputs[k]) for name, (_, make) in who.items() for k in BATCHES}
        results = {key: [] for key in calls}
        for _ in range(args.rounds):
            for key, call in calls.items():
                results[key].append(timed(call, args.seconds))
        for name, (nodes, _) in who.items():
            latency = statistics.median(results[(name, "latency")])
            throughput = BATCHES["throughput"] / statistics.median(results[(name, "throughput")])
            rows.append((row, name, nodes, latency * 1e6, throughput))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs ({platform.processor() or 'unknown CPU'}); "
          f"onnxruntime {ort.__version__}, provider CPUExecutionProvider; python {platform.python_version()}\n")
    print("| model | path | ONNX nodes | latency, batch 1 (µs) | throughput, batch 128 (samples/s) |")
    print("| --- | --- | ---: | ---: | ---: |")
    for row, who, nodes, latency, throughput in rows:
        print(f"| {row} | {who} | {nodes} | {latency:,.0f} | {throughput:,.0f} |")
    if keras_model_file(FIXTURES / "mlp_sigmoid.k2.h5") is None:
        print("\nKeras predict: skipped (TensorFlow is not installed)")



if __name__ == "__main__":
    main()
