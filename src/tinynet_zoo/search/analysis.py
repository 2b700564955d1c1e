"""Analysis of a search: Pareto front, Spearman correlations at fixed budget, the fitted formula (GPR and
linear, with held-out errors); `search_report` writes report.json, formula.json and search.png.

Within one budget every trial costs the budget (its exact MACs are within 1% below it), so the budget's
"front" is its best trial; a Pareto front on exact MACs would also keep every cheaper-but-worse trial. The
formula is fitted on each budget's leaders: its best `fit_fraction` of trials (default half)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..core.budget import format_macs
from ..core.formula import fit_formula
from ..errors import BudgetError, InvalidArgumentError
from ..files import write_json_atomic
from .plot import plot_search
from .results import read_results

GPR_NOISE = 0.05  # white-noise variance a search front may carry (the packaged fit allows only 1e-4)
FIT_FRACTION = 0.5  # the formula is fitted on the best half of each budget's trials
FORMULA_NAME, LINEAR_NAME, REPORT_NAME, PLOT_NAME = "formula.json", "formula_linear.json", "report.json", "search.png"


def pareto_front(trials: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials that no other beats on both MACs (fewer or equal) and top-1 (higher or equal), by MACs."""
    front, best = [], -math.inf
    for trial in sorted(trials, key=lambda t: (t["macs"], -t["top1"])):
        if trial["top1"] > best:
            front.append(trial)
            best = trial["top1"]
    return front


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (ties averaged); nan for fewer than 3 pairs or a constant side."""
    import numpy as np
    from scipy.stats import rankdata

    if len(x) != len(y):
        raise InvalidArgumentError(f"spearman needs equal lengths, got {len(x)} and {len(y)}")
    if len(x) < 3:
        return math.nan
    rx, ry = rankdata(x), rankdata(y)
    if rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _mean(values: Iterable[float], weights: Iterable[float]) -> float:
    pairs = [(v, w) for v, w in zip(values, weights) if not math.isnan(v)]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total else math.nan


def budget_rows(trials: list[dict[str, Any]], fit_fraction: float = FIT_FRACTION) -> list[dict[str, Any]]:
    """Per budget: trial count, best trial, the leaders (best `fit_fraction`, fitted on) and the Spearman
    correlations of top-1 with r, d and w."""
    rows = []
    for budget in sorted({t["budget"] for t in trials}):
        group = sorted((t for t in trials if t["budget"] == budget), key=lambda t: -t["top1"])
        top1 = [t["top1"] for t in group]
        rows.append({"budget": budget, "trials": len(group), "best": group[0]["id"], "best_top1": group[0]["top1"],
                     "leaders": [t["id"] for t in group[:max(1, math.ceil(fit_fraction * len(group)))]],
                     **{f"spearman_{k}": spearman([t[k] for t in group], top1) for k in ("r", "d", "w")}})
    return rows


def _held_out(groups: dict[float, list[tuple[float, float, float]]], kind: str, **kwargs: Any) -> dict[str, Any]:
    """Leave one budget out: fit on the other budgets' points, |error| of r and d at the held-out points."""
    errors = []
    for budget, held in groups.items():
        formula = fit_formula([p for b, ps in groups.items() if b != budget for p in ps], kind=kind, **kwargs)
        for macs, r, d in held:
            try:
                pr, pd = formula.predict(macs)
            except BudgetError:  # extrapolated to r <= 0 or d <= 0: no usable prediction
                continue
            errors.append((abs(pr - r), abs(pd - d)))
    return {"points": len(errors), "r_err": sum(e[0] for e in errors) / max(len(errors), 1),
            "d_err": sum(e[1] for e in errors) / max(len(errors), 1)}


def fit_and_hold_out(groups: dict[float, list[tuple[float, float, float]]], base: str, rules: str, resolution: int,
                     name: str) -> dict[str, Any]:
    """GPR and linear formulas on the leaders of every budget, and their leave-one-budget-out errors."""
    import warnings

    points = sorted(p for ps in groups.values() for p in ps)
    out: dict[str, Any] = {}
    if len(points) < 3:
        out["note"] = f"{len(points)} fit point(s): fitting needs at least 3 (more trials or budgets)"
        return out
    kwargs = dict(base=base, rules=rules, resolution=resolution, noise=GPR_NOISE)
    held_out = len(groups) >= 3 and all(len(points) - len(ps) >= 3 for ps in groups.values())
    with warnings.catch_warnings():  # scikit-learn's hyper-parameter-at-bound notes
        warnings.filterwarnings("ignore", message=".*close to the specified (lower|upper) bound")
        for kind in ("gpr", "linear"):
            out[kind] = fit_formula(points, kind=kind, name=f"{name}-{kind}", **kwargs)
            if held_out:
                out[f"{kind}_held_out"] = _held_out(groups, kind, **kwargs)
    if not held_out:
        out["note"] = "held-out errors need at least 3 budgets and 3 fit points outside each"
    return out


@dataclass
class SearchReport:
    """The analysis of one search folder (see `search_report`)."""

    out: str
    config: dict[str, Any]
    trials: int
    failed: list[str]
    budgets: list[dict[str, Any]]
    spearman: dict[str, float]
    front: list[str]  # Pareto front over all trials (exact MACs)
    fit_points: list[list[float]]  # (macs, r, d) of every budget's leaders: what the formula is fitted on
    held_out: dict[str, dict[str, float]]
    files: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    def text(self) -> str:
        """A human-readable summary (Markdown tables)."""
        lines = [f"search {self.out}: {self.trials} trials ok, {len(self.failed)} failed; "
                 f"base {self.config['base']} at {self.config['base_resolution']} px",
                 "| budget | trials | best | best top-1 | fitted on | rho(r) | rho(d) | rho(w) |",
                 "|---|---|---|---|---|---|---|---|"]
        for row in self.budgets:
            lines.append(f"| {format_macs(row['budget'])} | {row['trials']} | {row['best']} | "
                         f"{row['best_top1']:.1f}% | {len(row['leaders'])} | {row['spearman_r']:+.2f} | "
                         f"{row['spearman_d']:+.2f} | {row['spearman_w']:+.2f} |")
        s = self.spearman
        lines.append(f"Spearman at fixed budget (mean over budgets, weighted by trials): r {s['r']:+.2f}, "
                     f"d {s['d']:+.2f}, w {s['w']:+.2f}")
        for kind, err in self.held_out.items():
            lines.append(f"{kind} fit, each budget held out in turn ({err['points']} points): mean |r error| "
                         f"{err['r_err']:.3f}, mean |d error| {err['d_err']:.3f}")
        if self.note:
            lines.append(self.note)
        lines += [f"{k}: {v}" for k, v in self.files.items()]
        return "\n".join(lines)


def search_report(out: "str | Path", plot: bool = True, fit_fraction: float = FIT_FRACTION) -> SearchReport:
    """Analyse a search folder: front, correlations, GPR and linear fits; writes formula(s), report and PNG."""
    out = Path(out)
    header, records = read_results(out)
    config = header["config"]
    trials = [r for r in records if r.get("status") == "ok" and r.get("top1") is not None]
    if not trials:
        raise InvalidArgumentError(f"{out} has no finished trials yet; run or resume the search first")
    if not 0 < fit_fraction <= 1:
        raise InvalidArgumentError(f"fit_fraction must be in (0, 1], got {fit_fraction!r}")
    rows = budget_rows(trials, fit_fraction)
    spearman_mean = {k: _mean([r[f"spearman_{k}"] for r in rows], [r["trials"] for r in rows]) for k in "rdw"}
    by_id = {t["id"]: t for t in trials}
    leaders = [by_id[i] for row in rows for i in row["leaders"]]
    groups = {row["budget"]: [(float(by_id[i]["macs"]), by_id[i]["r"], by_id[i]["d"]) for i in row["leaders"]]
              for row in rows}
    fits = fit_and_hold_out(groups, config["base"], config["rules"], config["base_resolution"], out.resolve().name)
    failed = sorted(r["id"] for r in records if r.get("status") == "failed")
    held_out = {k: v for k in ("gpr", "linear") if (v := fits.get(f"{k}_held_out"))}
    points = sorted(list(p) for ps in groups.values() for p in ps)
    report = SearchReport(str(out), config, len(trials), failed, rows, spearman_mean,
                          [t["id"] for t in pareto_front(trials)], points, held_out, note=fits.get("note", ""))
    if "gpr" in fits:
        fits["gpr"].save(out / FORMULA_NAME)
        fits["linear"].save(out / LINEAR_NAME)
        report.files.update(formula=str(out / FORMULA_NAME), formula_linear=str(out / LINEAR_NAME))
    if plot:
        plot_search(out / PLOT_NAME, trials, leaders, pareto_front(trials), fits, config)
        report.files["plot"] = str(out / PLOT_NAME)
    report.files["report"] = str(out / REPORT_NAME)
    write_json_atomic(out / REPORT_NAME, report.to_dict())  # an undefined correlation (NaN) is written as null
    return report
