"""docs/formula.png: r, d, w against the MAC budget for the tiny and inverse-giant formulas (needs matplotlib)."""
import warnings
from pathlib import Path

import numpy as np

import tinynet_zoo as tz
from tinynet_zoo.core.formula import MIN_BUDGET

OUT = Path(__file__).resolve().parents[1] / "docs" / "formula.png"


def main() -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    b0 = tz.model_info("efficientnet_b0").macs
    budgets = np.geomspace(MIN_BUDGET, 4e9, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = {f: [tz.for_flops(float(b), formula=f) for b in budgets] for f in ("tiny", "giant")}
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharex=True)
    for ax, key in zip(axes, ("r", "d", "w")):
        for formula, style in (("tiny", "-"), ("giant", "--")):
            label = "tiny formula (giant above B0)" if formula == "tiny" else "(inverse) giant formula"
            ax.plot(budgets / 1e6, [getattr(t, key) for t in curves[formula]], style, label=label)
        for name in tz.list_models():
            info = tz.model_info(name)
            marker = "o" if info.family == "tinynet" else "s"
            ax.plot(info.macs / 1e6, getattr(info.twist, key), marker, color="k", ms=4)
            if info.family == "tinynet" or name == "efficientnet_b0":
                ax.annotate(name.replace("tinynet_", "").replace("efficientnet_", "").upper(),
                            (info.macs / 1e6, getattr(info.twist, key)), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
        ax.axvline(b0 / 1e6, color="grey", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("budget (M MACs)")
        ax.set_title({"r": "resolution multiplier r", "d": "depth multiplier d", "w": "width multiplier w"}[key])
    axes[0].legend(fontsize=7)
    fig.suptitle("circles: TinyNet-A..E, squares: EfficientNet-B0, B^-1..B^-4, Lite0", fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
