"""Where the time to a model's first training step goes: building the step graph (nnspec's Python:
tracing, autograd, ONNX emission), creating onnxruntime's session, the first step, and warm steps.

    python bench/step_timing.py specs/lstm_2x128.nn [--batch 64] [--steps 5]

The step is bench/step_profile.py's (SGD, random data of the spec's shapes).
"""
from __future__ import annotations

import argparse
import time

import onnxruntime as ort

from nnspec.backends.onnx.runtime import intra_op_threads
from nnspec.backends.onnx.training import build
from nnspec.loader import load
from nnspec.train.run import configure
from step_profile import step_feeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    spec = load(args.spec)
    config = configure(spec, {"optimizer": {"name": "sgd", "learning_rate": 0.01}, "metrics": [], "callbacks": [],
                              "batch_size": args.batch})
    start = time.perf_counter()
    graphs = build(spec.analysis, config, [(spec.analysis.output_types[0].shape, "float32")])
    built = time.perf_counter()
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads()
    session = ort.InferenceSession(graphs.train.SerializeToString(), options, providers=["CPUExecutionProvider"])
    created = time.perf_counter()
    wanted = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in step_feeds(spec, graphs, args.batch).items() if k in wanted}
    session.run(None, feeds)
    first = time.perf_counter()
    for _ in range(args.steps):
        session.run(None, feeds)
    warm = (time.perf_counter() - first) / args.steps
    print(f"{args.spec}: {len(graphs.train.graph.node)} nodes in the step; build {built - start:.2f} s, "
          f"session {created - built:.2f} s, first step {first - created:.2f} s, warm step {warm * 1000:.1f} ms "
          f"({args.batch / warm:.0f} samples/s), {intra_op_threads()} thread(s)")


if __name__ == "__main__":
    main()
