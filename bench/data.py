"""Does batch preparation keep up with training? For specs/mnist_cnn.nn (batch 128, real MNIST
digits): the time of one training step against the time to prepare one batch from each kind of
source (arrays in memory, memory-mapped .npy, HDF5, PNG files in an image folder decoded per
batch, and each with ImageDataGenerator augmentation), then whole epochs through the loop with
and without the prefetching thread, on the slowest source.

    python bench/data.py [--samples 4096] [--steps 12] [--rounds 5] [--out bench/DATA_RESULTS.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BATCH = 128
AUGMENT = dict(rotation_range=15, width_shift_range=0.1, height_shift_range=0.1, zoom_range=0.1)


def sources(folder: Path, n: int):
    """The same n digits from each kind of source; yields (name, Data)."""
    import h5py
    from PIL import Image

    from nnspec import data as D
    from nnspec.ir import training as ir

    mnist = D.load(ir.MnistData(path=str(ROOT / "tests/fixtures/mnist"), one_hot=False, normalize=1.0, stop=n))
    x = np.ascontiguousarray(mnist.xs[0][..., None]).astype(np.uint8)  # (n, 28, 28, 1) pixels 0..255
    y = mnist.ys[0]
    yield "arrays in memory", D.Prepared(D.Dataset([x], [y], source="memory"), 1 / 255, None, None)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    yield "memory-mapped .npy", D.load(ir.NpyData(x=str(folder / "x.npy"), y=str(folder / "y.npy"), rescale=1 / 255))
    with h5py.File(folder / "d.h5", "w") as f:
        f["x"], f["y"] = x, y
    yield "HDF5 (batch reads)", D.load(ir.Hdf5Data(path=str(folder / "d.h5"), rescale=1 / 255))
    for digit in range(10):
        (folder / "digits" / str(digit)).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(x[..., 0], y)):
        Image.fromarray(image).save(folder / "digits" / str(label) / f"{i:05d}.png")
    cache = D.IMAGE_CACHE_BYTES
    D.IMAGE_CACHE_BYTES = 0  # decode per batch, as for a folder larger than memory
    try:
        folder_data = D.load(ir.ImageFolderData(path=str(folder / "digits"), size=(28, 28), color_mode="grayscale",
                                                rescale=1 / 255))
    finally:
        D.IMAGE_CACHE_BYTES = cache
    yield "PNG folder (decoded per batch)", folder_data


def time_batches(data, steps: int, augment=None) -> float:
    """Mean seconds to prepare one shuffled batch (read, decode, rescale, augment)."""
    order = np.random.default_rng(0).permutation(len(data))
    started = time.perf_counter()
    for b in range(steps):
        xs, ys = data.batch(order[b * BATCH:(b + 1) * BATCH])
        if augment is not None:
            augment(xs, 0, b)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=12, help="batches timed per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="epochs timed per prefetch setting (best kept)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from nnspec.augment import Augmenter
    from nnspec.backends.onnx.step import OnnxStep
    from nnspec.backends.onnx.training import build
    from nnspec.ir.training import ImageAugmentation
    from nnspec.loader import load
    from nnspec.data import for_model
    from nnspec.train.loop import Trainer
    from nnspec.train.run import configure
    from nnspec.weights import initial_weights

    spec = load(ROOT / "specs" / "mnist_cnn.nn")
    config = configure(spec, {"callbacks": [], "verbose": 0})
    weights = initial_weights(spec.analysis, 0)
    step = OnnxStep(build(spec.analysis, config, [((10,), "float32")]), weights, device="auto", notice=False)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 28, 28, 1), np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, BATCH)]
    sw = np.ones(BATCH, np.float32)
    step.train([x], [y], sw, 1.0, 0)  # warm up
    step_s = float("inf")
    for _ in range(args.rounds):
        started = time.perf_counter()
        for s in range(args.steps):
            step.train([x], [y], sw, 1.0, s + 1)
        step_s = min(step_s, (time.perf_counter() - started) / args.steps)
    augment = Augmenter(ImageAugmentation(**AUGMENT), seed=0)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        datas = list(sources(Path(tmp), args.samples))
        for name, data in datas:
            for label, aug in (("", None), (" + augmentation", augment)):
                prep = time_batches(data, args.steps, aug)
                rows.append(f"| {name}{label} | {1000 * prep:.1f} | {100 * prep / step_s:.0f}% |")
        # whole epochs through the loop on the slowest source, with and without the prefetching thread
        name, slowest = datas[-1]
        cfg = configure(spec, {"callbacks": [], "verbose": 0, "epochs": 1, "shuffle": True})
        n = BATCH * args.steps
        plain = for_model(datas[0][1].take(slice(0, n)), spec.model, spec.analysis, cfg.loss)
        part = for_model(slowest.take(slice(0, n)), spec.model, spec.analysis, cfg.loss)
        runs = {"arrays in memory, no augmentation, inline": (plain, None, 0),
                f"{name} + augmentation, inline": (part, augment, 0),
                f"{name} + augmentation, prefetch thread (4 ahead)": (part, augment, 4)}
        best = {}
        for _ in range(args.rounds):  # alternate, keep the best of each: other load on the machine only slows
            for label, (data, aug, prefetch) in runs.items():
                trainer = Trainer(step, cfg, augment=aug, prefetch=prefetch, verbose=0)
                started = time.perf_counter()
                trainer.fit(data)
                took = ((time.perf_counter() - started) / args.steps, trainer.wait_s / args.steps)
                best[label] = min(best.get(label, took), took)
    device = step.train_session.provider
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = "\n".join([
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {device}; "
        f"specs/mnist_cnn.nn, batch {BATCH}, real MNIST digits ({args.samples} written to each source), "
        f"mean of {args.steps} batches. Augmentation: {', '.join(f'{k}={v}' for k, v in AUGMENT.items())}. "
        f"Load average when done: {load:.1f} (other work on the machine slows the step, not the proportions).",
        "",
        f"One training step (forward, backward, Adadelta update): **{1000 * step_s:.1f} ms**.",
        "",
        "| batch preparation | ms per batch | of a step |",
        "| --- | ---: | ---: |",
        *rows,
        "",
        f"Epochs of {args.steps} steps through `Trainer.fit`, best of {args.rounds}:",
        "",
        "| data | ms per step, all in | ms per step waiting for batches |",
        "| --- | ---: | ---: |",
        *[f"| {label} | {1000 * s:.1f} | {1000 * w:.1f} |" for label, (s, w) in best.items()],
        "",
        "The waiting column is what the prefetching thread hides; the all-in column is what a step costs. "
        "On a CPU-only machine onnxruntime already spreads the step over every core, so the thread's work "
        "is taken from the step (the waiting goes, the step slows by about as much); where the step runs on a "
        "GPU, or reading waits on a disk, the thread's work is free.",
        "",
    ])
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
