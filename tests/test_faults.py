"""Faults from outside: a full disk under every command that writes (a small tmpfs, mounted when the
tests run as root), and SIGKILL at random moments of a training run, checkpoint writes included. The
outputs of a command appear as a set or not at all, nothing temporary is left behind, and a resumed
run ends byte for byte where an unbroken one does."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, run_cli
from test_training import write_regression


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a tmpfs of the size asked for (kilobytes), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounts = []

    def mount(kib: int) -> Path:
        point = tmp_path / f"disk{len(mounts)}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(point)],
                                capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], check=False)


def _big_model(folder: Path) -> None:
    (folder / "big.nn").write_text("model big { input x: float32[256]\n dense(64) }\n")  # 64 KiB of weights
    np.save(folder / "x.npy", np.ones((2000, 256), np.float32))


def _commands(folder: Path, disk: Path) -> dict[str, tuple[list[str], list[Path]]]:
    """command -> (arguments, the output set it writes on `disk`)."""
    out = disk / "out"
    return {
        "train": (["train", "r.nn", "--data", "data.npz", "--verbose", "0", "-o", str(out / "r.onnx")],
                  [out / "r.onnx", out / "r.npz", out / "r.history.json", out / "r.history.png",
                   out / "r.resolved.json"]),
        "compile": (["compile", "big.nn", "-o", str(disk / "big.onnx")], [disk / "big.onnx"]),
        "convert": (["convert", str(FIXTURES / "keras" / "bn_mlp.k2.h5"), str(disk / "m.nn")],
                    [disk / "m.nn", disk / "m.npz"]),
        "predict": (["predict", "big.onnx", "-i", "x.npy", "-o", str(disk / "p.npy"), "--device", "cpu"],
                    [disk / "p.npy"]),
    }


# sizes where the first file of a set fails, and where a later one does (train: the picture; convert: the spec)
@pytest.mark.parametrize("command, kib", [("train", 8), ("train", 24), ("compile", 32), ("convert", 4),
                                          ("predict", 64)])
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, full_disk, command, kib):
    write_regression(tmp_path)
    _big_model(tmp_path)
    if command == "predict":
        assert run_cli("compile", "big.nn", "-o", "big.onnx", cwd=tmp_path).returncode == 0
    disk = full_disk(kib)
    args, outputs = _commands(tmp_path, disk)[command]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"cannot write {disk}" in errors[0] and "No space left on device" in errors[0], errors[0]
    assert "was written" in errors[0]
    assert not [p for p in outputs if p.exists()], "a partial output set"
    assert not _leftovers(disk)


def test_a_folder_that_cannot_be_written_is_named(tmp_path):
    write_regression(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run_cli("compile", "r.nn", "-o", str(locked / "r.onnx"), cwd=tmp_path)
    finally:
        locked.chmod(0o700)
    if os.geteuid() == 0:  # root writes anywhere: then the file must simply be there
        assert result.returncode == 0 and (locked / "r.onnx").exists()
    else:
        assert result.returncode == 2 and f"cannot write {locked / 'r.onnx'}: Permission denied" in result.stderr


def _train(tmp_path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nnspec.cli", "train", "r.nn", "--data", "data.npz", "--verbose",
                             "0", "-o", "run/r.onnx", "--resume", *extra], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_at_random_moments_then_resume_ends_byte_for_byte_as_an_unbroken_run(tmp_path):
    write_regression(tmp_path, epochs=30)
    started = time.monotonic()
    reference = run_cli("train", "r.nn", "--data", "data.npz", "--verbose", "0", "-o", "ref/r.onnx", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr
    whole_run = time.monotonic() - started  # kills land within it, however fast this machine is
    checkpoints = tmp_path / "run" / "r.checkpoint"
    rng = random.Random(15)
    kills = 0
    while kills < 4:
        process = _train(tmp_path)
        time.sleep(rng.uniform(0.15, 0.85) * whole_run)  # early ones land before any epoch ends
        if process.poll() is not None:
            break  # it finished before this kill
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        # what a kill inside a checkpoint write leaves (the write itself goes to a temporary)
        if checkpoints.is_dir():
            (checkpoints / f".checkpoint.npz.kill{kills}.tmp").write_bytes(b"\0" * 100)
    finished = _train(tmp_path)
    _, stderr = finished.communicate(timeout=300)
    assert finished.returncode == 0, stderr
    assert kills >= 1
    assert json.loads((tmp_path / "run" / "r.history.json").read_text()) == \
        json.loads((tmp_path / "ref" / "r.history.json").read_text())
    a, b = np.load(tmp_path / "ref" / "r.npz"), np.load(tmp_path / "run" / "r.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        assert a[key].tobytes() == b[key].tobytes(), key
    assert not _leftovers(tmp_path / "run")


def test_killed_before_the_first_epoch_resume_starts_over_and_says_so(tmp_path):
    write_regression(tmp_path, epochs=3)
    process = _train(tmp_path)
    time.sleep(0.2)  # still importing: long before the first epoch ends
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "run" / "r.checkpoint").exists()  # no empty folder left
    result = run_cli("train", "r.nn", "--data", "data.npz", "--verbose", "0", "-o", "run/r.onnx", "--resume",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "no checkpoint in run/r.checkpoint yet; starting from the beginning" in result.stderr
    assert len(json.loads((tmp_path / "run" / "r.history.json").read_text())["loss"]) == 3
