"""Code blocks in README.md and docs/*.md run; docs/models.md is generated from the registry."""
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from gen_models_md import models_markdown  # noqa: E402
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
SLOW_CALLS = ("tz.finetune(", "tz.shrink(")  # examples that train: a minute or more each


def _blocks():
    for page in PAGES:
        for i, code in enumerate(BLOCK.findall(page.read_text())):
            slow = [pytest.mark.slow] if any(call in code for call in SLOW_CALLS) else []
            yield pytest.param(code, id=f"{page.name}-{i}", marks=slow)


@pytest.mark.parametrize("code", list(_blocks()))
def test_code_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<doc>", "exec"), {"__name__": "__doc__"})


def test_models_md_is_current():
    assert (ROOT / "docs" / "models.md").read_text() == models_markdown(), "run python scripts/gen_models_md.py"
