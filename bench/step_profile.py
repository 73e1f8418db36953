"""Where a training step's time goes: onnxruntime's own session profile of the step graph, summed
per op type (and the heaviest single nodes), as a markdown table for bench/PROFILE.md.

    python bench/step_profile.py specs/mnist_cnn.nn [--batch 128] [--steps 10] [--nodes 12]

The step is the one `nnspec train` runs (SGD(0.01), random data of the spec's shapes); the first
two steps are left out as warm-up.
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from nnspec.backends.onnx.runtime import intra_op_threads
from nnspec.backends.onnx.training import build
from nnspec.loader import load
from nnspec.train.run import configure
from nnspec.weights import initial_weights


def step_feeds(spec, graphs, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shape, out = spec.model.inputs[0].shape, spec.analysis.output_types[0].shape
    feeds = {graphs.x_names[0]: rng.normal(size=(batch, *shape)).astype(np.float32),
             graphs.y_names[0]: np.eye(out[-1], dtype=np.float32)[rng.integers(0, out[-1], batch)],
             "sample_weight": np.ones(batch, np.float32), "batch_size": np.array(batch, np.float32),
             "learning_rate": np.array(0.01, np.float32), "iteration": np.array(1, np.float32)}
    weights = initial_weights(spec.analysis, 0)
    feeds.update({p.name: np.asarray(weights[p.layer][p.index], np.float32) for p in graphs.params})
    feeds.update({k: np.asarray(v, np.float32) for k, v in graphs.slots.items()})
    for d in graphs.noise:
        feeds[d.name] = d.sample(rng, batch)
    return feeds


def profile(path: str, batch: int, steps: int) -> tuple[list[dict], int]:
    spec = load(path)
    config = configure(spec, {"optimizer": {"name": "sgd", "learning_rate": 0.01}, "metrics": [], "callbacks": [],
                              "batch_size": batch})
    graphs = build(spec.analysis, config, [(spec.analysis.output_types[0].shape, "float32")])
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "step")
        session = ort.InferenceSession(graphs.train.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feeds = step_feeds(spec, graphs, batch)
        wanted = {i.name for i in session.get_inputs()}
        feeds = {k: v for k, v in feeds.items() if k in wanted}
        for _ in range(steps):
            session.run(None, feeds)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    runs = [e for e in events if e.get("name") == "model_run"]
    skip_before = runs[2]["ts"] if len(runs) > 2 else 0  # warm-up runs left out
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= skip_before]
    return nodes, max(len(runs) - 2, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=12, help="how many of the heaviest nodes to list")
    args = parser.parse_args()
    nodes, runs = profile(args.spec, args.batch, args.steps)
    total = sum(e["dur"] for e in nodes)
    by_op = collections.Counter()
    count = collections.Counter()
    by_node = collections.Counter()
    for e in nodes:
        by_op[e["args"]["op_name"]] += e["dur"]
        count[e["args"]["op_name"]] += 1
        by_node[(e["name"][:-len("_kernel_time")], e["args"]["op_name"])] += e["dur"]
    print(f"`python bench/step_profile.py {args.spec} --batch {args.batch} --steps {args.steps}`: "
          f"{total / runs / 1000:.1f} ms of kernels per step, {intra_op_threads()} thread(s)\n")
    print("| op type | nodes | ms per step | share |\n| --- | ---: | ---: | ---: |")
    for op, dur in by_op.most_common():
        if dur / total >= 0.005:
            print(f"| {op} | {count[op] // runs} | {dur / runs / 1000:.2f} | {100 * dur / total:.1f}% |")
    print("\n| node | op | ms per step |\n| --- | --- | ---: |")
    for (name, op), dur in by_node.most_common(args.nodes):
        print(f"| {name} | {op} | {dur / runs / 1000:.2f} |")


if __name__ == "__main__":
    main()
