"""Conversion speed: `nnspec convert m.h5 m.onnx` as a whole process, for every Keras fixture;
and tf2onnx's `python -m tf2onnx.convert --keras m.h5` beside it for the Keras 2 files, where
tf2onnx (with TensorFlow and tf_keras) is installed.

    python bench/convert.py [--rounds 3] [--output bench/CONVERT_RESULTS.md]
    python bench/convert.py --zoo /tmp/zoo [--models ResNet50 ...] [--rounds 3] [--keras-python /path/to/tf-venv/bin/python]

A conversion is timed from process start to exit (the interpreter, imports and writing included),
as a user waits for it; the median of the rounds is reported. The target is under 1 s each.

--zoo measures the full-size keras.applications networks instead (the fixtures' table in the
output is kept): bench/zoo.py writes them once into the folder, by Keras 2 and 3 (weights=None),
with the Python that has TensorFlow (--keras-python; nnspec's own environment needs none); then
each file is converted by nnspec and its Keras 2 file by tf2onnx, both measured for wall time
and peak memory (nnspec's the median of --rounds runs, tf2onnx's one run: it takes minutes), and
both ONNX files run by onnxruntime against Keras's own predictions. Models nnspec refuses are
listed with its one-line refusal. The machine's load average is noted beside each row, and the
peak memory of a Python that only imports what a conversion needs, the floor under every peak.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from zoo import MODELS as ZOO_MODELS

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "keras"
MODELS = sorted(p.name.split(".")[0] for p in FIXTURES.glob("*.tf2onnx.onnx"))
TARGET_S = 1.0
ZOO_FORMATS = ("k2.h5", "k3.h5", "k3.keras")
GNU_TIME = "/usr/bin/time"


def nnspec_command(source: Path, target: Path) -> list[str]:
    exe = shutil.which("nnspec")
    return ([exe] if exe else [sys.executable, "-m", "nnspec.cli"]) + ["convert", str(source), str(target)]


def tf2onnx_command(python: str, source: Path, target: Path) -> list[str]:
    return [python, "-m", "tf2onnx.convert", "--keras", str(source), "--output", str(target)]


# tf2onnx reads .h5 files with tf.keras: make that Keras 2 (tf_keras), which wrote the k2 files
ENVIRONMENT = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_USE_LEGACY_KERAS": "1"}


def timed(command: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=ENVIRONMENT)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr}")
    return statistics.median(times)


def measured(command: list[str]) -> tuple[float, float, float, int, str]:
    """Wall seconds, CPU seconds (user + system), peak resident MB, exit code and the last line of
    stderr of one process.
    The peak comes from GNU time: a child of this (large) process would report this process's
    own peak, which Linux carries over a fork into the child's ru_maxrss."""
    start = time.perf_counter()
    result = subprocess.run([GNU_TIME, "-f", "peak_kb=%M %U %S", *command], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, errors="replace", env=ENVIRONMENT)
    elapsed = time.perf_counter() - start
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and not line.startswith(("Command exited with", "Command terminated by"))]
    peak_kb, user, system = lines.pop().removeprefix("peak_kb=").split()
    return elapsed, float(user) + float(system), int(peak_kb) / 1024, result.returncode, lines[-1] if lines else ""


def measured_median(command: list[str], rounds: int) -> tuple[float, float, float, int, str]:
    runs = [measured(command) for _ in range(rounds)]
    return (*(statistics.median(r[i] for r in runs) for i in range(3)), *runs[-1][3:])


# What `nnspec convert` imports to read a Keras file and write ONNX (and Python, NumPy, h5py, onnx alone)
IMPORT_FLOORS = {"python, numpy, h5py, onnx": "import numpy, h5py, onnx",
                 "nnspec convert's imports": "import nnspec.convert, nnspec.backends.keras.importer, nnspec.onnx_file"}


def import_floors() -> list[str]:
    return [f"{what} {measured([sys.executable, '-c', code])[2]:.0f} MB" for what, code in IMPORT_FLOORS.items()]


def load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def check_onnx(path: Path, io: Path) -> tuple[int, str]:
    """Node count of the written ONNX and its max-abs error against Keras's predict (or why
    onnxruntime cannot run it: tf2onnx leaves some constants as graph inputs)."""
    import onnx
    import onnxruntime

    nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
    data = np.load(io)
    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: data["x0"]})[0]
    except Exception as exc:  # onnxruntime raises several types; the table shows the message
        return nodes, f"does not run: {str(exc).splitlines()[0][:120]}"
    return nodes, f"{float(np.max(np.abs(got - data['y0']))):.1e}"


def has_tf2onnx(python: str) -> bool:
    return subprocess.run([python, "-c", "import tf2onnx, tf_keras"], capture_output=True).returncode == 0


def fixture_rows(rounds: int, python: str | None) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            for version in ("k2", "k3"):
                source = FIXTURES / f"{name}.{version}.h5"
                ours = timed(nnspec_command(source, Path(tmp) / "m.onnx"), rounds)
                theirs = timed(tf2onnx_command(python, source, Path(tmp) / "t.onnx"), rounds) \
                    if python and version == "k2" else None
                shown = "-" if theirs is None else f"{theirs:.2f}"
                rows.append(f"| {name}.{version}.h5 | {ours:.2f} | {shown} |")
                print(f"{name}.{version}.h5: nnspec {ours:.2f} s, tf2onnx {shown} s", flush=True)
    return rows


def zoo_rows(zoo: Path, python: str, models: list[str], rounds: int) -> tuple[list[str], list[str]]:
    """Table rows, and the refusals (file: nnspec's one line)."""
    subprocess.run([python, str(Path(__file__).with_name("zoo.py")), str(zoo)], check=True, env=ENVIRONMENT)
    rows, refusals = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            for form in ZOO_FORMATS:
                source, io = zoo / f"{name}.{form}", zoo / f"{name}.{form[:2]}.io.npz"
                size = source.stat().st_size / 2**20
                cells, load = [], load_average()
                for tool, command, target in (
                        ("nnspec", nnspec_command, Path(tmp) / "m.onnx"),
                        ("tf2onnx", lambda s, t: tf2onnx_command(python, s, t), Path(tmp) / "t.onnx")):
                    if tool == "tf2onnx" and form != "k2.h5":  # tf2onnx reads Keras 2 files only
                        cells.append("- | - | - | -")
                        continue
                    target.unlink(missing_ok=True)
                    seconds, cpu, peak, code, last = (measured_median(command(source, target), rounds) if tool == "nnspec"
                                                 else measured(command(source, target)))
                    if code != 0:
                        cells.append(f"refused | {peak:.0f} | - | -")
                        if tool == "nnspec":
                            refusals.append(f"- `{source.name}`: {last}")
                        continue
                    nodes, error = check_onnx(target, io)
                    cells.append(f"{seconds:.1f} ({cpu:.1f}) | {peak:.0f} ({peak / size:.1f}x) | {nodes} | {error}")
                rows.append(f"| {name} | {form} | {size:.1f} | " + " | ".join(cells) + f" | {load} |")
                print(rows[-1], flush=True)
    return rows, refusals


ZOO_HEADING = "## Full-size keras.applications networks"


def zoo_section(zoo: Path, python: str, models: list[str], rounds: int) -> list[str]:
    floors = import_floors()
    rows, refusals = zoo_rows(zoo, python, models, rounds)
    return [
        ZOO_HEADING, "",
        f"`python bench/convert.py --zoo DIR --rounds {rounds}{' --models ' + ' '.join(models) if models != ZOO_MODELS else ''}`: "
        "`bench/zoo.py` wrote each network with `weights=None` at 96x96 "
        "(1000 classes); each file was converted to ONNX by `nnspec convert` (median of the rounds) and, for the "
        "Keras 2 file, once by `python -m tf2onnx.convert --keras`. Seconds are the whole process's wall time (in "
        "brackets its CPU time, user + system: nnspec converts on one thread, so alone on the machine its wall "
        "time is about its CPU time), "
        "MB its peak resident memory (and its ratio to the file's size); error is the max-abs difference of "
        "onnxruntime's output from Keras's own `predict` on two random images; load is the 1-minute load "
        f"average when the row was measured, on {os.cpu_count()} CPUs. Peak memory of a Python that only "
        f"imports: {'; '.join(floors)}.", "",
        "| model | file | MB | nnspec s | nnspec peak MB | nnspec nodes | nnspec error "
        "| tf2onnx s | tf2onnx peak MB | tf2onnx nodes | tf2onnx error | load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |", *rows,
        "", "Refused by nnspec:", "", *(refusals or ["- none"]),
    ]


def fixture_section(rounds: int, python: str | None) -> list[str]:
    rows = fixture_rows(rounds, python)
    slowest = max(float(r.split("|")[2]) for r in rows)
    return [
        "# Conversion benchmark results", "",
        f"`python bench/convert.py --rounds {rounds}`: `nnspec convert NAME.h5 NAME.onnx` timed as a whole "
        "process (interpreter start, imports, conversion, writing), median of the rounds. "
        f"Target: under {TARGET_S:.0f} s each; slowest here {slowest:.2f} s.", "",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; python {platform.python_version()}; "
        f"tf2onnx: {'installed, run on the Keras 2 files' if python else 'not installed (skipped)'}", "",
        "| file | nnspec convert (s) | tf2onnx (s) |", "| --- | ---: | ---: |", *rows,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "CONVERT_RESULTS.md")
    parser.add_argument("--zoo", type=Path, help="measure the full-size networks instead, written into (and kept "
                                                 "in) this folder; the fixtures' table in --output is kept")
    parser.add_argument("--models", nargs="+", choices=ZOO_MODELS, default=ZOO_MODELS,
                        help="with --zoo: only these networks (default: all ten)")
    parser.add_argument("--keras-python", default=sys.executable,
                        help="a Python with TensorFlow, tf_keras, keras 3 and tf2onnx (default: this one)")
    args = parser.parse_args()
    python = args.keras_python if has_tf2onnx(args.keras_python) else None
    if args.zoo and not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"--zoo measures peak memory with GNU time: {GNU_TIME} is missing")
    if python is None:
        if args.zoo:
            raise SystemExit(f"--zoo needs TensorFlow, tf_keras, keras and tf2onnx in {args.keras_python}")
        print("tf2onnx: not installed, skipped")
    # the two tables are measured separately (the zoo takes most of an hour): each run keeps the other's
    previous = args.output.read_text() if args.output.exists() else ""
    fixtures, _, zoo = previous.partition(ZOO_HEADING)
    if args.zoo:
        fixtures, zoo = fixtures.rstrip("\n"), "\n".join(zoo_section(args.zoo, python, args.models, args.rounds))
    else:
        fixtures, zoo = "\n".join(fixture_section(args.rounds, python)), (ZOO_HEADING + zoo if zoo else "")
    args.output.write_text(fixtures + ("\n\n" + zoo.rstrip("\n") if zoo else "") + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
