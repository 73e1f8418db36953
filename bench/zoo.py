"""Writes the full-size keras.applications zoo that bench/convert.py --zoo measures: each network
with weights=None at 96x96 (their minimum input sizes are all below), saved by Keras 2 (tf_keras:
NAME.k2.h5) and Keras 3 (NAME.k3.h5, NAME.k3.keras), with NAME.V.io.npz holding two random
images (x0) and Keras's own predictions (y0). Runs with TensorFlow, tf_keras and keras 3
installed; files already there are kept.

    python bench/zoo.py DIR
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
MODELS = ["ResNet50", "DenseNet121", "MobileNetV2", "MobileNetV3Small", "EfficientNetB0", "Xception",
          "NASNetMobile", "InceptionV3", "VGG16", "ConvNeXtTiny"]
SHAPE = (96, 96, 3)


def files(stem: str, tag: str) -> list[str]:
    return [f"{stem}.h5", f"{stem}.io.npz"] + ([f"{stem}.keras"] if tag == "k3" else [])


def main(out: Path) -> None:
    import keras
    import tf_keras

    out.mkdir(parents=True, exist_ok=True)
    for module, tag in ((tf_keras, "k2"), (keras, "k3")):
        x = np.random.default_rng(0).uniform(0, 255, (2, *SHAPE)).astype(np.float32)  # pixels, as users feed
        for name in MODELS:
            stem = str(out / f"{name}.{tag}")
            if all(os.path.exists(f) for f in files(stem, tag)):
                continue
            module.utils.set_random_seed(0)
            model = getattr(module.applications, name)(weights=None, input_shape=SHAPE)
            model.save(f"{stem}.h5")
            if tag == "k3":
                model.save(f"{stem}.keras")
            np.savez(f"{stem}.io.npz", x0=x, y0=model.predict(x, verbose=0))
            module.backend.clear_session()
            print(f"wrote {stem}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]))
