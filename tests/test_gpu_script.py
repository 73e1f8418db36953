"""bench/gpu.sh runs to its end on a machine without a GPU, saying what it skipped and why."""
import os
import subprocess
import sys

from conftest import ROOT


def test_gpu_script_smoke_pass_without_cuda():
    env = {**os.environ, "PYTHON": sys.executable}
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh"), "--check"], capture_output=True, text=True,
                            env=env, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "gpu.sh: skipping the CUDA tests and the GPU comparison (" in out
    assert "4 passed" in out  # the CUDA tests' harness, dry-run on the CPU provider
    assert out.rstrip().endswith("gpu.sh: done")
