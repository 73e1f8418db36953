"""`nnspec train`'s progress display as a user sees it: in an 80-column terminal and a 0x0 one (a real
pty), piped to a file, and Ctrl-C, which names the command that goes on."""
import fcntl
import os
import pty
import re
import shlex
import signal
import struct
import subprocess
import sys
import termios
import time

import numpy as np
import pytest

from conftest import run_cli

SPEC = """model c {
  input x: float32[4]
  dense(8, activation=relu)
  dense(3, activation=softmax)
}

train {
  loss             categorical_crossentropy
  optimizer        adam(learning_rate=0.01)
  metrics          [accuracy, auc, precision, recall]
  batch_size       4
  epochs           EPOCHS
  validation_split 0.25
}
"""
SUMMARY = re.compile(r"^(\d+)/\1(?: \[=+\])? - \d+s \d+ms/step - loss: [\d.]+ - accuracy: [\d.]+ - "
                     r"auc: [\d.]+ - "
                     r"precision: [\d.]+ - recall: [\d.]+ - val_loss: [\d.]+ - val_accuracy: [\d.]+ - val_auc: [\d.]+ - "
                     r"val_precision: [\d.]+ - val_recall: [\d.]+$")


def write_run(folder, epochs=3, n=400):
    (folder / "c.nn").write_text(SPEC.replace("EPOCHS", str(epochs)))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    np.savez(folder / "d.npz", x=x, y=np.eye(3, dtype=np.float32)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0)])


def command(*args):
    return [sys.executable, "-m", "nnspec.cli", *args]


def in_terminal(folder, rows, columns, *args) -> str:
    """Run `nnspec train` with a pty of the given size as its output; everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(command("train", "c.nn", "--data", "d.npz", "--device", "cpu", *args), cwd=folder,
                               stdout=slave, stderr=subprocess.DEVNULL, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the pty
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert process.wait(timeout=120) == 0
    os.close(master)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def frames(output: str) -> list[str]:
    """Every state the terminal showed: each line, and each carriage-return frame within it."""
    return [frame for line in output.split("\n") for frame in line.split("\r")]


def test_an_80_column_terminal_never_wraps_and_shows_each_epoch_whole(tmp_path):
    write_run(tmp_path)
    output = in_terminal(tmp_path, 24, 80)
    live = [f for f in frames(output) if "ETA" in f]
    assert live and all(len(f) < 80 for f in live)  # no refresh reaches the last column, so none wraps
    assert not any(re.search(r",\s+-|-\s*,", f) for f in frames(output))  # no stray commas from tqdm's postfix
    summaries = [line.split("\r")[-1] for line in output.split("\n") if "ms/step" in line]
    assert len(summaries) == 3 and all(SUMMARY.match(s) for s in summaries), summaries
    assert [line for line in output.split("\n") if line.startswith("Epoch")] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]


def test_a_0x0_terminal_still_shows_every_summary(tmp_path):
    write_run(tmp_path, epochs=2)
    output = in_terminal(tmp_path, 0, 0)
    summaries = [line.split("\r")[-1] for line in output.split("\n") if "ms/step" in line]
    assert len(summaries) == 2 and all(SUMMARY.match(s) for s in summaries), output


@pytest.mark.parametrize("verbose", ["1", "2"])
def test_output_to_a_pipe_is_one_plain_line_per_epoch(tmp_path, verbose):
    write_run(tmp_path)
    result = run_cli("train", "c.nn", "--data", "d.npz", "--verbose", verbose, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == 7 and [lines[i] for i in (0, 2, 4)] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"], lines
    assert all(SUMMARY.match(lines[i]) and ("[=" in lines[i]) == (verbose == "1") for i in (1, 3, 5)), lines
    assert lines[6].startswith("wrote ")


def test_ctrl_c_names_the_command_that_goes_on_and_it_does(tmp_path):
    write_run(tmp_path, epochs=60, n=64)
    process = subprocess.Popen(command("train", "c.nn", "--data", "d.npz", "--verbose", "0", "-o", "run/c.onnx"),
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "run" / "c.checkpoint" / "checkpoint.npz"
    deadline = time.time() + 60
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    prefix = "nnspec: interrupted; to go on from the last finished epoch: "
    assert err.startswith(prefix)
    resume = shlex.split(err[len(prefix):].strip())
    assert resume == ["nnspec", "train", "c.nn", "--data", "d.npz", "--verbose", "0", "--output", "run/c.onnx",
                      "--resume"]
    assert not (tmp_path / "run" / "c.onnx").exists()
    finished = subprocess.run(command(*resume[1:]), cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert (tmp_path / "run" / "c.onnx").exists() and not checkpoint.parent.exists()  # done: its checkpoint goes


def test_keep_checkpoint_keeps_what_a_finished_run_removes(tmp_path):
    """(A finished run removing it: the Ctrl-C test above, and test_outputs.py's listing of what train leaves.)"""
    write_run(tmp_path, epochs=1)
    kept = run_cli("train", "c.nn", "--data", "d.npz", "--verbose", "0", "--keep-checkpoint", cwd=tmp_path)
    assert kept.returncode == 0, kept.stderr
    assert (tmp_path / "c.trained.checkpoint" / "checkpoint.npz").exists()


def test_in_a_notebook_the_widget_draws_the_bar_and_the_summary_follows(monkeypatch):
    import io

    from nnspec.train import progress

    made = []

    class Widget:  # what tqdm.auto gives in a Jupyter kernel with ipywidgets
        __module__ = "tqdm.notebook"

        def __init__(self, **settings):
            made.append(settings)

        def update(self, n):
            made.append(self.bar_format)

        def close(self):
            made.append("closed")

    monkeypatch.setattr(progress, "_auto_tqdm", lambda: Widget)
    out = io.StringIO()  # a notebook's output is no terminal, and still gets the live bar
    bar = progress.Progress(1, 1, out)
    bar.epoch_begin(0, 2)
    bar.batch_end({"loss": 0.5})
    bar.batch_end({"loss": 0.25})
    bar.epoch_end({"loss": 0.25, "val_loss": 0.75})
    assert made[0]["ncols"] is None  # the widget sizes itself (ncols would be pixels)
    assert made[-2].endswith(" - ETA: {remaining} - loss: 0.2500") and made[-1] == "closed"
    assert re.fullmatch(r"Epoch 1/1\n2/2 \[=+\] - \d+s \d+ms/step - loss: 0.2500 - val_loss: 0.7500\n", out.getvalue())
