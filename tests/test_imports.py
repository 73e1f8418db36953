"""The backends depend on the IR and shared leaf utilities only, never on the CLI, training,
data, loader or writer modules above them (which import the backends)."""
import ast
from pathlib import Path

import pytest

BACKENDS = Path(__file__).resolve().parent.parent / "backends"
ALLOWED = ("nnspec.backends", "nnspec.ir", "nnspec.errors", "nnspec.atomic")


def _module(path: Path) -> str:
    parts = path.relative_to(BACKENDS.parent).with_suffix("").parts
    parts = ("nnspec",) + parts if parts[-1] != "__init__" else ("nnspec",) + parts[:-1]
    return ".".join(parts)


def imported(path: Path) -> set[str]:
    """Every nnspec module `path` imports, at the top or inside a function, as absolute names."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            if not node.module:  # `from .. import x` may name a module: count `base.x` too
                out |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in out if m == "nnspec" or m.startswith("nnspec.")}


def test_import_resolution_is_checked_on_a_known_file():
    compile_imports = imported(BACKENDS / "onnx" / "compile.py")
    assert {"nnspec.ir.model", "nnspec.backends.onnx.primitives", "nnspec.errors"} <= compile_imports


@pytest.mark.parametrize("path", sorted(BACKENDS.rglob("*.py")), ids=lambda p: str(p.relative_to(BACKENDS)))
def test_backends_import_only_the_ir_and_shared_utilities(path):
    upward = sorted(m for m in imported(path) if not m.startswith(ALLOWED))
    assert not upward, f"{path.relative_to(BACKENDS.parent)} imports {upward}; move that code out of backends/"
