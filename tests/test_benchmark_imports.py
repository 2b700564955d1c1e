"""Every benchmark and script imports names that exist: a moved or renamed function breaks them at once, not the next
time someone measures."""
import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "benchmarks" / "bad_input").glob("*.py")) + \
    sorted((ROOT / "scripts").glob("*.py"))
LOCAL = {p.stem for p in SCRIPTS}


def _own_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for each `from M import N` of this package or of a sibling script."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and (
                node.module.split(".")[0] == "tinynet_zoo" or node.module in LOCAL):
            out += [(node.module, alias.name) for alias in node.names]
    return out


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_imported_name_exists(path, monkeypatch):
    monkeypatch.syspath_prepend(str(path.parent))
    missing = []
    for module, name in _own_imports(path):
        loaded = importlib.import_module(module)
        if not hasattr(loaded, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{module}.{name}")
    assert missing == [], f"{path.name} imports names that do not exist: {missing}"
