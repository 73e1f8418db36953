"""nnspec models -> Keras files (without Keras): the layouts real Keras writes, read back bit for
bit, deterministic; what Keras cannot express is refused. tests/test_keras_roundtrip_real.py loads
the same files in real Keras where it is installed."""
import hashlib
import io as _io
import json
import zipfile

import h5py
import pytest

from convert_support import (CATALOG, KERAS3_ONLY, MODELS, VERSIONS, assert_same_weights, catalog_model, catalog_weights, fixture,
                             keras_weights)
from nnspec.backends.keras import exporter
from nnspec.backends.keras.importer import load
from nnspec.backends.keras.layer_export import ExportError
from nnspec.ir.model import Model
from nnspec.ir.training import TrainConfig
from onnx_support import model_of


def _tree(f: h5py.File) -> dict:
    """Every group and dataset of an HDF5 file: {path: (attributes, shape)}."""
    out = {}
    f.visititems(lambda n, o: out.__setitem__(n, ({k: str(v) for k, v in o.attrs.items()}, getattr(o, "shape", None))))
    return out


def _archive_weights(path) -> dict:
    with zipfile.ZipFile(path) as z, h5py.File(_io.BytesIO(z.read("model.weights.h5"))) as f:
        return _tree(f)


@pytest.mark.parametrize("name", MODELS)
def test_keras3_archives_have_keras_layout(name, tmp_path):
    """The weights file inside our .keras has the groups, datasets and names Keras 3.15 wrote."""
    imported = load(fixture(f"{name}.k3.keras"))
    exporter.save_keras(tmp_path / "m.keras", imported.model, imported.weights)
    assert _archive_weights(tmp_path / "m.keras") == _archive_weights(fixture(f"{name}.k3.keras"))
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        assert z.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        assert json.loads(z.read("metadata.json")) == {"keras_version": exporter.KERAS_VERSION[3]}


@pytest.mark.parametrize("name", MODELS)
def test_keras2_files_have_keras_layout(name, tmp_path):
    """Our .h5 names layers and weights as tf.keras 2.21 did."""
    imported = load(fixture(f"{name}.k2.h5"))
    exporter.save_h5(tmp_path / "m.h5", imported.model, imported.weights)
    names = {}
    for path in (tmp_path / "m.h5", fixture(f"{name}.k2.h5")):
        with h5py.File(path) as f:
            group = f["model_weights"]
            names[path] = ([str(n) for n in group.attrs["layer_names"]],
                           {k: [str(n) for n in group[k].attrs["weight_names"]] for k in group})
            assert f.attrs["keras_version"] == "2.21.0" and f.attrs["backend"] == "tensorflow"
    assert names[tmp_path / "m.h5"] == names[fixture(f"{name}.k2.h5")]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MODELS)
def test_fixtures_come_back_bit_for_bit(name, version, tmp_path):
    source = fixture(f"{name}.{version}.h5")
    imported = load(source)
    for suffix, save in ((".h5", exporter.save_h5), (".keras", exporter.save_keras)):
        save(tmp_path / f"m{suffix}", imported.model, imported.weights)
        assert_same_weights(keras_weights(tmp_path / f"m{suffix}"), keras_weights(source))
        assert load(tmp_path / f"m{suffix}").model == imported.model


def _by_name(model: Model) -> dict:
    return {l.name: l.model_dump(exclude={"inputs"}) | {"inputs": l.inputs} for l in model.layers}


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("name", sorted(CATALOG))
def test_every_layer_round_trips(name, suffix, tmp_path):
    """Export and import give the same layers (Keras lists them by depth) and the same weights."""
    model = catalog_model(name)
    weights = catalog_weights(model)
    path = tmp_path / f"m{suffix}"
    if suffix == ".h5" and name in KERAS3_ONLY:
        with pytest.raises(ExportError, match="loads only with custom_objects; write a Keras 3 .keras file"):
            exporter.save_h5(path, model, weights)
        assert not path.exists()
        return
    (exporter.save_h5 if suffix == ".h5" else exporter.save_keras)(path, model, weights)
    back = load(path)
    assert _by_name(back.model) == _by_name(model)
    assert [i.model_dump() for i in back.model.inputs] == [i.model_dump() for i in model.inputs]
    assert back.model.outputs == model.outputs
    assert_same_weights(back.weights, weights)


def test_json_is_the_architecture(tmp_path):
    model = catalog_model("graph")
    (tmp_path / "m.json").write_text(exporter.to_json(model))
    assert _by_name(load(tmp_path / "m.json").model) == _by_name(model)


def test_files_are_deterministic(tmp_path):
    model = catalog_model("recurrent")
    weights = catalog_weights(model)
    digests = []
    for i in range(2):
        exporter.save_h5(tmp_path / f"{i}.h5", model, weights)
        exporter.save_keras(tmp_path / f"{i}.keras", model, weights)
        digests.append([hashlib.sha256((tmp_path / f"{i}{s}").read_bytes()).hexdigest() for s in (".h5", ".keras")])
    assert digests[0] == digests[1]


def test_compile_settings_travel(tmp_path):
    model = catalog_model("activations")
    model.train = TrainConfig.model_validate({
        "loss": {"name": "categorical_crossentropy", "label_smoothing": 0.1}, "metrics": ["accuracy", "auc"],
        "optimizer": {"name": "adam", "learning_rate": {"name": "exponential_decay", "initial_learning_rate": 0.1,
                                                        "decay_steps": 10, "decay_rate": 0.5}, "amsgrad": True}})
    weights = catalog_weights(model)
    exporter.save_h5(tmp_path / "m.h5", model, weights)
    exporter.save_keras(tmp_path / "m.keras", model, weights)
    for suffix in (".h5", ".keras"):
        assert load(tmp_path / f"m{suffix}").model.train == model.train


def _one_layer(layer, shape=(4,)):
    return model_of([layer], shape)


@pytest.mark.parametrize("layer,flavor,message", [
    ({"type": "Lambda", "expression": "x * 2"}, ".keras", "layer 'lambda': nnspec's lambda has no safe Keras"),
    ({"type": "Dense", "units": 2, "activation": "hard_sigmoid"}, ".h5", "layer 'dense': activation hard_sigmoid"),
    ({"type": "Dense", "units": 2, "activation": {"name": "hard_sigmoid", "slope": 0.2}}, ".keras",
     "has no Keras 3 equivalent"),
    ({"type": "Activation", "activation": {"name": "gelu", "approximate": True}}, ".h5", "activation gelu"),
])
def test_what_keras_cannot_express_is_refused(layer, flavor, message, tmp_path):
    model = _one_layer(layer)
    with pytest.raises(ExportError, match=message) as exc:
        (exporter.save_h5 if flavor == ".h5" else exporter.save_keras)(tmp_path / f"m{flavor}", model,
                                                                       catalog_weights(model))
    assert "\n" not in str(exc.value)
    assert not (tmp_path / f"m{flavor}").exists()


@pytest.mark.parametrize("empty_rows,flavor", [("zero", ".h5"), ("mean", ".keras")])
def test_masked_attention_is_refused_for_the_keras_that_computes_it_otherwise(empty_rows, flavor, tmp_path):
    """tf.keras 2 and Keras 3 returning scores differ for a query masked from every key."""
    layers = [{"type": "MultiHeadAttention", "name": "mha", "num_heads": 2, "key_dim": 2, "empty_rows": empty_rows,
               "return_attention_scores": True, "inputs": ["x0", "x1", "x1", "x2"]}]
    model = model_of(layers, (3, 4), (5, 4), ((3, 5), "bool"), outputs=["mha", "mha:1"])
    weights = catalog_weights(model)
    write = {".h5": exporter.save_h5, ".keras": exporter.save_keras}
    with pytest.raises(ExportError, match="layer 'mha': Keras [23] would compute the outputs of queries masked"):
        write[flavor](tmp_path / f"m{flavor}", model, weights)
    assert not (tmp_path / f"m{flavor}").exists()
    other = ".keras" if flavor == ".h5" else ".h5"
    write[other](tmp_path / f"m{other}", model, weights)
    assert load(tmp_path / f"m{other}").model.layers[0].empty_rows == empty_rows


def test_hard_sigmoid_is_written_for_the_version_that_means_it(tmp_path):
    for slope, suffix, save in ((0.2, ".h5", exporter.save_h5), (1 / 6, ".keras", exporter.save_keras)):
        model = _one_layer({"type": "Activation", "activation": {"name": "hard_sigmoid", "slope": slope}})
        save(tmp_path / f"m{suffix}", model, {})
        assert load(tmp_path / f"m{suffix}").model.layers[0].activation.slope == pytest.approx(slope)
