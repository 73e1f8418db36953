"""Training throughput (samples/s) of nnspec against PyTorch (CPU) and Keras, side by side in
one process run, on real MNIST digits: specs/mnist_mlp.nn (784-512-512-10, SGD) and
specs/mnist_cnn.nn, batch 128. PyTorch and Keras are optional: missing ones are reported skipped.

    python bench/train.py [--steps 200] [--rounds 3] [--out bench/TRAIN_RESULTS.md]
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BATCH = 128


def mnist(channels: bool):
    """Digits (N, 28, 28), or (N, 28, 28, 1) for a convnet; one-hot labels."""
    from nnspec.data import load
    from nnspec.ir.training import MnistData

    d = load(MnistData(path=str(ROOT / "tests/fixtures/mnist")))
    x = d.xs[0][..., None] if channels else d.xs[0]
    return np.ascontiguousarray(x), d.ys[0]


def batches(x, y, steps):
    n = len(x) // BATCH
    for s in range(steps):
        i = (s % n) * BATCH
        yield x[i:i + BATCH], y[i:i + BATCH]


def nnspec_runner(spec_name: str, device: str):
    from nnspec.backends.onnx.step import OnnxStep
    from nnspec.backends.onnx.training import build
    from nnspec.loader import load
    from nnspec.train.run import configure
    from nnspec.weights import initial_weights

    spec = load(ROOT / "specs" / spec_name)
    config = configure(spec, {"optimizer": {"name": "sgd", "learning_rate": 0.01}, "metrics": [], "callbacks": []})
    weights = initial_weights(spec.analysis, 0)
    step = OnnxStep(build(spec.analysis, config, [((10,), "float32")]), weights, device=device, notice=False)
    sw = np.ones(BATCH, np.float32)

    def run(x, y, s):
        step.train([x], [y], sw, 0.01, s)
    return run, step.train_session.provider


def torch_runner(kind: str, device: str):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if kind == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 512),
                              nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 10))
    else:
        model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Dropout(0.25), nn.Flatten(), nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
                              nn.Linear(128, 10))
    dev = torch.device("cuda" if device == "cuda" else "cpu")
    model.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def run(x, y, s):
        xb = torch.from_numpy(x).to(dev)
        if kind == "cnn":
            xb = xb.permute(0, 3, 1, 2)
        yb = torch.from_numpy(y.argmax(1)).to(dev)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        if s % 50 == 0:
            loss.item()  # synchronise now and then, as a progress bar would
    return run, f"torch {torch.__version__}"


def keras_runner(kind: str):
    """Keras 2 (tf_keras) where installed, else Keras 3 on TensorFlow: installed by hand, never a dependency."""
    try:
        import tf_keras as keras
    except ImportError:
        from tensorflow import keras

    if kind == "mlp":
        layers = [keras.layers.Flatten(input_shape=(28, 28)), keras.layers.Dense(512, activation="relu"),
                  keras.layers.Dropout(0.2), keras.layers.Dense(512, activation="relu"), keras.layers.Dropout(0.2),
                  keras.layers.Dense(10, activation="softmax")]
    else:
        layers = [keras.layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
                  keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(2),
                  keras.layers.Dropout(0.25), keras.layers.Flatten(), keras.layers.Dense(128, activation="relu"),
                  keras.layers.Dropout(0.5), keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.01))

    def run(x, y, s):
        model.train_on_batch(x, y)
    return run, f"keras {keras.__version__}"


def measure(run, x, y, steps: int) -> float:
    for s, (xb, yb) in enumerate(batches(x, y, 10)):  # warm-up
        run(xb, yb, s)
    start = time.perf_counter()
    for s, (xb, yb) in enumerate(batches(x, y, steps)):
        run(xb, yb, s + 10)
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows = []
    for kind, spec_name in (("mlp", "mnist_mlp.nn"), ("cnn", "mnist_cnn.nn")):
        x, y = mnist(channels=kind == "cnn")
        steps = args.steps if kind == "mlp" else max(args.steps // 4, 20)
        runners = {"nnspec": lambda: nnspec_runner(spec_name, args.device),
                   "PyTorch": lambda: torch_runner(kind, "cuda" if args.device == "cuda" else "cpu"),
                   "Keras": lambda: keras_runner(kind)}
        results = {}
        for name, make in runners.items():
            try:
                run, label = make()
            except ImportError:
                results[name] = (None, "not installed: skipped")
                continue
            results[name] = (max(measure(run, x, y, steps) for _ in range(args.rounds)), label)
        base = results["nnspec"][0]
        for name, (rate, label) in results.items():
            ratio = "" if rate is None or name == "nnspec" else f"{base / rate:.2f}x"
            rows.append(f"| {spec_name} | {name} ({label}) | {'-' if rate is None else f'{rate:,.0f}'} | {ratio} |")
    header = [f"Machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs; "
              f"batch {BATCH}, SGD(0.01), real MNIST digits; best of {args.rounds} rounds.", "",
              "| model | framework | samples/s | nnspec speed-up |", "| --- | --- | ---: | ---: |"]
    text = "\n".join(header + rows) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
