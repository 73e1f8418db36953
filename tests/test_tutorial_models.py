"""What the Keras tutorials' models do, end to end in `nnspec train` on tiny data."""
import json

import numpy as np

from conftest import run_cli

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
