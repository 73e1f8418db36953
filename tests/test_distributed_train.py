"""`nnspec train --workers N [--backend ray]`: synchronous data-parallel SGD is exact. Two replicas, each on
half of every batch of 128, end with the weights and history of one process (SGD and Adam, with the
spec's dropout); a run resumed from a replicas' checkpoint goes on as one process would; batch
normalization uses each replica's own batch statistics (checked against a one-process reference)."""
import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("mpi4py")

from conftest import FIXTURES, ROOT  # noqa: E402
from nnspec.cli import main  # noqa: E402

SPEC = str(ROOT / "specs" / "mnist_mlp.nn")  # 784-512-512-10 with two dropout(0.2) layers
DATA = f'mnist("{FIXTURES / "mnist"}", normalize=255, stop=1024)'  # 819 to train on: 6 batches of 128 and one of 51


def train(folder, name, *flags):
    out = folder / f"{name}.onnx"
    assert main(["train", SPEC, "--data", DATA, "--batch-size", "128", "--verbose", "0", "--no-plot",
                 "-o", str(out), *flags]) == 0
    with np.load(out.with_suffix(".npz")) as weights:
        return {k: weights[k] for k in weights.files}, json.loads(out.with_suffix(".history.json").read_text())


def assert_same_run(a, b):
    (weights_a, history_a), (weights_b, history_b) = a, b
    assert weights_a.keys() == weights_b.keys()
    for key in weights_a:
        np.testing.assert_allclose(weights_a[key], weights_b[key], rtol=0, atol=1e-5, err_msg=key)
    assert history_a.keys() == history_b.keys()
    for key in history_a:
        np.testing.assert_allclose(history_a[key], history_b[key], rtol=1e-5, err_msg=key)


def test_two_replica_processes_train_sgd_exactly_as_one_process(tmp_path):
    sgd = ("--optimizer", "sgd(learning_rate=0.1)", "--epochs", "2")
    one = train(tmp_path, "one", *sgd)
    two = train(tmp_path, "two", *sgd, "--workers", "2")
    assert_same_run(one, two)
    assert not np.allclose(one[0]["dense/0/kernel"], train(tmp_path, "other_seed", *sgd, "--seed", "1")[0]["dense/0/kernel"])


def test_two_ray_replicas_train_adam_exactly_as_one_process_and_resume_from_their_checkpoint(tmp_path, ray_address):
    adam = ("--optimizer", "adam(learning_rate=0.001)")
    one = train(tmp_path, "one", *adam, "--epochs", "2")
    on_ray = ("--workers", "2", "--backend", "ray", "--address", ray_address, "--checkpoint-dir", str(tmp_path / "ck"))
    first = train(tmp_path, "two", *adam, "--epochs", "1", "--keep-checkpoint", *on_ray)
    assert len(first[1]["loss"]) == 1 and (tmp_path / "ck" / "checkpoint.npz").exists()
    resumed = train(tmp_path, "two", *adam, "--epochs", "2", "--resume", *on_ray)
    assert_same_run(one, resumed)


BN_SPEC = """\
model bn {
  input x: float32[6]
  dense(8)
  batch_normalization()
  dense(1)
}

train {
  loss       mse
  optimizer  sgd(learning_rate=0.05)
  batch_size 32
  epochs     1
  shuffle    false
}
"""


def test_batch_normalization_uses_each_replicas_own_batch_statistics(tmp_path):
    from nnspec.backends.onnx.training import build
    from nnspec.loader import load
    from nnspec.train.run import configure
    from nnspec.weights import initial_weights, load_weights

    (tmp_path / "bn.nn").write_text(BN_SPEC)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(64, 6)) * [1, 2, 3, 4, 5, 6] + 3).astype(np.float32)
    y = rng.normal(size=(64, 1)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    args = ["train", str(tmp_path / "bn.nn"), "--data", str(tmp_path / "d.npz"), "--verbose", "0", "--no-plot"]
    assert main([*args, "--workers", "2", "-o", str(tmp_path / "two.onnx")]) == 0
    assert main([*args, "-o", str(tmp_path / "one.onnx")]) == 0
    spec = load(str(tmp_path / "bn.nn"))
    two, one = (load_weights(tmp_path / f"{n}.npz", spec.analysis) for n in ("two", "one"))

    # the reference, in one process: each batch's halves through the gradient graph on their own, their
    # gradients and moving statistics averaged, then the update graph
    graphs = build(spec.analysis, configure(spec, {}), [((1,), "float32")], split=True)
    train_graph = ort.InferenceSession(graphs.train.SerializeToString())
    update_graph = ort.InferenceSession(graphs.update.SerializeToString())
    weights = initial_weights(spec.analysis, 0)
    state = {p.name: np.asarray(weights[p.layer][p.index], np.float32) for p in graphs.params}
    state.update(graphs.slots)
    for step, batch in enumerate((slice(0, 32), slice(32, 64))):
        halves = []
        for half in (slice(batch.start, batch.start + 16), slice(batch.start + 16, batch.stop)):
            feed = {"x": x[half], "y0": y[half], "sample_weight": np.ones(16, np.float32),
                    "batch_size": np.array(16, np.float32)}
            feed.update({i.name: state[i.name] for i in train_graph.get_inputs() if i.name in state})
            halves.append(dict(zip([o.name for o in train_graph.get_outputs()], train_graph.run(None, feed))))
        mean = {k: (halves[0][k] + halves[1][k]) / 2 for k in halves[0]}
        for key, out in graphs.updates.items():
            state[key] = mean[out]
        feed = {out: mean[out] for out in graphs.gradients.values()}
        feed.update({"learning_rate": np.array(0.05, np.float32), "iteration": np.array(step + 1, np.float32)})
        feed.update({i.name: state[i.name] for i in update_graph.get_inputs() if i.name in state})
        state.update({key: value for key, value in zip(graphs.applied, update_graph.run(list(graphs.applied.values()), feed))})

    differs = False
    for p in graphs.params:
        np.testing.assert_allclose(two[p.layer][p.index], state[p.name], rtol=0, atol=1e-5, err_msg=p.name)
        differs |= not np.allclose(one[p.layer][p.index], state[p.name], rtol=0, atol=1e-4)
    assert differs  # the statistics of half batches are not those of whole ones


def test_distributed_flags_are_checked_and_a_missing_mpi4py_names_the_extra(tmp_path, capfd):
    assert main(["train", SPEC, "--workers", "0"]) == 2
    assert "--workers takes a positive number, not 0" in capfd.readouterr().err
    assert main(["train", SPEC, "--backend", "ray"]) == 2
    assert "--backend ray runs --workers replicas: give --workers 2 or more" in capfd.readouterr().err
    assert main(["train", SPEC, "--address", "auto", "--workers", "2"]) == 2
    assert "--address joins a Ray cluster: give --backend ray with it" in capfd.readouterr().err
    (tmp_path / "bn.nn").write_text(BN_SPEC)
    np.savez(tmp_path / "d.npz", x=np.zeros((33, 6), np.float32), y=np.zeros((33, 1), np.float32))
    assert main(["train", str(tmp_path / "bn.nn"), "--data", str(tmp_path / "d.npz"), "--workers", "2",
                 "-o", str(tmp_path / "out" / "m.onnx")]) == 2
    assert "--workers 2: every batch needs a sample per replica, but batch_size 32 over 33 training samples " \
           "leaves a batch of 1" in capfd.readouterr().err
    assert not (tmp_path / "out").exists()
    tmp_path = tmp_path / "shim"
    tmp_path.mkdir()
    shim = "import sys; sys.modules['mpi4py'] = None; from nnspec.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", shim, "train", SPEC, "--workers", "2", "-o", str(tmp_path / "m.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (2, "nnspec train: error: --workers 2 needs mpi4py: "
                                                 "pip install 'nnspec[ray]'\n")
    done = subprocess.run([sys.executable, "-c", shim.replace("mpi4py", "ray"), "train", SPEC, "--workers", "2",
                           "--backend", "ray", "-o", str(tmp_path / "m.onnx")], capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stderr) == (2, "nnspec train: error: --backend ray needs Ray: "
                                                 "pip install 'nnspec[ray]'\n")
    assert list(tmp_path.iterdir()) == []
