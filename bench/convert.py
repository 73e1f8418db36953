"""Conversion speed: `nnspec convert m.h5 m.onnx` as a whole process, for every Keras fixture;
and tf2onnx's `python -m tf2onnx.convert --keras m.h5` beside it for the Keras 2 files, where
tf2onnx (with TensorFlow and tf_keras) is installed.

    python bench/convert.py [--rounds 3] [--output bench/CONVERT_RESULTS.md]

A conversion is timed from process start to exit (the interpreter, imports and writing included),
as a user waits for it; the median of the rounds is reported. The target is under 1 s each.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "keras"
MODELS = sorted(p.name.split(".")[0] for p in FIXTURES.glob("*.tf2onnx.onnx"))
TARGET_S = 1.0


def nnspec_command(source: Path, target: Path) -> list[str]:
    exe = shutil.which("nnspec")
    return ([exe] if exe else [sys.executable, "-m", "nnspec.cli"]) + ["convert", str(source), str(target)]


def tf2onnx_command(source: Path, target: Path) -> list[str]:
    return [sys.executable, "-m", "tf2onnx.convert", "--keras", str(source), "--output", str(target)]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "CONVERT_RESULTS.md")
    args = parser.parse_args()
    has_tf2onnx = importlib.util.find_spec("tf2onnx") is not None
    if not has_tf2onnx:
        print("tf2onnx: not installed, skipped")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            for version in ("k2", "k3"):
                source = FIXTURES / f"{name}.{version}.h5"
                ours = timed(nnspec_command(source, Path(tmp) / "m.onnx"), args.rounds)
                theirs = timed(tf2onnx_command(source, Path(tmp) / "t.onnx"), args.rounds) \
                    if has_tf2onnx and version == "k2" else None
                rows.append((f"{name}.{version}.h5", ours, theirs))
                shown = "-" if theirs is None else f"{theirs:.2f} s"
                print(f"{name}.{version}.h5: nnspec {ours:.2f} s, tf2onnx {shown}")
    slowest = max(r[1] for r in rows)
    lines = [
        "# Conversion benchmark results", "",
        f"`python bench/convert.py --rounds {args.rounds}`: `nnspec convert NAME.h5 NAME.onnx` timed as a whole "
        "process (interpreter start, imports, conversion, writing), median of the rounds. "
        f"Target: under {TARGET_S:.0f} s each; slowest here {slowest:.2f} s.", "",
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs; python {platform.python_version()}; "
        f"tf2onnx: {'installed, run on the Keras 2 files' if has_tf2onnx else 'not installed (skipped)'}", "",
        "| file | nnspec convert (s) | tf2onnx (s) |", "| --- | ---: | ---: |",
    ]
    lines += [f"| {f} | {ours:.2f} | {'-' if theirs is None else f'{theirs:.2f}'} |" for f, ours, theirs in rows]
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
