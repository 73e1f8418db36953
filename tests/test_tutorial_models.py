"""What the Keras tutorials' models do, end to end in `nnspec train` on tiny data."""
import json

import numpy as np
import pytest

from conftest import FIXTURES, run_cli

SEQ2SEQ = """model seq2seq {
  input x: float32[3]
  dense(3)
  repeat_vector(4)
  lstm(5, return_sequences=true)
  time_distributed(dense(2))
}
"""


def test_a_keras_model_with_repeat_vector_trains_at_batches_above_one(tmp_path):
    """The gradient of RepeatVector once reshaped with the batch in the wrong place (batch 3, n 4)."""
    (tmp_path / "rv.nn").write_text(SEQ2SEQ)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((16, 3), np.float32), y=rng.random((16, 4, 2), np.float32))
    assert run_cli("convert", "rv.nn", "rv.h5", "--seed", "0", cwd=tmp_path).returncode == 0
    result = run_cli("train", "rv.h5", "--data", "d.npz", "--loss", "mse", "--optimizer", "sgd", "--batch-size", "3",
                     "--epochs", "2", "--verbose", "0", "--no-plot", "-o", "t.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    losses = json.loads((tmp_path / "t.history.json").read_text())["loss"]
    assert len(losses) == 2 and losses[1] < losses[0]


CNN = """model cnn {
  input image: float32[28, 28, 1]
  conv2d(2, 3)
  flatten()
  dense(10, activation=softmax)
}
train {
  loss sparse_categorical_crossentropy
  verbose 0
}
"""


def test_images_without_their_channel_axis_go_to_train_predict_and_model_predict_alike(tmp_path):
    import nnspec

    (tmp_path / "cnn.nn").write_text(CNN)
    rng = np.random.default_rng(0)
    images = rng.random((6, 28, 28), np.float32)
    np.save(tmp_path / "x.npy", images)
    np.savez(tmp_path / "d.npz", x=images, y=rng.integers(0, 10, 6))
    trained = run_cli("train", "cnn.nn", "--data", "d.npz", "--no-plot", "-o", "t.onnx", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    for model, weights in (("cnn.nn", ["--weights", "t.npz"]), ("t.onnx", [])):
        predicted = run_cli("predict", model, "-i", "x.npy", *weights, "-o", f"{model}.npy", cwd=tmp_path)
        assert predicted.returncode == 0, predicted.stderr
    model = nnspec.load(tmp_path / "t.onnx")
    expected = model.predict(images[..., None])
    np.testing.assert_array_equal(model.predict(images), expected)
    np.testing.assert_array_equal(np.load(tmp_path / "t.onnx.npy"), expected)
    np.testing.assert_allclose(np.load(tmp_path / "cnn.nn.npy"), expected, rtol=1e-6)


FLAT = """model flat {
  input pixels: float32[784]
  dense(10, activation=softmax)
}
train {
  data mnist("DIGITS", stop=512, reshape=RESHAPE)
  loss categorical_crossentropy
  optimizer adam
  epochs 2
  verbose 0
}
"""


@pytest.mark.parametrize("reshape", ["[784]", "[-1]"])
def test_a_flat_input_takes_mnist_images_reshaped_on_the_data_side(tmp_path, reshape):
    (tmp_path / "flat.nn").write_text(FLAT.replace("DIGITS", str(FIXTURES / "mnist")).replace("RESHAPE", reshape))
    result = run_cli("train", "flat.nn", "--no-plot", "-o", "t.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "t.history.json").read_text())["loss"][1] < 2.0


def test_a_reshape_that_cannot_hold_the_samples_is_one_line(tmp_path):
    (tmp_path / "flat.nn").write_text(FLAT.replace("DIGITS", str(FIXTURES / "mnist")).replace("RESHAPE", "[100]"))
    result = run_cli("train", "flat.nn", "-o", "t.onnx", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "reshape=[100] cannot hold samples of shape (28, 28) (784 values)" in result.stderr
    assert not list(tmp_path.glob("t.*"))


FIVES = """model five {
  input image: float32[28, 28]
  flatten()
  dense(1, activation=sigmoid)
}
train {
  data mnist("DIGITS", stop=1024, positive=POSITIVE)
  loss binary_crossentropy
  optimizer adam(learning_rate=0.01)
  metrics [accuracy]
  epochs 3
  verbose 0
}
"""


def test_binary_labels_from_mnist_digit_equals_five():
    from nnspec.data import for_model, load, parse_source
    from nnspec.loader import loads

    spec = loads(FIVES.replace("DIGITS", str(FIXTURES / "mnist")).replace("POSITIVE", "5"), "five.nn")
    data = load(spec.model.train.data)
    fitted = for_model(data, spec.model, spec.analysis, spec.model.train.loss, one_hot=data.one_hot)
    digits = load(parse_source(f"mnist('{FIXTURES / 'mnist'}', stop=1024)")).read_y(np.arange(1024))[0]
    labels = fitted.read_y(np.arange(1024))[0]
    assert labels.shape == (1024, 1) and np.array_equal(labels[:, 0], (digits == 5).astype(np.float32))
    assert data.classes == ["not 5", "5"]


@pytest.mark.parametrize("positive", ["5", "'5'"])  # a class index, or the class's name
def test_a_digit_detector_trains_on_mnist(tmp_path, positive):
    (tmp_path / "five.nn").write_text(FIVES.replace("DIGITS", str(FIXTURES / "mnist")).replace("POSITIVE", positive))
    result = run_cli("train", "five.nn", "--no-plot", "-o", "t.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "t.history.json").read_text())["accuracy"][-1] > 0.93  # above all-"not 5"


def test_positive_needs_a_class_the_data_has(tmp_path):
    (tmp_path / "five.nn").write_text(FIVES.replace("DIGITS", str(FIXTURES / "mnist")).replace("POSITIVE", "'five'"))
    result = run_cli("train", "five.nn", "-o", "t.onnx", cwd=tmp_path)
    assert result.returncode == 2 and "positive='five' is not a class of the data" in result.stderr


AUGMENTED = """model small_cnn {
  input image: float32[28, 28, 1]
  conv2d(2, 3, activation=relu)
  flatten()
  dense(10, activation=softmax)
}
train {
  data mnist("DIGITS", stop=128)
  augment image_data_generator(rotation_range=10, channel_shift_range=0.2)
  loss categorical_crossentropy
  epochs 1
  verbose 0
}
"""


def test_channel_shift_range_augments_training(tmp_path):
    (tmp_path / "aug.nn").write_text(AUGMENTED.replace("DIGITS", str(FIXTURES / "mnist")))
    result = run_cli("train", "aug.nn", "--no-plot", "-o", "t.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    resolved = json.loads((tmp_path / "t.resolved.json").read_text())
    assert resolved["train"]["augment"]["channel_shift_range"] == 0.2


BOARD = """model board {
  input x: float32[2]
  dense(3, activation=tanh)
  dense(1, activation=sigmoid)
}
train {
  data xor(repeat=4)
  loss binary_crossentropy
  epochs 2
  verbose 0
  callbacks [tensorboard("tb", histogram_freq=1, write_graph=true, write_images=true)]
}
"""


def test_tensorboard_writes_the_graph_and_weight_images(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator as ea

    from nnspec.train.callbacks import weight_image

    (tmp_path / "board.nn").write_text(BOARD)
    result = run_cli("train", "board.nn", "--no-plot", "-o", "t.onnx", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout == "", result.stderr + result.stdout
    logs = ea.EventAccumulator(str(tmp_path / "tb" / "train"), size_guidance={ea.IMAGES: 0}).Reload()
    assert [node.op for node in logs.Graph().node if node.op != "Variable"] == ["Gemm", "Tanh", "Gemm", "Sigmoid"]
    # dense_1's bias is one number: squeezed to a scalar, which Keras does not draw either
    assert sorted(logs.Tags()["images"]) == ["dense/bias/image", "dense/kernel/image", "dense_1/kernel/image"]
    kernel = logs.Images("dense/kernel/image")
    assert [e.step for e in kernel] == [0, 1] and (kernel[0].height, kernel[0].width) == (2, 3)
    assert weight_image(np.zeros((3, 2, 4))).shape == (4, 3, 2, 1)  # a Conv1D kernel: one image per filter
    assert weight_image(np.zeros((5, 2))).shape == (1, 2, 5, 1) and weight_image(np.zeros((2, 2, 2, 2))) is None


def test_keras_2s_adam_epsilon_none_means_the_default(tmp_path):
    (tmp_path / "e.nn").write_text(BOARD.replace("  callbacks", "  optimizer Adam(lr=0.01, epsilon=None)\n  # callbacks"))
    result = run_cli("train", "e.nn", "--no-plot", "-o", "t.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    optimizer = json.loads((tmp_path / "t.resolved.json").read_text())["train"]["optimizer"]
    assert optimizer["name"] == "adam" and optimizer["epsilon"] == 1e-7 and optimizer["learning_rate"] == 0.01
    (tmp_path / "e.json").write_text(json.dumps({"inputs": [{"shape": [2]}], "layers": [{"type": "dense", "units": 1}],
                                                 "train": {"optimizer": {"name": "rmsprop", "epsilon": None}}}))
    assert run_cli("check", "e.json", cwd=tmp_path).returncode == 0


LINE = """model line {
  input x: float32[2]
  dense(1)
}
train {
  loss mse
  optimizer sgd(learning_rate=1e-9)
  batch_size 8
  shuffle false
  verbose 0
}
"""


@pytest.mark.parametrize("form", ["npz", "csv"])
def test_sample_weight_from_the_data_weights_the_loss_as_keras_does(tmp_path, form):
    """Keras's sum_over_batch_size: sum(w * loss) / batch size (a step of 1e-9 leaves the weights as they were)."""
    import nnspec

    (tmp_path / "line.nn").write_text(LINE)
    rng = np.random.default_rng(0)
    x, y, w = rng.random((8, 2), np.float32), rng.random((8, 1), np.float32), np.arange(8, dtype=np.float32)
    if form == "npz":
        np.savez(tmp_path / "d.npz", x=x, y=y, w=w)
        data = 'npz("d.npz", sample_weight=w)'
    else:
        rows = "\n".join(f"{a},{b},{c},{d}" for (a, b), (c,), d in zip(x, y, w))
        (tmp_path / "d.csv").write_text("a,b,target,weight\n" + rows + "\n")
        data = 'csv("d.csv", labels=target, sample_weight=weight)'
    result = run_cli("train", "line.nn", "--data", data, "--no-plot", "-o", "t.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    loss = json.loads((tmp_path / "t.history.json").read_text())["loss"][0]
    predicted = nnspec.load(tmp_path / "t.onnx").predict(x)
    assert loss == pytest.approx(float(np.sum(w * ((predicted - y) ** 2)[:, 0]) / 8), rel=1e-5)
    unweighted = float(np.mean((predicted - y) ** 2))
    assert abs(loss - unweighted) > 1e-3  # the weights changed the loss


def test_sample_weight_naming_no_array_is_one_line(tmp_path):
    (tmp_path / "line.nn").write_text(LINE)
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2), np.float32), y=np.zeros((4, 1), np.float32),
             weights=np.ones(4, np.float32))
    result = run_cli("train", "line.nn", "--data", 'npz("d.npz", sample_weight=weight)', "-o", "t.onnx",
                     cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "d.npz: no array 'weight' for sample_weight; did you mean 'weights'?" in result.stderr
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2), np.float32), y=np.zeros((4, 1), np.float32),
             weight=-np.ones(4, np.float32))
    result = run_cli("train", "line.nn", "--data", 'npz("d.npz", sample_weight=weight)', "-o", "t.onnx",
                     cwd=tmp_path)
    assert result.returncode == 2 and "sample_weight -1.0 is not a finite number >= 0" in result.stderr


def test_validation_steps_limits_validation_to_its_first_batches(tmp_path):
    import nnspec

    rng = np.random.default_rng(1)
    x, y = rng.random((8, 2), np.float32), rng.random((8, 1), np.float32)
    vx, vy = rng.random((8, 2), np.float32), rng.random((8, 1), np.float32) * 4
    np.savez(tmp_path / "d.npz", x=x, y=y)
    np.savez(tmp_path / "v.npz", x=vx, y=vy)
    spec = LINE.replace("batch_size 8", "batch_size 2\n  data npz(\"d.npz\")\n  validation_data npz(\"v.npz\")")
    (tmp_path / "line.nn").write_text(spec.replace("verbose 0", "verbose 0\n  validation_steps 1"))
    result = run_cli("train", "line.nn", "--no-plot", "-o", "t.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    val_loss = json.loads((tmp_path / "t.history.json").read_text())["val_loss"][0]
    predicted = nnspec.load(tmp_path / "t.onnx").predict(vx)
    squared = (predicted - vy)[:, 0] ** 2
    assert val_loss == pytest.approx(float(squared[:2].mean()), rel=1e-5)  # one batch of 2
    assert abs(val_loss - float(squared.mean())) > 1e-3


FC_BLOCK = """block fc(units, rate=0.1) {
  dense(units, activation=relu)
  dropout(rate)
}
model xor_net {
  input x: float32[2]
  fc(8)
  fc(8, rate=0.0)
  dense(1, activation=sigmoid)
}
train {
  data xor(repeat=8)
  loss binary_crossentropy
  optimizer adam(learning_rate=0.05)
  epochs 3
  verbose 0
}
"""


def test_a_block_may_take_a_layer_alias_and_hides_it(tmp_path):
    (tmp_path / "fc.nn").write_text(FC_BLOCK)
    summary = run_cli("summary", "fc.nn", cwd=tmp_path)
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout.count("(Dense)") == 3 and summary.stdout.count("(Dropout)") == 2  # the block, not Dense
    result = run_cli("train", "fc.nn", "--no-plot", "-o", "t.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_block_may_not_take_a_layers_own_name(tmp_path):
    (tmp_path / "b.nn").write_text(FC_BLOCK.replace("fc", "dense"))
    result = run_cli("check", "b.nn", cwd=tmp_path)
    assert result.returncode == 2
    assert "b.nn:1:7: error: block 'dense' has the name of the built-in layer Dense; choose another" in result.stderr
