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
