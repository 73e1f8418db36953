import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.nn"))
FIXTURES = ROOT / "tests" / "fixtures"


def run_cli(*args: str, cwd: str | os.PathLike | None = None, input: str | None = None):
    """Run the real `nnspec` entry point as a user would."""
    exe = shutil.which("nnspec")
    cmd = [exe] if exe else [sys.executable, "-m", "nnspec.cli"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, input=input,
                          timeout=300)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """onnxruntime's optimized deep graphs (backends/onnx/runtime.py SessionCache) go to this run's
    folder, not the user's (commands run as subprocesses inherit it)."""
    os.environ["NNSPEC_CACHE_DIR"] = str(tmp_path_factory.mktemp("session-cache"))


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray for the whole session (it takes seconds to start), CPU only; its address, for
    commands run in subprocesses to join with --address."""
    ray = pytest.importorskip("ray")
    import logging

    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, logging_level=logging.ERROR)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
