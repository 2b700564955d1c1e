"""Regenerate docs/models.md from the registry."""
from pathlib import Path

from tinynet_zoo.cli.catalog import models_markdown

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "docs" / "models.md"
    out.write_text(models_markdown())
    print(f"wrote {out}")
