"""Regenerate src/tinynet_zoo/formulas/tiny_b0.json: the GPR tiny formula fit to TinyNet-A..E and B0."""
from pathlib import Path

from tinynet_zoo.core.formula import default_points, fit_formula

OUT = Path(__file__).resolve().parents[1] / "src" / "tinynet_zoo" / "formulas" / "tiny_b0.json"

if __name__ == "__main__":
    fit_formula(default_points(), kind="gpr", name="tiny").save(OUT)
    print(f"wrote {OUT}")
