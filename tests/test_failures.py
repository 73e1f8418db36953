"""The error contract of the command line: every failure is one line and an exit code (0 ok, 1 a bug with
the text to report and --debug for the traceback, 2 bad input, 130 interrupted); outputs appear as a set;
the memory a model needs is checked before anything is allocated."""
from __future__ import annotations

import errno
import shutil
import subprocess
import sys

import pytest

from nnspec import cli, limits
from nnspec.atomic import WriteError, output_set, temporaries, write_text
from nnspec.loader import loads


@pytest.fixture
def failing(monkeypatch):
    """Make `nnspec schema` raise the exception given."""
    def install(exc: BaseException):
        def command(args):
            raise exc
        monkeypatch.setitem(cli.COMMANDS, "schema", command)
    return install


def test_a_bug_is_one_line_asking_for_a_report_and_debug_shows_the_traceback(failing, capsys):
    failing(KeyError("weights"))
    assert cli.main(["schema"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "internal error: KeyError" in err and "please report it" in err and "nnspec --debug schema" in err
    assert cli.main(["--debug", "schema"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "internal error: KeyError" in err


@pytest.mark.parametrize("exc, code, fragment", [
    (KeyboardInterrupt(), 130, "nnspec: interrupted"),
    (PermissionError(errno.EACCES, "Permission denied", "/data/x.npz"), 2, "/data/x.npz: Permission denied"),
    (OSError(errno.ENOSPC, "No space left on device", "/out/m.onnx"), 2, "/out/m.onnx: No space left on device; free"),
    (MemoryError(), 2, "out of memory"),
    (RecursionError(), 2, "nested too deeply"),
])
def test_each_kind_of_failure_has_its_exit_code(failing, capsys, exc, code, fragment):
    failing(exc)
    assert cli.main(["schema"]) == code
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_closed_pipe_is_not_an_error():
    """`nnspec schema | head`: the reader leaves before nnspec writes (a real pipe, in a real process:
    silencing stdout rewires the process's file descriptor 1)."""
    exe = shutil.which("nnspec")
    command = [exe, "schema"] if exe else [sys.executable, "-m", "nnspec.cli", "schema"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert b"Traceback" not in proc.stderr.read()


def test_an_output_set_appears_whole_or_not_at_all(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    with pytest.raises(RuntimeError):
        with output_set():
            write_text(a, "a")
            assert not a.exists()  # renamed only when the whole set is written
            write_text(b, "b")
            raise RuntimeError("the third file failed")
    assert not a.exists() and not b.exists()
    assert not temporaries(a) and not temporaries(b)
    with output_set():
        write_text(a, "a")
        write_text(b, "b")
    assert a.read_text() == "a" and b.read_text() == "b"


def test_a_failed_write_names_the_file_and_the_set(tmp_path, monkeypatch):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    real_open = open

    def full(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / ".b.txt")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full)
    with pytest.raises(WriteError) as err:
        with output_set():
            write_text(a, "a")
            write_text(b, "b")
    assert str(err.value) == f"nnspec: error: cannot write {b}: No space left on device; none of {a}, {b} was written"
    assert not a.exists() and not list(tmp_path.iterdir())


def test_compile_and_train_refuse_a_model_bigger_than_free_memory(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(limits, "available_memory", lambda: 1 << 20)  # 1 MiB free
    (tmp_path / "m.nn").write_text("model m { input x: float32[256]\n dense(1024) }\n")
    assert cli.main(["compile", str(tmp_path / "m.nn"), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "compiling the model needs about 0.0 GiB for 263,168 parameters, and this machine has 0.0 GiB free" in err
    assert not (tmp_path / "m.onnx").exists()


def test_counting_a_huge_search_space_allocates_nothing():
    spec = loads("model m { input x: float32[4]\n dense(int_range(1, 1000, 1))\n dropout(uniform(0.1, 0.5)) }\n"
                 "train { batch_size int_range(1, 10 ** 12) }", "s.nn")
    assert sorted(p.dist.count() or 0 for p in spec.space.params.values()) == [0, 1000, 10**12]
    assert spec.space.size() is None  # a continuous parameter
    only_ints = loads("model m { input x: float32[4]\n dense(4) }\ntrain { batch_size int_range(1, 10 ** 12) }",
                      "s.nn")
    assert only_ints.space.size() == 10**12
    with pytest.raises(Exception, match="grid search over 1,000,000,000,000 points is beyond the limit"):
        only_ints.space.grid()
