"""Data-parallel training on one machine: `nnspec train specs/mnist_mlp.nn --workers N` for N = 1, 2, ...,
each timed as a whole process for 1 and for 1 + E epochs; the difference over E is the time per epoch
without the start-up (interpreter, imports, spawning and joining the replicas, reading the data).

    python bench/scaling.py [--workers 1 2] [--epochs 2] [--samples 8000] [--out bench/SCALING_RESULTS.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(workers: int, epochs: int, samples: int, folder: str) -> float:
    data = f'mnist("{ROOT / "tests/fixtures/mnist"}", normalize=255, stop={samples})'
    command = [sys.executable, "-m", "nnspec.cli", "train", str(ROOT / "specs/mnist_mlp.nn"), "--data", data,
               "--epochs", str(epochs), "--verbose", "0", "--no-plot", "-o", f"{folder}/m{workers}.onnx",
               "--workers", str(workers)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "SCALING_RESULTS.md"))
    args = parser.parse_args()
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for n in args.workers:
            short, long = run(n, 1, args.samples, folder), run(n, 1 + args.epochs, args.samples, folder)
            per_epoch = (long - short) / args.epochs
            rows.append((n, short, per_epoch, args.samples * 0.8 / per_epoch))
            print(f"{n} worker(s): {per_epoch:.2f} s per epoch, start-up and one epoch {short:.1f} s", flush=True)
    base = rows[0][2]
    lines = [f"machine: {platform.machine()}, {os.cpu_count()} CPUs; python {platform.python_version()}; "
             f"load average {load:.1f} before the run", "",
             "| workers | one epoch and start-up (s) | per epoch (s) | samples/s | speed-up |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {n} | {short:.1f} | {epoch:.2f} | {rate:,.0f} | {base / epoch:.2f} |" for n, short, epoch, rate in rows]
    Path(args.out).write_text("# Data-parallel scaling\n\n`python bench/scaling.py`: specs/mnist_mlp.nn "
                              f"(batch 128, RMSprop, dropout), {args.samples} MNIST digits (80% trained on).\n\n"
                              + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
