"""nnspec against its peers in one run: training, inference, conversion and start-up.

    python bench/compare.py [--repeats 3] [--threads N] [--models mlp,cnn,resnet,lstm,lstm2x128,gru,gru2x128]
                            [--tf-python PATH] [--device cpu|cuda] [--quick]

Every measurement runs in a fresh worker process (so each reports its own peak memory), and the
contenders take turns: repeat 1 of every contender, then repeat 2, ..., so that a busy machine slows
all of them alike. The table holds medians over the repeats and, beside each, the worker's peak
resident memory. Contenders:
- nnspec: the training step graph (OnnxStep, as `nnspec train` runs it) and the inference session;
- PyTorch eager (where `torch` imports): the same architecture built from the spec's layers;
- Keras 2 (tf_keras) and Keras 3 on TensorFlow, run by `--tf-python` (an interpreter with
  TensorFlow; by default this one, where TensorFlow imports): nnspec's own Keras export of the spec,
  trained with `fit`;
- onnxruntime on tf2onnx's export of that Keras model, for inference and conversion.
Peers come from the optional `.[bench]` extra or a separate environment, never from nnspec's
dependencies. All contenders get the same thread count, batch, optimizer and (random) data.

Training is samples/s over warm steps; inference at batch 1 is the median latency of a call, at
batch 128 samples/s; convert is a whole `nnspec convert model.h5 model.onnx` process (tf2onnx's
`from_keras` for the peer); start-up is the wall time from launching the process to the end of its
first training step (and, for nnspec alone, of a whole `nnspec check`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Workload:
    spec: str
    batch: int
    optimizer: dict
    # timed training steps (after as many warm-up steps as a third of them, at least 2): about a second or
    # more for every contender, so that a step's jitter and Keras fit's set-up weigh little
    steps: int


WORKLOADS = {
    "mlp": Workload("specs/mnist_mlp.nn", 128, {"name": "sgd", "learning_rate": 0.01}, 150),
    "cnn": Workload("specs/mnist_cnn.nn", 128, {"name": "sgd", "learning_rate": 0.01}, 24),
    "resnet": Workload("specs/cifar_resnet.nn", 128, {"name": "sgd", "learning_rate": 0.01}, 12),
    "lstm": Workload("specs/cosine_lstm.nn", 32, {"name": "adam", "learning_rate": 0.001}, 300),
    "lstm2x128": Workload("specs/lstm_2x128.nn", 64, {"name": "adam", "learning_rate": 0.001}, 12),
    "gru": Workload("specs/cosine_gru.nn", 32, {"name": "adam", "learning_rate": 0.001}, 300),
    "gru2x128": Workload("specs/gru_2x128.nn", 64, {"name": "adam", "learning_rate": 0.001}, 12),
}
INFERENCE_BATCHES = (1, 128)
PEAK = "peak_mib"


# ---- measurements inside a worker --------------------------------------------------------------------

def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def data_for(shape: tuple, out: tuple, batch: int, classes: bool, seed: int = 0):
    """Random inputs and targets: one-hot classes for a softmax output, else real values."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, *shape)).astype(np.float32)
    y = np.eye(out[-1], dtype=np.float32)[rng.integers(0, out[-1], batch)] if classes else \
        rng.normal(size=(batch, *out)).astype(np.float32)
    return x, y


def time_training(step, steps: int, batch: int, launched: float) -> dict:
    """`step()` runs one training step; the first one ends the start-up."""
    step()
    result = {"startup_s": time.time() - launched}
    for _ in range(max(2, steps // 3)):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    result["train_per_s"] = steps * batch / (time.perf_counter() - start)
    result["train_" + PEAK] = peak_mib()
    return result


def time_inference(predict, make_input, seconds: float) -> dict:
    """predict(x) on one batch; the median of calls over about `seconds` per batch size."""
    result = {}
    for batch in INFERENCE_BATCHES:
        x = make_input(batch)
        predict(x)
        times = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 5:
            start = time.perf_counter()
            predict(x)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        result[f"infer{batch}"] = median * 1e6 if batch == 1 else batch / median
    result["infer_" + PEAK] = peak_mib()
    return result


def _spec(workload: Workload):
    from nnspec.loader import load

    spec = load(ROOT / workload.spec)
    return spec, tuple(spec.model.inputs[0].shape), tuple(spec.analysis.output_types[0].shape), \
        spec.model.train.loss.name == "categorical_crossentropy"


def run_nnspec(workload: Workload, device: str, launched: float, seconds: float) -> dict:
    import nnspec
    from nnspec.backends.onnx.step import OnnxStep
    from nnspec.backends.onnx.training import build
    from nnspec.train.run import configure
    from nnspec.weights import initial_weights

    spec, shape, out, classes = _spec(workload)
    config = configure(spec, {"optimizer": workload.optimizer, "metrics": [], "callbacks": [],
                              "batch_size": workload.batch})
    x, y = data_for(shape, out, workload.batch, classes)
    sw = np.ones(workload.batch, np.float32)
    graphs = build(spec.analysis, config, [(y.shape[1:], "float32")])
    step = OnnxStep(graphs, initial_weights(spec.analysis, 0), device=device, notice=False, batch_size=workload.batch)
    counter = iter(range(10**9))
    result = time_training(lambda: step.train([x], [y], sw, workload.optimizer["learning_rate"], next(counter)),
                           workload.steps, workload.batch, launched)
    session = nnspec.load(ROOT / workload.spec, seed=0, device=device).session
    result.update(time_inference(lambda xb: session.run([xb]), lambda b: data_for(shape, out, b, classes)[0], seconds))
    return result


def torch_model(spec, classes: bool):
    """The spec's layers as PyTorch modules, run in the spec's wiring; channels-first inside."""
    import torch
    from torch import nn

    acts = {"linear": None, "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "softmax": None}
    analysis = spec.analysis
    shapes = {info.layer.name: info for info in analysis.layers}

    def activation(name):
        made = acts[name]
        return made() if made else nn.Identity()

    def module(info):
        layer, ins = info.layer, info.inputs
        kind = layer.type
        if kind == "Dense":
            return nn.Sequential(nn.Linear(ins[0].shape[-1], layer.units, bias=layer.use_bias),
                                 activation(layer.activation.name))
        if kind == "Conv2D":
            k, s = tuple(layer.kernel_size), tuple(layer.strides)
            pad = 0 if layer.padding == "valid" else "same" if s == (1, 1) else (k[0] // 2, k[1] // 2)
            return nn.Sequential(nn.Conv2d(ins[0].shape[-1], layer.filters, tuple(k), tuple(s), pad,
                                           bias=layer.use_bias), activation(layer.activation.name))
        if kind == "MaxPooling2D":
            return nn.MaxPool2d(tuple(layer.pool_size), tuple(layer.strides or layer.pool_size))
        if kind == "GlobalAveragePooling2D":
            return nn.AdaptiveAvgPool2d(1)
        if kind == "BatchNormalization":
            return nn.BatchNorm2d(ins[0].shape[-1]) if len(ins[0].shape) == 3 else nn.BatchNorm1d(ins[0].shape[-1])
        if kind == "Activation":
            return activation(layer.activation.name)
        if kind == "Dropout":
            return nn.Dropout(layer.rate)
        if kind == "LSTM":
            return nn.LSTM(ins[0].shape[-1], layer.units, batch_first=True)
        if kind == "GRU":  # PyTorch's GRU resets after the recurrent product: Keras's reset_after=True
            assert layer.reset_after, "PyTorch has no GRU with reset_after=False"
            return nn.GRU(ins[0].shape[-1], layer.units, batch_first=True)
        if kind in ("Flatten", "Add"):
            return nn.Identity()
        raise NotImplementedError(f"no PyTorch counterpart for {kind} in this benchmark")

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.order = [info.layer for info in analysis.layers]
            self.parts = nn.ModuleDict({layer.name: module(shapes[layer.name]) for layer in self.order})

        def forward(self, x):
            values = {spec.model.inputs[0].name: x.permute(0, 3, 1, 2) if x.dim() == 4 else x}
            for layer in self.order:
                ins = [values[name] for name in layer.inputs]
                part = self.parts[layer.name]
                if layer.type == "Add":
                    h = torch.stack(ins).sum(0)
                elif layer.type == "Flatten":
                    h = torch.flatten(ins[0], 1)
                elif layer.type == "GlobalAveragePooling2D":
                    h = torch.flatten(part(ins[0]), 1)
                elif layer.type in ("LSTM", "GRU"):
                    seq, state = part(ins[0])
                    h_n = state[0] if layer.type == "LSTM" else state
                    h = seq if layer.return_sequences else h_n[-1]
                else:
                    h = part(ins[0])
                values[layer.name] = h
            return values[spec.model.outputs[0]]  # logits where the spec ends in softmax

    return Net()


def run_torch(workload: Workload, device: str, launched: float, seconds: float) -> dict:
    import torch

    spec, shape, out, classes = _spec(workload)
    torch.manual_seed(0)
    dev = torch.device(device)
    model = torch_model(spec, classes).to(dev)
    opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[workload.optimizer["name"]](
        model.parameters(), lr=workload.optimizer["learning_rate"])
    loss_fn = torch.nn.CrossEntropyLoss() if classes else torch.nn.MSELoss()
    x, y = data_for(shape, out, workload.batch, classes)
    xb, yb = torch.from_numpy(x).to(dev), torch.from_numpy(y.argmax(1) if classes else y).to(dev)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        loss.item()  # the host waits for the step, as nnspec's step returns its loss

    model.train()
    result = time_training(step, workload.steps, workload.batch, launched)
    model.eval()

    def predict(x):
        with torch.inference_mode():
            model(torch.from_numpy(x).to(dev)).cpu()

    result.update(time_inference(predict, lambda b: data_for(shape, out, b, classes)[0], seconds))
    return result


def run_keras(path: str, version: int, workload: Workload, launched: float, seconds: float, threads: int) -> dict:
    """Runs under --tf-python: imports TensorFlow and Keras only, never nnspec."""
    if version == 2:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        import tf_keras as keras
    else:
        import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = keras.models.load_model(path, compile=False)
    shape, out = tuple(model.inputs[0].shape[1:]), tuple(model.outputs[0].shape[1:])
    classes = out[-1] > 1
    opt = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[workload.optimizer["name"]](
        learning_rate=workload.optimizer["learning_rate"])
    model.compile(loss="categorical_crossentropy" if classes else "mse", optimizer=opt)
    x, y = data_for(shape, out, workload.batch, classes)
    model.fit(x, y, batch_size=workload.batch, epochs=1, verbose=0)  # the first step, traced
    result = {"startup_s": time.time() - launched}
    many = max(2, workload.steps // 3) + workload.steps
    xs, ys = np.concatenate([x] * many), np.concatenate([y] * many)
    warm = max(2, workload.steps // 3) * workload.batch
    model.fit(xs[:warm], ys[:warm], batch_size=workload.batch, epochs=1, verbose=0, shuffle=False)
    start = time.perf_counter()
    model.fit(xs[warm:], ys[warm:], batch_size=workload.batch, epochs=1, verbose=0, shuffle=False)
    result["train_per_s"] = workload.steps * workload.batch / (time.perf_counter() - start)
    result["train_" + PEAK] = peak_mib()
    result.update(time_inference(lambda xb: model.predict_on_batch(xb),
                                 lambda b: data_for(shape, out, b, classes)[0], seconds))
    return result


def run_tf2onnx_convert(path: str, target: str) -> dict:
    """Under --tf-python: tf2onnx's conversion of the Keras 2 file (the whole process is timed outside)."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf2onnx
    import tf_keras as keras

    model = keras.models.load_model(path, compile=False)
    tf2onnx.convert.from_keras(model, opset=18, output_path=target)
    return {}


def run_onnxruntime(path: str, workload: Workload, seconds: float, threads: int) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    shape = tuple(d for d in feed.shape[1:])
    return time_inference(lambda xb: session.run(None, {feed.name: xb}),
                          lambda b: np.random.default_rng(0).normal(size=(b, *shape)).astype(np.float32), seconds)


def worker(argv: list[str]) -> None:
    kind, workload_name, launched = argv[0], argv[1], float(argv[2])
    options = json.loads(argv[3])
    workload = replace(WORKLOADS[workload_name], steps=options.get("steps", WORKLOADS[workload_name].steps))
    if kind == "nnspec":
        result = run_nnspec(workload, options["device"], launched, options["seconds"])
    elif kind == "torch":
        import torch

        torch.set_num_threads(options["threads"])
        result = run_torch(workload, options["device"], launched, options["seconds"])
    elif kind in ("keras2", "keras3"):
        result = run_keras(options["path"], int(kind[-1]), workload, launched, options["seconds"], options["threads"])
    elif kind == "tf2onnx_convert":
        result = run_tf2onnx_convert(options["path"], options["target"])
    else:
        result = run_onnxruntime(options["path"], workload, options["seconds"], options["threads"])
    print(json.dumps(result))


# ---- the driver ------------------------------------------------------------------------------------------

def spawn(python: str, args: list[str], env: dict) -> tuple[dict | None, float, float, str]:
    """(the worker's JSON or None, wall seconds, the child's own peak MiB, stderr's last line)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.time()
        proc = subprocess.Popen([python, *args], stdout=out, stderr=err, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage, not all children's
        wall = time.time() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        lines, problem = out.read().strip().splitlines(), err.read().strip().splitlines()
    peak = usage.ru_maxrss / 1024
    if proc.returncode != 0:
        return None, wall, peak, (problem or [f"exit code {proc.returncode}"])[-1]
    return (json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}), wall, peak, ""


def peers(tf_python: str | None) -> dict[str, str | None]:
    """Which peers can run here: the interpreter that runs each, or None."""
    def imports(python, module):
        return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0

    found = {"torch": sys.executable if imports(sys.executable, "torch") else None}
    tf = tf_python if tf_python and imports(tf_python, "tensorflow") else None
    found["keras2"] = tf if tf and imports(tf, "tf_keras") else None
    found["keras3"] = tf if tf and imports(tf, "keras") else None
    found["tf2onnx"] = tf if tf and found["keras2"] and imports(tf, "tf2onnx") else None
    return found


def export_keras(workload: Workload, folder: Path) -> dict[str, Path]:
    """nnspec's own Keras 2 (.h5) and Keras 3 (.keras) files of the spec, for the Keras peers."""
    files = {}
    for kind, suffix in (("keras2", ".h5"), ("keras3", ".keras")):
        target = folder / (Path(workload.spec).stem + suffix)
        subprocess.run([sys.executable, "-m", "nnspec.cli", "convert", str(ROOT / workload.spec), str(target),
                        "--seed", "0"], check=True, capture_output=True)
        files[kind] = target
    return files


COLUMNS = ("nnspec", "torch", "keras2", "keras3", "tf2onnx")
TITLES = {"nnspec": "nnspec", "torch": "PyTorch eager", "keras2": "Keras 2", "keras3": "Keras 3",
          "tf2onnx": "onnxruntime (tf2onnx)"}
ROWS = [("train_per_s", "training, samples/s", True), ("infer128", "inference batch 128, samples/s", True),
        ("infer1", "inference batch 1, µs", False), ("convert_s", "convert .h5 to .onnx, s", False),
        ("startup_s", "start-up to first step, s", False), ("check_s", "start-up, `nnspec check`, s", False)]
PEAKS = {"train_per_s": "train_" + PEAK, "infer128": "infer_" + PEAK, "infer1": "infer_" + PEAK,
         "startup_s": "train_" + PEAK, "convert_s": "convert_" + PEAK, "check_s": "check_" + PEAK}


def measure(args, found: dict, folder: Path, report) -> dict:
    """results[workload][contender][metric] -> list of values, one per repeat; `report(results)`
    after each repeat."""
    env = {**os.environ, "NNSPEC_INTRA_OP_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    me = str(Path(__file__).resolve())
    results: dict = {}
    files = {name: export_keras(WORKLOADS[name], folder) for name in args.models}  # what convert converts
    for repeat in range(args.repeats):
        for name in args.models:
            workload = WORKLOADS[name]
            cell = results.setdefault(name, {})
            base = {"device": args.device, "threads": args.threads, "seconds": args.seconds,
                    "steps": args.steps or workload.steps}
            jobs = [("nnspec", sys.executable, "nnspec", base)]
            if found["torch"]:
                jobs.append(("torch", found["torch"], "torch", base))
            for kind in ("keras2", "keras3"):
                if found[kind] and args.device == "cpu":
                    jobs.append((kind, found[kind], kind, {**base, "path": str(files[name][kind])}))
            for column, python, kind, options in jobs:
                got, wall, peak, err = spawn(python, [me, "--worker", kind, name, str(time.time()),
                                                      json.dumps(options)], env)
                record(cell, column, got, err)
            converted = folder / f"{name}.nnspec.onnx"
            got, wall, peak, err = spawn(sys.executable, ["-m", "nnspec.cli", "convert", str(files[name]["keras2"]),
                                                          str(converted)], env)
            record(cell, "nnspec", None if got is None else {"convert_s": wall, "convert_" + PEAK: peak}, err)
            if found["tf2onnx"] and args.device == "cpu":
                target = folder / f"{name}.tf2onnx.onnx"
                got, wall, peak, err = spawn(found["tf2onnx"], [me, "--worker", "tf2onnx_convert", name, "0",
                                                                json.dumps({"path": str(files[name]["keras2"]),
                                                                            "target": str(target)})], env)
                record(cell, "tf2onnx", None if got is None else {"convert_s": wall, "convert_" + PEAK: peak}, err)
                if got is not None:
                    got, _, _, err = spawn(sys.executable, [me, "--worker", "onnxruntime", name, "0",
                                                            json.dumps({**base, "path": str(target)})], env)
                    record(cell, "tf2onnx", got, err)
        got, wall, peak, err = spawn(sys.executable, ["-m", "nnspec.cli", "check", str(ROOT / "specs/mnist_mlp.nn")],
                                     env)
        record(results.setdefault("mlp", {}), "nnspec", None if got is None else
               {"check_s": wall, "check_" + PEAK: peak}, err)
        print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
        report(results)
    return results


def record(cell: dict, column: str, got: dict | None, err: str) -> None:
    slot = cell.setdefault(column, {})
    if got is None:
        slot.setdefault("errors", []).append(err)
        return
    for key, value in got.items():
        slot.setdefault(key, []).append(value)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def table(results: dict, found: dict) -> str:
    present = [c for c in COLUMNS if c == "nnspec" or found.get(c)]
    ratio_to = [c for c in ("torch", "keras2", "keras3") if c in present]
    head = ["model", "measure", *[TITLES[c] for c in present], *[f"nnspec vs {TITLES[c]}" for c in ratio_to]]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    for name, cell in results.items():
        for metric, title, higher_better in ROWS:
            medians = {c: statistics.median(cell[c][metric]) for c in present if cell.get(c, {}).get(metric)}
            if not medians:
                continue
            shown = []
            for c in present:
                if c not in medians:
                    errors = cell.get(c, {}).get("errors")
                    shown.append(f"failed: {errors[0][:60]}" if errors else "—")
                    continue
                peak = cell[c].get(PEAKS[metric])
                shown.append(_number(medians[c]) + (f" ({statistics.median(peak):,.0f} MiB)" if peak else ""))
            ratios = []
            for c in ratio_to:
                if "nnspec" in medians and c in medians:
                    mine, theirs = medians["nnspec"], medians[c]
                    ratios.append(f"{(mine / theirs if higher_better else theirs / mine):.2f}x")
                else:
                    ratios.append("—")
            lines.append("| " + " | ".join([name, title, *shown, *ratios]) + " |")
    return "\n".join(lines)


def machine(args, done: int) -> str:
    import onnxruntime as ort

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = [f"onnxruntime {ort.__version__}", f"Python {platform.python_version()}"]
    if args.device == "cuda":
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True).stdout.strip().splitlines()
        cpu = f"{gpu[0] if gpu else 'an NVIDIA GPU'} with {cpu}"
    return (f"{cpu}, {os.cpu_count()} CPUs, {args.threads} thread(s) per contender, device {args.device}; "
            + ", ".join(versions) + f"; medians of {done} of {args.repeats} repeats; load average "
            + ", ".join(f"{v:.1f}" for v in os.getloadavg()) + " at the end")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="per contender (default: physical cores)")
    parser.add_argument("--models", default=",".join(WORKLOADS), help=f"some of {', '.join(WORKLOADS)}")
    parser.add_argument("--tf-python", default=os.environ.get("NNSPEC_BENCH_TF_PYTHON", sys.executable),
                        help="an interpreter with TensorFlow, Keras 2 (tf_keras), Keras 3 and tf2onnx")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seconds", type=float, default=0.5, help="per inference measurement")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few steps, short inference timing")
    parser.add_argument("--out", type=Path, help="also write the table here, updated after every repeat")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in WORKLOADS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    if args.threads is None:
        from nnspec.backends.onnx.runtime import physical_cores

        args.threads = physical_cores()
    args.steps = 2 if args.quick else None
    if args.quick:
        args.seconds = 0.05
    found = peers(args.tf_python)
    missing = [TITLES[k] for k, v in found.items() if v is None]

    def report(results: dict) -> str:
        done = len(results.get("mlp", {}).get("nnspec", {}).get("check_s", []))  # one per repeat
        text = (f"`python bench/compare.py {' '.join(argv)}`".replace(" `", "`") + "\n\n" + machine(args, done) + "\n\n"
                + table(results, found) + (f"\n\nnot installed here, skipped: {', '.join(missing)}" if missing else ""))
        if args.out:
            args.out.write_text(text + "\n")
        return text

    with tempfile.TemporaryDirectory() as folder:
        results = measure(args, found, Path(folder), report)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
