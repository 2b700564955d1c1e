"""The search figure: every trial's top-1 against MACs with the front, and the fitted r(c), d(c), w(c)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..core.formula import for_flops
from ..errors import BudgetError, BudgetWarning
from ..files import write_atomic
from ..system import pyplot


def _curves(fits: dict[str, Any], config: dict[str, Any], budgets: list[float]) -> dict[str, Any]:
    """r, d and w along the budgets for each fitted formula (w from for_flops' landing on exact MACs)."""
    import numpy as np

    grid = np.geomspace(min(budgets), max(budgets), 16)
    curves = {}
    for kind in ("gpr", "linear"):
        if kind not in fits:
            continue
        rows = []
        for budget in grid:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", BudgetWarning)
                try:
                    twist = for_flops(float(budget), base=config["base"], formula=fits[kind])
                except BudgetError:
                    continue
            rows.append((budget, *fits[kind].predict(float(budget)), twist.w))
        curves[kind] = np.array(rows) if rows else None
    return curves


def plot_search(path: "str | Path", trials: list[dict[str, Any]], leaders: list[dict[str, Any]],
                front: list[dict[str, Any]], fits: dict[str, Any], config: dict[str, Any]) -> Path:
    """Write the search figure (PNG) to `path`: trials, fitted leaders, the Pareto `front`, fitted curves."""
    plt = pyplot("the search plot", extra="search")
    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    ax = axes[0]
    ax.scatter([t["macs"] / 1e6 for t in trials], [t["top1"] for t in trials], c=[t["r"] for t in trials],
               cmap="viridis", s=25, label="trials (colour: r)")
    ax.scatter([t["macs"] / 1e6 for t in leaders], [t["top1"] for t in leaders], facecolors="none",
               edgecolors="red", s=70, label="best half per budget (fitted)")
    ax.step([t["macs"] / 1e6 for t in front], [t["top1"] for t in front], where="post", color="red", lw=1,
            label="Pareto front")
    ax.set(xlabel="MACs (M)", ylabel="val top-1 (%)", title=f"{len(trials)} trials on {config['base']}")
    ax.legend(fontsize=7)
    curves = _curves(fits, config, [t["budget"] for t in trials])
    for ax, (index, key) in zip(axes[1:], enumerate(("r", "d", "w"), start=1)):
        ax.scatter([t["macs"] / 1e6 for t in trials], [t[key] for t in trials], color="0.75", s=12, label="trials")
        ax.scatter([t["macs"] / 1e6 for t in leaders], [t[key] for t in leaders], color="red", s=25, label="fitted")
        for kind, style in (("gpr", "-"), ("linear", "--")):
            if curves.get(kind) is not None:
                ax.plot(curves[kind][:, 0] / 1e6, curves[kind][:, index], style, label=f"{kind} fit")
        ax.set(xlabel="budget (MACs, M)", ylabel=key, title=f"{key}(c)" + (" (solved on exact MACs)" if key == "w"
                                                                            else ""))
        ax.legend(fontsize=7)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return Path(path)
