"""With real Keras, where it is installed (skipped otherwise; nnspec never needs it): the files
nnspec writes load in Keras 3 (and tf.keras 2 where tf_keras is installed) and predict what
nnspec predicts; models built and saved by Keras convert to models that predict what Keras does."""
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
keras = pytest.importorskip("keras")

from convert_support import CATALOG, KERAS3_ONLY, MODELS, VERSIONS, catalog_inputs, catalog_model, catalog_weights, fixture, io
from nnspec.backends.keras import exporter
from nnspec.backends.keras.importer import load
from onnx_support import compiled, run_onnx

ATOL = 1e-5
KERAS_2_INCOMPATIBLE = KERAS3_ONLY  # keras.applications' own classes: tf.keras needs custom_objects
# tf.keras 2 needs MultiHeadAttention's query_shape/key_shape/value_shape in the config and Keras 3
# refuses them: Keras 3 reads such .h5 files from neither nnspec nor tf.keras (only .keras ones)
KERAS3_NO_KERAS2_H5 = {"attention"}


def _loaders():
    out = {"keras3": keras.models.load_model}
    try:
        import tf_keras

        out["keras2"] = tf_keras.models.load_model
    except ImportError:
        pass
    return out


LOADERS = _loaders()


def _close(got, want):
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.asarray(g).shape == w.shape
        assert float(np.max(np.abs(np.asarray(g) - w))) <= ATOL


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_catalog_files_load_in_keras(name, suffix, loader, tmp_path):
    if loader == "keras2" and suffix == ".keras":
        pytest.skip("tf.keras 2 reads its own .keras layout, not Keras 3's")
    if name == "encoder_decoder" and loader == "keras3" and suffix == ".h5":
        pytest.skip("Keras 3 reads no Keras 2 .h5 whose layer takes initial_state, not even tf.keras's own")
    if loader == "keras3" and suffix == ".h5" and name in KERAS3_NO_KERAS2_H5:
        pytest.skip("Keras 3 refuses tf.keras 2's MultiHeadAttention config")
    model = catalog_model(name)
    weights = catalog_weights(model)
    x = catalog_inputs(model)
    want = run_onnx(compiled(model, weights), x)
    path = tmp_path / f"{name}{suffix}"
    (exporter.save_h5 if suffix == ".h5" else exporter.save_keras)(path, model, weights)
    k = LOADERS[loader](path, compile=False)
    _close(k.predict(x if len(x) > 1 else x[0], verbose=0), want)


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MODELS)
def test_fixtures_through_nnspec_load_in_keras(name, version, loader, tmp_path):
    imported = load(fixture(f"{name}.{version}.h5"))
    xs, ys = io(name, version)
    for suffix in (".h5", ".keras") if loader == "keras3" else (".h5",):
        path = tmp_path / f"m{suffix}"
        (exporter.save_h5 if suffix == ".h5" else exporter.save_keras)(path, imported.model, imported.weights)
        _close(LOADERS[loader](path, compile=False).predict(xs[0], verbose=0), ys)


APPS = __import__("pathlib").Path(__file__).parent / "fixtures" / "keras_apps"
ATTENTION_APPS = ["attention", "additive_attention", "mha_self", "mha_cross", "transformer_block"]


@pytest.mark.parametrize("source,loader", [("k2.h5", "keras2"), ("k3.keras", "keras3")])
@pytest.mark.parametrize("name", ATTENTION_APPS)
def test_attention_models_keras_wrote_come_back_through_nnspec(name, source, loader, tmp_path):
    """Written for the Keras that wrote them: the two differ on queries masked from every key."""
    if loader not in LOADERS:
        pytest.skip(f"{loader} is not installed")
    imported = load(APPS / f"{name}.{source}")
    io_ = np.load(APPS / f"{name}.{source.split('.')[0]}.io.npz")
    xs, ys = ([io_[k] for k in sorted((k for k in io_.files if k[0] == c), key=lambda k: int(k[1:]))] for c in "xy")
    suffix = ".h5" if loader == "keras2" else ".keras"  # Keras 3 reads no tf.keras MultiHeadAttention .h5
    path = tmp_path / f"m{suffix}"
    (exporter.save_h5 if suffix == ".h5" else exporter.save_keras)(path, imported.model, imported.weights)
    got = LOADERS[loader](path, compile=False).predict(xs if len(xs) > 1 else xs[0], verbose=0)
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(ys)
    for g, w in zip(got, ys):
        assert np.asarray(g).shape == w.shape
        assert float(np.max(np.abs(np.asarray(g) - w) / np.maximum(1.0, np.abs(w)))) <= 1e-4


def _keras_module(loader):
    if loader == "keras3":
        return keras
    import tf_keras
    return tf_keras


@pytest.mark.parametrize("scores", [False, True], ids=["output", "with-scores"])
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_queries_masked_from_every_key_match_the_keras_that_wrote_them(loader, scores, tmp_path):
    """Such a query attends to every value alike, or (Keras 3 returning scores) to none."""
    K = _keras_module(loader)
    q, v = K.Input((3, 4), name="q"), K.Input((5, 4), name="v")
    mask = K.Input((3, 5), dtype="bool", name="mask")
    out = K.layers.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")(q, v, attention_mask=mask,
                                                                          return_attention_scores=scores)
    model = K.Model([q, v, mask], out)
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(2, 3, 4)).astype(np.float32), rng.normal(size=(2, 5, 4)).astype(np.float32),
          rng.random((2, 3, 5)) < 0.6]
    xs[2][0, 1] = False  # a query that may see no key
    want = model.predict(xs, verbose=0)
    path = tmp_path / ("m.h5" if loader == "keras2" else "m.keras")
    model.save(path)
    imported = load(path)
    _close(run_onnx(compiled(imported.model, imported.weights), xs), want if scores else [want])


def _keras_built():
    """Models made with the Keras API: wrappers, activation layers, a nested model, compile settings."""
    L = keras.layers
    inner = keras.Sequential([L.Dense(6, activation="relu"), L.Dense(6)], name="block")
    x = keras.Input((5, 4), name="seq")
    h = L.Bidirectional(L.LSTM(3, return_sequences=True), name="bi")(x)
    h = L.TimeDistributed(L.Dense(4), name="td")(h)
    h = L.LeakyReLU(0.15, name="leaky")(h)
    h = L.Flatten()(h)
    h = inner(h)
    h = L.BatchNormalization(name="bn")(h)
    h = L.ReLU(max_value=6.0, name="relu6")(h)
    h = L.Dense(4, activation=L.ELU(0.5), name="dense_elu")(h)
    out = L.Softmax(name="probs")(h)
    model = keras.Model(x, out, name="built")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    for w in model.weights:
        w.assign(rng.normal(0, 0.3, w.shape).astype("float32") if "variance" not in w.path
                 else rng.uniform(0.5, 1.5, w.shape).astype("float32"))
    return model


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_models_keras_wrote_convert_and_come_back(suffix, tmp_path):
    k = _keras_built()
    x = np.random.default_rng(1).normal(size=(3, 5, 4)).astype("float32")
    want = [k.predict(x, verbose=0)]
    path = tmp_path / f"built{suffix}"
    k.save(path)
    imported = load(path)
    _close(run_onnx(compiled(imported.model, imported.weights), [x]), want)
    assert imported.model.train.optimizer.name == "adam"
    assert imported.model.train.loss.name == "categorical_crossentropy"
    again = tmp_path / f"again{suffix}"
    (exporter.save_h5 if suffix == ".h5" else exporter.save_keras)(again, imported.model, imported.weights)
    back = keras.models.load_model(again)  # compile settings included
    _close(back.predict(x, verbose=0), want)
    assert back.optimizer.__class__.__name__ == "Adam"
