"""Pictures and logs: history.png from `nnspec train`, `nnspec plot` for histories and networks,
`nnspec predict --show`, TensorBoard event files read back with TensorBoard's own reader, and the
image-folder example spec trained end to end."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from conftest import ROOT, run_cli
from nnspec.data import Dataset
from nnspec.loader import loads
from nnspec.plots import history_panels, model_nodes, plot_history, plot_model
from nnspec.train.run import configure, train


def png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_history_picture_has_a_panel_per_metric(tmp_path):
    history = {"loss": [1.0, 0.5, 0.25], "accuracy": [0.5, 0.7, 0.9], "val_loss": [1.1, 0.6, 0.4],
               "val_accuracy": [0.4, 0.6, 0.8], "mae": [3, 2, 1]}
    assert history_panels(history) == [("loss", "loss", "val_loss"), ("accuracy", "accuracy", "val_accuracy"),
                                       ("mae", "mae", None)]
    width, height = png_size(plot_history(history, tmp_path / "h.png"))
    assert width > 2 * height  # three panels side by side
    svg = plot_history(history, tmp_path / "h.svg").read_text()
    assert "val" in svg and "accuracy" in svg


def test_model_picture_shows_layers_shapes_and_parameters(tmp_path):
    spec = loads("model g { input a: float32[4]\n input b: float32[3]\n"
                 " ha = dense(a, 8, activation=relu)\n hb = dense(b, 8)\n s = add(ha, hb)\n"
                 " out = dense(s, 2, activation=softmax)\n output out }", "g.nn")
    nodes, edges = model_nodes(spec.analysis)
    titles = [n["title"] for n in nodes]
    assert titles == ["a (InputLayer)", "b (InputLayer)", "ha (Dense)", "hb (Dense)", "s (Add)", "out (Dense)"]
    assert sorted(edges) == [(0, 2), (1, 3), (2, 4), (3, 4), (4, 5)]
    assert nodes[2]["params"] == 40 and nodes[4]["in"] == ["(None, 8)", "(None, 8)"]
    svg = plot_model(spec.analysis, tmp_path / "g.svg").read_text()
    for text in ("ha (Dense)", "s (Add)", "params: 40", "output: (None, 2)", "90 parameters"):
        assert text in svg, text


def test_plot_command(tmp_path):
    (tmp_path / "h.history.json").write_text(json.dumps({"loss": [0.9, 0.4], "val_loss": [1.0, 0.5]}))
    result = run_cli("plot", "h.history.json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    png_size(tmp_path / "h.history.png")
    result = run_cli("plot", str(ROOT / "specs" / "residual.nn"), "-o", "net.svg", cwd=tmp_path)
    assert result.returncode == 0 and "merged (Add)" in (tmp_path / "net.svg").read_text(), result.stderr
    (tmp_path / "bad.json").write_text("[1, 2")
    result = run_cli("plot", "bad.json", cwd=tmp_path)
    assert result.returncode == 2 and "bad.json: not JSON" in result.stderr


def test_tensorboard_callback_writes_event_files_tensorboard_reads(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    spec = loads("model r { input x: float32[2]\n dense(4, activation=tanh)\n dense(1, activation=sigmoid) }\n"
                 "train { loss binary_crossentropy  optimizer sgd(0.1)  metrics [accuracy]  batch_size 4\n"
                 "  callbacks [tensorboard(log_dir=\"logs\", histogram_freq=2)] }", "r.nn")
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]] * 4, np.float32)
    y = np.array([0, 1, 1, 0] * 4, np.float32)[:, None]
    config = configure(spec, {"epochs": 4, "verbose": 0, "validation_split": 0.25})
    run = train(spec, config, Dataset([x], [y]), None, seed=0, verbose=0, device="cpu", base_dir=tmp_path)
    history = run.history.history
    guidance = {ea.SCALARS: 0, ea.HISTOGRAMS: 0}
    logs = ea.EventAccumulator(str(tmp_path / "logs" / "train"), size_guidance=guidance).Reload()
    assert set(logs.Tags()["scalars"]) == {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"}
    losses = logs.Scalars("epoch_loss")
    assert [e.step for e in losses] == [0, 1, 2, 3]
    np.testing.assert_allclose([e.value for e in losses], history["loss"], rtol=1e-6)
    assert [e.value for e in logs.Scalars("epoch_learning_rate")] == [pytest.approx(0.1)] * 4
    assert sorted(logs.Tags()["histograms"]) == ["dense/bias", "dense/kernel", "dense_1/bias", "dense_1/kernel"]
    kernels = logs.Histograms("dense/kernel")
    assert [h.step for h in kernels] == [1, 3]  # every second epoch
    final = run.weights["dense"][0]
    assert kernels[-1].histogram_value.num == final.size
    assert kernels[-1].histogram_value.min == pytest.approx(final.min(), rel=1e-6)
    assert kernels[-1].histogram_value.sum == pytest.approx(final.sum(), rel=1e-5, abs=1e-6)
    valid = ea.EventAccumulator(str(tmp_path / "logs" / "validation"), size_guidance=guidance).Reload()
    np.testing.assert_allclose([e.value for e in valid.Scalars("epoch_loss")], history["val_loss"], rtol=1e-6)


def test_image_folder_spec_trains_end_to_end_and_shows_predictions(tmp_path):
    """specs/shapes_cnn.nn: PNGs of three shapes in Keras's layout, resized, rescaled and augmented."""
    spec = ROOT / "specs" / "shapes_cnn.nn"
    result = run_cli("train", spec, "-o", "out/shapes.onnx", "--verbose", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Found 60 images belonging to 3 classes" in result.stdout
    assert "Found 18 images belonging to 3 classes" in result.stdout  # valid/ validates
    history = json.loads((tmp_path / "out" / "shapes.history.json").read_text())
    assert max(history["val_accuracy"][-5:]) >= 0.85 and history["loss"][-1] < history["loss"][0] / 2
    png_size(tmp_path / "out" / "shapes.history.png")
    model = onnx.load(str(tmp_path / "out" / "shapes.onnx"))
    classes = ["circle", "square", "triangle"]
    assert json.loads({p.key: p.value for p in model.metadata_props}["nnspec.classes"]) == classes
    assert json.loads((tmp_path / "out" / "shapes.classes.json").read_text()) == classes
    test_folder = ROOT / "tests" / "fixtures" / "shapes" / "test"  # rescaled as the spec's data is
    result = run_cli("evaluate", spec, "--data", test_folder, "--weights", "out/shapes.npz", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split("accuracy: ")[1].split()[0]) >= 0.75
    result = run_cli("predict", "out/shapes.onnx", "-i", test_folder, "--show", "6", "--show-file", "p.png",
                     cwd=tmp_path)
    assert result.returncode == 0 and "wrote p.png (6 images)" in result.stdout, result.stderr
    png_size(tmp_path / "p.png")


def test_predict_show_with_npz_labels(tmp_path):
    spec = loads("model d { input image: float32[5, 5]\n flatten()\n dense(2, activation=softmax) }", "d.nn")
    (tmp_path / "d.nn").write_text(spec.source)
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).random((4, 5, 5)).astype(np.float32), y=np.eye(2)[[0, 1, 1, 0]])
    result = run_cli("predict", "d.nn", "--seed", "0", "-i", "x.npz", "--show", "4", "-o", "p.npy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "p.npy").shape == (4, 2)
    png_size(tmp_path / "predictions.png")
    result = run_cli("predict", "d.nn", "--seed", "0", "-i", "x.npz", "--show", "0", cwd=tmp_path)
    assert result.returncode == 2 and "--show takes a positive number" in result.stderr


def test_a_resumed_run_replaces_what_the_killed_run_logged_after_its_checkpoint(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    from nnspec.ir.training import TensorBoard as Config
    from nnspec.train.callbacks import TensorBoard

    class Trainer:
        resumed, start_epoch = False, 0

        def current_lr(self):
            return 0.1

    def log(trainer, epochs, loss):
        callback = TensorBoard(Config(log_dir="logs", write_graph=False), tmp_path)
        callback.trainer = trainer
        callback.on_train_begin()
        for epoch in epochs:
            callback.on_epoch_end(epoch, {"loss": loss})
        callback.on_train_end()

    first = Trainer()
    log(first, range(3), 1.0)  # the killed run logged epochs 0, 1, 2; its checkpoint was after epoch 1
    resumed = Trainer()
    resumed.resumed, resumed.start_epoch = True, 2
    log(resumed, range(2, 4), 2.0)
    logs = ea.EventAccumulator(str(tmp_path / "logs" / "train")).Reload()
    assert [(e.step, e.value) for e in logs.Scalars("epoch_loss")] == [(0, 1.0), (1, 1.0), (2, 2.0), (3, 2.0)]
