"""Where the time outside the training steps goes: start-up of `nnspec check`/`summary`, the time to the
first step of `nnspec train`, what a run does after its last step, and onnxruntime session creation of a
deep model's training step.

    python bench/startup.py                  # every measure, each in fresh processes
    python bench/startup.py --only check,train --repeats 5

Times are wall and CPU (user + sys) seconds; on a shared machine read the CPU times, and the load
average printed with them. Each command runs through the real entry point; the training runs are
timed by a probe around the real `nnspec train` (no product code is changed to be measured).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MNIST = ROOT / "tests" / "fixtures" / "mnist"

# Runs `nnspec train` in this process and records, around the real functions, when each training step
# ran and how long the work after the steps took; prints one JSON line.
TRAIN_PROBE = """
import json, resource, sys, time
launched = float(sys.argv[1])
marks = {"steps": [], "phases": {}}

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

def timed(owner, name, key):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start, start_cpu = time.time(), cpu()
        try:
            return original(*args, **kwargs)
        finally:
            wall, used = marks["phases"].get(key, (0.0, 0.0))
            marks["phases"][key] = (wall + time.time() - start, used + cpu() - start_cpu)
            if key == "step":
                marks["steps"].append((start, time.time(), cpu()))
    setattr(owner, name, wrapper)

from nnspec.backends.onnx import step, runtime, training
from nnspec.train import run, checkpoint, loop
from nnspec import engine, plots
timed(engine, "open_model", "reading the spec")
timed(engine, "read_data", "reading the data")
timed(run, "fit_data", "checking the data")
timed(training, "build", "building the step graph")
timed(step.OnnxStep, "train", "step")
timed(runtime.Session, "__init__", "session creation")
timed(loop.Trainer, "evaluate", "validation")
timed(checkpoint, "save", "checkpoint")
timed(run, "_save_results", "saving results")
timed(plots, "plot_history", "history picture")
from nnspec.cli import main
code = main(sys.argv[2:])
end = time.time()
steps = marks["steps"]
print(json.dumps({"code": code, "first_step_s": steps[0][1] - launched, "first_step_cpu_s": steps[0][2],
                  "first_step_run_s": steps[0][1] - steps[0][0],
                  "median_step_s": sorted(b - a for a, b, _ in steps)[len(steps) // 2],
                  "steps": len(steps), "steps_s": sum(b - a for a, b, _ in steps), "total_s": end - launched,
                  "after_last_step_s": end - steps[-1][1], "after_last_step_cpu_s": cpu() - steps[-1][2],
                  "cpu_s": cpu(),
                  "phases (wall, cpu)": {k: [round(t, 3) for t in v] for k, v in marks["phases"].items()}}))
"""


def load() -> str:
    return open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"


def command_times(argv: list[str], repeats: int) -> dict:
    """The fastest of `repeats` runs of a command by CPU time, with its wall time."""
    best = None
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, cwd=tempfile.gettempdir())
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode:
            raise SystemExit(f"{' '.join(argv)} failed:\n{result.stderr}")
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        if best is None or cpu < best["cpu_s"]:
            best = {"cpu_s": round(cpu, 3), "wall_s": round(wall, 3)}
    return {**best, "load": load()}


def train_times(spec: Path, extra: list[str], repeats: int) -> dict:
    """The run with the fastest first step of `repeats` one-epoch trainings, in a scratch folder."""
    best = None
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            argv = [sys.executable, "-c", TRAIN_PROBE, str(time.time()), "train", str(spec), "--epochs", "1",
                    "--verbose", "0", "-o", str(Path(folder) / "model.onnx"), *extra]
            result = subprocess.run(argv, capture_output=True, text=True, cwd=folder)
        if result.returncode:
            raise SystemExit(f"training {spec} failed:\n{result.stderr}")
        report = json.loads(result.stdout.strip().splitlines()[-1])
        if best is None or report["first_step_cpu_s"] < best["first_step_cpu_s"]:
            best = report
    return {**best, "load": load()}


def deep_mlp(layers: int) -> str:
    body = "\n".join("  dense(16, activation=relu)" for _ in range(layers))
    return (f"model deep_mlp {{\n  input x: float32[16]\n{body}\n  dense(1)\n}}\n"
            "train {\n  loss mse\n  optimizer sgd\n  batch_size 32\n}\n")


# onnxruntime's session options that change how long creating a session takes (PROFILE.md)
SESSION_VARIANTS = {
    "as nnspec creates it": {},
    "ORT_ENABLE_BASIC": {"graph_optimization_level": "ORT_ENABLE_BASIC"},
    "ORT_DISABLE_ALL": {"graph_optimization_level": "ORT_DISABLE_ALL"},
    "enable_mem_pattern=False": {"enable_mem_pattern": False},
    "enable_mem_reuse=False": {"enable_mem_reuse": False},
    "nnspec's session cache, first session (optimizes, saves)": {"cache": True},
    "nnspec's session cache, next session (loads the optimized graph)": {"cache": True},
}

SESSION_PROBE = """
import json, sys, time
import onnxruntime as ort
from nnspec.backends.onnx import runtime
from nnspec.backends.onnx.training import build
from nnspec.loader import loads
from nnspec.train.run import configure

variant = json.loads(sys.argv[2])
cache = variant.pop("cache", False)
spec = loads(open(sys.argv[1]).read(), sys.argv[1])
config = configure(spec, {})
start = time.perf_counter()
graphs = build(spec.analysis, config, [((1,), "float32")])
built = time.perf_counter() - start
original = ort.SessionOptions
def options():
    o = original()
    for key, value in variant.items():
        setattr(o, key, getattr(ort.GraphOptimizationLevel, value) if key == "graph_optimization_level" else value)
    return o
runtime.ort.SessionOptions = options
start, start_cpu = time.perf_counter(), time.process_time()
runtime.Session(graphs.train, "cpu", notice=False, cache=cache)
print(json.dumps({"nodes": len(graphs.train.graph.node), "build_s": round(built, 3),
                  "session_s": round(time.perf_counter() - start, 3),
                  "session_cpu_s": round(time.process_time() - start_cpu, 3)}))
"""


def session_times(layers: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / f"deep_{layers}.nn"
        spec.write_text(deep_mlp(layers))
        out = {}
        for name, variant in SESSION_VARIANTS.items():
            result = subprocess.run([sys.executable, "-c", SESSION_PROBE, str(spec), json.dumps(variant)],
                                    capture_output=True, text=True, cwd=folder,
                                    env={**os.environ, "NNSPEC_CACHE_DIR": folder})
            if result.returncode:
                raise SystemExit(f"session of {spec} failed:\n{result.stderr}")
            out[name] = json.loads(result.stdout.strip().splitlines()[-1])
        return {**out, "load": load()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="check,summary,train,cnn,deep",
                        help="check, summary, train (mnist_mlp's first step), cnn (mnist_cnn's time beyond "
                             "its steps), deep (session creation of a deep MLP)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=1000, help="depth of the deep MLP")
    args = parser.parse_args(argv)
    nnspec = [sys.executable, "-m", "nnspec.cli"]  # run outside the checkout: the installed nnspec
    mlp = str(ROOT / "specs" / "mnist_mlp.nn")
    wanted = args.only.split(",")
    results = {}
    if "check" in wanted:
        results["nnspec check specs/mnist_mlp.nn"] = command_times([*nnspec, "check", mlp],
                                                                   args.repeats)
    if "summary" in wanted:
        results["nnspec summary specs/mnist_mlp.nn"] = command_times([*nnspec, "summary", mlp],
                                                                     args.repeats)
    if "train" in wanted:
        results["nnspec train specs/mnist_mlp.nn --epochs 1"] = train_times(ROOT / "specs" / "mnist_mlp.nn", [],
                                                                            args.repeats)
    if "cnn" in wanted:
        data = f'mnist("{MNIST}", normalize=255, stop=1024)'
        results["nnspec train specs/mnist_cnn.nn --epochs 1 (1,024 MNIST images)"] = train_times(
            ROOT / "specs" / "mnist_cnn.nn", ["--data", data], 1)
    if "deep" in wanted:
        results[f"session creation, {args.layers}-layer MLP training step"] = session_times(args.layers)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
