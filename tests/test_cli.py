"""The `nnspec` command through its real entry point."""
import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from conftest import ROOT, SPECS, run_cli

# What `nnspec summary` must print as totals: Keras's model.summary() for the same models.
KERAS_TOTALS = {
    "mnist_mlp.nn": 669_706,
    "mnist_cnn.nn": 1_199_882,
    "cosine_lstm.nn": 10_451,
    "tiny_transformer.nn": 625,
    "tutorial_sigmoid_mlp.nn": 101_770,
    "tutorial_deep_mlp.nn": 1_494_154,
}


def test_every_example_spec_checks():
    result = run_cli("check", *SPECS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (") == len(SPECS) >= 10


@pytest.mark.parametrize("name, total", KERAS_TOTALS.items())
def test_summary_totals_equal_keras(name, total):
    result = run_cli("summary", ROOT / "specs" / name)
    assert result.returncode == 0, result.stderr
    assert f"Total params: {total:,}" in result.stdout
    assert "Layer (type)" in result.stdout and "Output Shape" in result.stdout


def test_summary_of_a_graph_shows_connections():
    out = run_cli("summary", ROOT / "specs" / "residual.nn").stdout
    assert "Connected to" in out and "merged (Add)" in out and "h1, h2" in out
    assert "Non-trainable params: 0" in out


def test_check_reports_errors_with_exit_2_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.nn"
    bad.write_text("model m {\n  input x: float32[4]\n  dens(4)\n}\n")
    result = run_cli("check", bad, ROOT / "specs" / "mnist_mlp.nn")
    assert result.returncode == 2
    assert result.stderr.startswith(f"{bad}:3:3: error: unknown layer 'dens'; did you mean 'dense'?")
    assert "Traceback" not in result.stderr
    assert "mnist_mlp.nn: ok" in result.stdout  # the other file is still checked


@pytest.mark.parametrize("args, fragment", [
    (["check", "missing.nn"], "missing.nn: no such file"),
    (["summary"], "the following arguments are required"),
    (["check", "--bogus", "x.nn"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_invocations_exit_2(args, fragment):
    result = run_cli(*args)
    assert result.returncode == 2 and fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_binary_file_is_a_clean_error(tmp_path):
    junk = tmp_path / "junk.nn"
    junk.write_bytes(b"\xff\xfe\x00model")
    result = run_cli("check", junk)
    assert result.returncode == 2 and "not UTF-8 text" in result.stderr


def test_fmt_check_write_and_stdout(tmp_path):
    path = tmp_path / "m.nn"
    path.write_text("model m{input x:float32[4] dense(2)}\n")
    assert run_cli("fmt", "--check", path).returncode == 1
    assert run_cli("fmt", path).stdout == "model m {\n  input x: float32[4]\n  dense(2)\n}\n"
    assert run_cli("fmt", "--write", path).returncode == 0
    assert run_cli("fmt", "--check", path).returncode == 0
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind


def test_schema_is_json_schema_that_names_every_layer():
    result = run_cli("schema")
    schema = json.loads(result.stdout)
    assert schema["title"] == "Model" and "Conv2D" in schema["$defs"] and "LSTM" in schema["$defs"]


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("nnspec ")
    for sub in ("check", "summary", "fmt", "schema"):
        assert run_cli(sub, "--help").returncode == 0


def test_parser_reads_a_thousand_layer_spec():
    """Its speed is measured by bench/parse.py, not here."""
    from nnspec.loader import loads

    body = "\n".join(f"  dense({i % 7 + 4}, activation=relu)" for i in range(1000))
    spec = loads(f"model big {{\n  input x: float32[16]\n{body}\n}}\n", "big.nn")
    assert len(spec.model.layers) == 1000
    assert [layer.units for layer in spec.model.layers[:8]] == [4, 5, 6, 7, 8, 9, 10, 4]


def test_wheel_installs_and_runs_in_a_fresh_venv(tmp_path):
    """The wheel carries nnspec.backends and the grammar, not only an editable install."""
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    wheel = next(dist.glob("nnspec-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    # The dependencies come from the outer environment, whether it is a venv, a conda env or a system
    # Python: its package folders go on the new venv's path as plain entries, after the venv's own
    # site-packages (their .pth files, such as an editable nnspec, are not run).
    inner_site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                capture_output=True, text=True, check=True).stdout.strip()
    outer = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    (Path(inner_site) / "outer_environment.pth").write_text("\n".join(outer) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index",
                              wheel], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    where = subprocess.run([py, "-c", "import nnspec, nnspec.backends, nnspec.grammar; print(nnspec.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert str(env_dir) in where.stdout, where.stderr
    check = subprocess.run([env_dir / "bin" / "nnspec", "check", ROOT / "specs" / "mnist_mlp.nn"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode == 0 and "ok (669,706 parameters)" in check.stdout, check.stderr


def test_readme_reference_is_generated_from_the_ir():
    from nnspec.reference import BEGIN, END, reference_markdown

    readme = (ROOT / "README.md").read_text()
    assert readme.split(BEGIN)[1].split(END)[0].strip() == reference_markdown().strip()
