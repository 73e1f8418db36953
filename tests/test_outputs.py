"""Where commands write (one rule: -o decides, else the current folder), `evaluate` on the spec's own
data, and `predict` saying that a spec's weights are random. Each through the real `nnspec` command."""
import json

import numpy as np

from conftest import ROOT, run_cli

SPEC = """model r {
  input x: float32[3]
  dense(4, activation=tanh)
  dense(1)
}

train {
  data       npz("data/d.npz")
  loss       mse
  optimizer  sgd(learning_rate=0.05)
  batch_size 8
  epochs     2
}
"""


def write_project(tmp_path):
    """specs/r.nn naming specs/data/d.npz, and an empty folder to work in."""
    (tmp_path / "specs" / "data").mkdir(parents=True)
    (tmp_path / "specs" / "r.nn").write_text(SPEC)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    np.savez(tmp_path / "specs" / "data" / "d.npz", x=x, y=x.sum(1, keepdims=True))
    (tmp_path / "work").mkdir()
    return tmp_path / "work"


def test_train_and_plot_write_to_the_current_folder_unless_told(tmp_path):
    work = write_project(tmp_path)
    result = run_cli("train", "../specs/r.nn", "--verbose", "0", cwd=work)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in work.iterdir()) == [
        "r.trained.history.json", "r.trained.history.png", "r.trained.npz", "r.trained.onnx", "r.trained.resolved.json"]
    assert sorted(p.name for p in (tmp_path / "specs").iterdir()) == ["data", "r.nn"]
    for args, written in ((["../specs/r.nn"], work / "r.png"),
                          (["r.trained.history.json"], work / "r.trained.history.png"),
                          (["../specs/r.nn", "-o", "pics/net.svg"], work / "pics" / "net.svg")):
        (work / "r.trained.history.png").unlink(missing_ok=True)
        if written.parent != work:
            written.parent.mkdir()
        result = run_cli("plot", *args, cwd=work)
        assert result.returncode == 0 and result.stdout.strip() == f"wrote {written.relative_to(work)}", result.stderr
        assert written.stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "specs").iterdir()) == ["data", "r.nn"]


def test_evaluate_takes_the_specs_data_when_given_none(tmp_path):
    work = write_project(tmp_path)
    assert run_cli("train", "../specs/r.nn", "--verbose", "0", cwd=work).returncode == 0
    implicit = run_cli("evaluate", "../specs/r.nn", "--weights", "r.trained.npz", cwd=work)
    explicit = run_cli("evaluate", "../specs/r.nn", "--weights", "r.trained.npz", "--data", "../specs/data/d.npz",
                       cwd=work)
    assert implicit.returncode == 0 and implicit.stdout.startswith("loss: "), implicit.stderr
    assert implicit.stdout == explicit.stdout
    history = json.loads((work / "r.trained.history.json").read_text())
    assert history["loss"][-1] > 0
    unnamed = tmp_path / "specs" / "bare.nn"
    unnamed.write_text(SPEC.replace('  data       npz("data/d.npz")\n', ""))
    result = run_cli("evaluate", str(unnamed), "--weights", "r.trained.npz", cwd=work)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"nnspec: error: {unnamed}: no data: give data (--data) or a `data` line in the " \
                                    "train section"
    no_weights = run_cli("evaluate", "../specs/r.nn", cwd=work)
    assert no_weights.returncode == 2 and "has no trained weights" in no_weights.stderr


def test_predict_with_a_specs_random_weights_says_so(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28), np.float32))
    spec = ROOT / "specs" / "mnist_mlp.nn"
    result = run_cli("predict", spec, "-i", "x.npy", "--seed", "3", "--device", "cpu", "-o", "y.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if "random" in line]
    assert notes == [f"nnspec: note: {spec} has no trained weights: predicting with random weights from its "
                     "initializers (seed 3); give --weights"]
    run_cli("compile", spec, "-o", "m.onnx", "--seed", "0", cwd=tmp_path)
    trained = run_cli("predict", "m.onnx", "-i", "x.npy", "--device", "cpu", "-o", "y.npy", cwd=tmp_path)
    assert trained.returncode == 0 and "random" not in trained.stderr, trained.stderr
