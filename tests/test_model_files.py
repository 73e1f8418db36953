"""Every command takes every model format convert reads; predict's table and --classes; Keras
JSON/YAML architectures (to_json/to_yaml) written by convert. Commands run through nnspec.cli.main."""
import json

import numpy as np
import pytest
import yaml

from conftest import FIXTURES, ROOT
from convert_support import MODELS, VERSIONS
from nnspec.cli import main
from nnspec.convert import read

KERAS = FIXTURES / "keras"
MODEL_FILES = [KERAS / f"cnn_mnist.{v}" for v in ("k2.h5", "k3.h5", "k3.keras", "k2.json", "k3.json", "tf2onnx.onnx")]


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ---- item 1: one reader, every command -------------------------------------------------------------


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.name)
def test_summary_and_check_take_every_model_format(path, capsys):
    code, out, err = run(capsys, "summary", path)
    assert code == 0, err
    assert "Conv2D" in out and "Total params: 75," in out
    code, out, err = run(capsys, "check", path)
    assert code == 0 and out.startswith(f"{path}: ok (75,"), err


@pytest.mark.parametrize("model, io", [("cnn_mnist.k2.h5", "cnn_mnist.k2.io.npz"),
                                       ("cnn_mnist.k3.h5", "cnn_mnist.k3.io.npz"),
                                       ("cnn_mnist.k3.keras", "cnn_mnist.k3.io.npz"),
                                       ("cnn_mnist.tf2onnx.onnx", "cnn_mnist.k2.io.npz")])
def test_predict_takes_keras_files_and_foreign_onnx(model, io, tmp_path, capsys):
    code, _, err = run(capsys, "predict", KERAS / model, "-i", KERAS / io, "-o", tmp_path / "y.npy", "--device", "cpu")
    assert code == 0, err
    assert np.allclose(np.load(tmp_path / "y.npy"), np.load(KERAS / io)["y0"], atol=1e-5)


def test_plot_takes_a_keras_file(tmp_path, capsys):
    code, out, err = run(capsys, "plot", KERAS / "functional_residual.k3.keras", "-o", tmp_path / "m.png")
    assert code == 0 and (tmp_path / "m.png").stat().st_size > 0, err


def test_keras_json_takes_weights_in_predict(tmp_path, capsys):
    io = np.load(KERAS / "gru_stack.k2.io.npz")
    code, _, err = run(capsys, "predict", KERAS / "gru_stack.k2.json", "--weights", KERAS / "gru_stack.k2.weights.h5",
                       "-i", KERAS / "gru_stack.k2.io.npz", "-o", tmp_path / "y.npy", "--device", "cpu")
    assert code == 0, err
    assert np.allclose(np.load(tmp_path / "y.npy"), io["y0"], atol=1e-5)


@pytest.mark.parametrize("command", ["summary", "check", "plot", "predict"])
def test_unknown_or_broken_files_name_the_file_and_the_formats(command, tmp_path, capsys):
    unknown = tmp_path / "model.bin"
    unknown.write_bytes(b"\x89HDF\r\n\x1a\n")
    extra = ["-i", tmp_path / "x.npy"] if command == "predict" else []
    code, out, err = run(capsys, command, unknown, *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{unknown}: error: cannot read this file type; give a spec (.nn" in err
    assert ".keras" in err and ".onnx" in err
    for name, what in (("model.h5", "not an HDF5 file"), ("model.keras", "not a .keras (zip) archive"),
                       ("model.nn", "not UTF-8 text")):
        (tmp_path / name).write_bytes(b"\x89HDF\r\n\x1a\n" if name == "model.nn" else b"<html>not found</html>")
        code, out, err = run(capsys, command, tmp_path / name, *extra)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert err.startswith(f"{tmp_path / name}: error: {what}; nnspec reads a spec (.nn"), err
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    code, out, err = run(capsys, command, broken, *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(broken) in err and "not an ONNX model" in err


# ---- items 2 and 3: predict's table and --classes -------------------------------------------------


@pytest.fixture
def digits(tmp_path):
    """A softmax classifier with class names beside it (as nnspec train writes them), and 30 samples."""
    spec = tmp_path / "digits.nn"
    spec.write_text("model digits {\n  input x: float32[4]\n  dense(3, activation=softmax)\n}\n")
    (tmp_path / "digits.classes.json").write_text(json.dumps(["cat", "dog", "owl"]))
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32))
    return spec


def _expected(spec, x):
    import nnspec

    return nnspec.load(str(spec), seed=1).predict(x)


def test_predict_prints_a_table_of_classes_names_and_probabilities(digits, capsys):
    x = np.load(digits.parent / "x.npy")
    code, out, err = run(capsys, "predict", digits, "--seed", 1, "-i", digits.parent / "x.npy", "--device", "cpu")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["index", "class", "name", "probability"]
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "... 10 more (-o FILE.npy writes all 30)"
    p = _expected(digits, x)
    for i, line in enumerate(lines[1:21]):
        index, k, name, prob = line.split()
        assert int(index) == i and int(k) == p[i].argmax() and name == ["cat", "dog", "owl"][int(k)]
        assert float(prob) == pytest.approx(p[i].max(), abs=5e-5)


def test_predict_classes_prints_and_writes_indices_and_names(digits, capsys):
    x = np.load(digits.parent / "x.npy")
    want = _expected(digits, x).argmax(axis=1)
    code, out, err = run(capsys, "predict", digits, "--seed", 1, "-i", digits.parent / "x.npy", "--classes")
    assert code == 0, err
    assert out.splitlines()[0].split() == ["index", "class", "name"]
    assert [int(line.split()[1]) for line in out.splitlines()[1:21]] == want[:20].tolist()
    out_npz = digits.parent / "c.npz"
    code, out, err = run(capsys, "predict", digits, "--seed", 1, "-i", digits.parent / "x.npy", "--classes",
                         "-o", out_npz)
    assert code == 0 and out.strip() == f"wrote {out_npz} (30 class indices)", err
    with np.load(out_npz, allow_pickle=False) as saved:
        name = next(k for k in saved.files if not k.endswith("_names"))
        assert np.array_equal(saved[name], want)
        assert saved[f"{name}_names"].tolist() == [["cat", "dog", "owl"][k] for k in want]
    code, _, err = run(capsys, "predict", digits, "--seed", 1, "-i", digits.parent / "x.npy", "--classes",
                       "-o", digits.parent / "c.npy")
    assert code == 0 and np.array_equal(np.load(digits.parent / "c.npy"), want)


def test_class_names_come_from_the_specs_data_source(tmp_path, capsys):
    spec = tmp_path / "pets.nn"
    spec.write_text("model pets {\n  input x: float32[4]\n  dense(2, activation=softmax)\n}\n\n"
                    "train {\n  data images(\"pets\", classes=[cat, dog])\n  loss categorical_crossentropy\n}\n")
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    want = _expected(spec, x).argmax(axis=1)
    code, out, err = run(capsys, "predict", spec, "--seed", 1, "-i", tmp_path / "x.npy", "--classes")
    assert code == 0, err
    assert [line.split()[2] for line in out.splitlines()[1:]] == [["cat", "dog"][k] for k in want]


def test_predict_without_output_prints_no_raw_arrays_for_mnist(tmp_path, capsys):
    """The case of the issue: 10,000 MNIST images print 20 rows and a count, with -o writing them all."""
    code, out, err = run(capsys, "predict", KERAS / "cnn_mnist.k3.keras", "-i", FIXTURES / "mnist", "--device", "cpu")
    assert code == 0, err
    assert len(out.splitlines()) == 22 and out.splitlines()[-1] == "... 9,980 more (-o FILE.npy writes all 10,000)"
    assert "[" not in out
    code, out, err = run(capsys, "predict", KERAS / "cnn_mnist.k3.keras", "-i", FIXTURES / "mnist",
                         "-o", tmp_path / "p.npy", "--device", "cpu")
    assert code == 0 and np.load(tmp_path / "p.npy").shape == (10000, 10)


def test_single_sigmoid_output_is_a_binary_class(tmp_path, capsys):
    spec = tmp_path / "binary.nn"
    spec.write_text("model binary {\n  input x: float32[2]\n  dense(1, activation=sigmoid)\n}\n")
    x = np.array([[3, 3], [-3, -3], [0.1, 0.2]], np.float32)
    np.save(tmp_path / "x.npy", x)
    p = _expected(spec, x)[:, 0]
    code, out, err = run(capsys, "predict", spec, "--seed", 1, "-i", tmp_path / "x.npy")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [int(r[1]) for r in rows] == (p > 0.5).astype(int).tolist()
    assert [float(r[2]) for r in rows] == pytest.approx(np.where(p > 0.5, p, 1 - p).tolist(), abs=5e-5)
    code, _, err = run(capsys, "predict", spec, "--seed", 1, "-i", tmp_path / "x.npy", "--classes", "-o",
                       tmp_path / "c.npy")
    assert code == 0 and np.load(tmp_path / "c.npy").tolist() == (p > 0.5).astype(int).tolist()


def test_regression_prints_values(tmp_path, capsys):
    spec = tmp_path / "reg.nn"
    spec.write_text("model reg {\n  input x: float32[2]\n  dense(8)\n}\n")
    x = np.ones((25, 2), np.float32)
    np.save(tmp_path / "x.npy", x)
    p = _expected(spec, x)
    code, out, err = run(capsys, "predict", spec, "--seed", 1, "-i", tmp_path / "x.npy")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["index", "values"] and lines[-1].startswith("... 5 more")
    first = lines[1].split()
    assert first[0] == "0" and [float(v) for v in first[1:7]] == pytest.approx(p[0, :6], rel=1e-3, abs=1e-4)
    assert first[7:] == ["...", "(2", "more)"]


# ---- item 4: Keras JSON and YAML alone --------------------------------------------------------------


def _structure(doc: dict) -> dict:
    """What model_from_json builds from: the model class, and each layer's class, name and wiring."""
    config = doc["config"]
    layers = [(l["class_name"], l["config"]["name"], json.dumps(l.get("inbound_nodes"), sort_keys=True)
               .replace('"shape": [null', "").count("keras_history") if "inbound_nodes" in l else 0)
              for l in config["layers"]]
    return {"class_name": doc["class_name"], "layers": layers,
            "refs": [json.dumps(config.get(k)) for k in ("input_layers", "output_layers")]}


SETTINGS = ("units", "filters", "kernel_size", "pool_size", "padding", "activation", "use_bias", "rate",
            "return_sequences", "input_dim", "output_dim", "epsilon", "momentum")


def _same_settings(ours: dict, keras: dict) -> None:
    """Every key we write is one Keras writes (activity_regularizer aside, which Keras 3 takes but
    does not write), and the settings that make the model have Keras's values."""
    for mine, theirs in zip(ours["config"]["layers"], keras["config"]["layers"]):
        assert set(mine["config"]) - {"activity_regularizer"} <= set(theirs["config"]), mine["config"]["name"]
        for key in SETTINGS:
            if key in theirs["config"]:
                assert mine["config"][key] == theirs["config"][key], (mine["config"]["name"], key)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", MODELS)
def test_convert_writes_the_json_keras_wrote(name, version, tmp_path, capsys):
    out = tmp_path / "model.json"
    code, printed, err = run(capsys, "convert", KERAS / f"{name}.{version}.h5", "-o", out, "--keras", version[1])
    assert code == 0 and printed.strip() == f"wrote {out}", err
    assert "architecture only" in err  # the file's weights are not in a to_json()
    ours, keras = json.loads(out.read_text()), json.loads((KERAS / f"{name}.{version}.json").read_text())
    assert set(ours) == set(keras)
    assert _structure(ours) == _structure(keras)
    _same_settings(ours, keras)
    assert read(str(out)).model.layers == read(str(KERAS / f"{name}.{version}.json")).model.layers


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_spec_as_keras_json_or_yaml_reads_back_to_the_same_model(suffix, tmp_path, capsys):
    spec = ROOT / "specs" / "residual.nn"
    out = tmp_path / f"model{suffix}"
    code, _, err = run(capsys, "convert", spec, "-o", out)
    assert code == 0 and err == "", err
    text = out.read_text()
    doc = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    assert doc["module"] == "keras.src.models.functional" and "keras_version" not in doc  # Keras 3 by default
    if suffix == ".yaml":
        code, _, err = run(capsys, "convert", spec, "-o", tmp_path / "model.json")
        assert doc == json.loads((tmp_path / "model.json").read_text())
    original, back = read(str(spec)).model, read(str(out), fresh=False).model
    assert back.layers == original.layers and back.inputs == original.inputs and back.outputs == original.outputs
    code, summary, _ = run(capsys, "summary", out)
    assert code == 0 and "Total params: 596" in summary


def test_keras2_json_and_bad_flags(tmp_path, capsys):
    spec = ROOT / "specs" / "mnist_mlp.nn"
    code, _, err = run(capsys, "convert", spec, "-o", tmp_path / "m.json", "--keras", "2")
    doc = json.loads((tmp_path / "m.json").read_text())
    assert code == 0 and doc["class_name"] == "Sequential" and doc["keras_version"].startswith("2.")
    code, _, err = run(capsys, "convert", spec, "-o", tmp_path / "m.h5", "--keras", "3")
    assert code == 2 and "--keras chooses the version of a .json or .yaml" in err and not (tmp_path / "m.h5").exists()
    code, _, err = run(capsys, "convert", spec, tmp_path / "a.json", "-o", tmp_path / "b.json")
    assert code == 2 and "give the output once" in err
    assert not (tmp_path / "a.json").exists() and not (tmp_path / "b.json").exists()


def test_keras2_to_yaml_with_python_tuples_is_read_safely(tmp_path, capsys):
    """Keras 2's to_yaml() wrote tuples as !!python/tuple: read as lists, never as Python objects."""
    doc = json.loads((KERAS / "cnn_mnist.k2.json").read_text())
    text = yaml.safe_dump(doc).replace("kernel_size:\n      - 3\n      - 3", "kernel_size: !!python/tuple [3, 3]")
    assert "!!python/tuple" in text
    (tmp_path / "m.yaml").write_text(text)
    code, out, err = run(capsys, "summary", tmp_path / "m.yaml")
    assert code == 0 and "Total params: 75,338" in out, err
    (tmp_path / "evil.yaml").write_text("class_name: !!python/object/apply:os.system ['true']\nconfig: {}\n")
    code, out, err = run(capsys, "check", tmp_path / "evil.yaml")
    assert code == 2 and "evil.yaml:1:13: error: invalid YAML: could not determine a constructor" in err
