"""The tiny formula: r(c) and d(c) regressed on log-budget over frontier models; `for_flops` for any budget.

A fit is data (points and hyper-parameters, JSON); prediction needs numpy only. Fitting a Gaussian
process uses scikit-learn (extra `formula`). Each target t in (r, d) is modelled as a linear trend in
x = ln(c / c_base) plus, for kind "gpr", a zero-mean GP with an RBF kernel on the residuals.
"""
from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..checks import choice, number
from ..errors import BudgetError, BudgetWarning, ExtraNotInstalledError, InvalidArgumentError, unknown
from ..files import write_json_atomic
from .bases import DEFAULT_BASE, Base, get_base, get_rules
from .budget import check_range, describe_macs, format_macs, parse_budget
from .registry import get_entry
from .solver import land, land_giant
from .twist import Twist, check_resolution

MIN_BUDGET, MAX_BUDGET = 10e6, 4e9
FORMULA_KINDS = ("gpr", "linear")
FORMULAS = ("tiny", "giant")


@dataclass(frozen=True)
class TargetFit:
    """Regression of one multiplier on x = ln(c / c_base): trend a + b*x, optional GP on residuals."""

    intercept: float
    slope: float
    length_scale: float = 1.0
    signal_var: float = 0.0  # 0 means no GP term (kind "linear")
    noise_var: float = 0.0

    def predict(self, xs: Any, x_train: Any, y_train: Any) -> Any:
        """Predictions at xs given the training inputs/targets this fit was made on."""
        import numpy as np

        xs, x_train, y_train = (np.asarray(v, dtype=float) for v in (xs, x_train, y_train))
        trend = self.intercept + self.slope * xs
        if self.signal_var <= 0:
            return trend
        kern = lambda a, b: self.signal_var * np.exp(-0.5 * ((a[:, None] - b[None, :]) / self.length_scale) ** 2)
        gram = kern(x_train, x_train) + (self.noise_var + 1e-10) * np.eye(len(x_train))
        alpha = np.linalg.solve(gram, y_train - (self.intercept + self.slope * x_train))
        return trend + kern(xs, x_train) @ alpha


@dataclass(frozen=True)
class Formula:
    """A fitted tiny formula: frontier points (MACs, r, d), the base they twist, and per-target fits."""

    kind: str
    base: str
    rules: str
    base_macs: int
    points: tuple[tuple[float, float, float], ...]  # (macs, r, d)
    r_fit: TargetFit
    d_fit: TargetFit
    name: str = "custom"
    resolution: int | None = None  # pixels r is relative to (a search at small resolution); None: the base's

    def x(self, macs: Any) -> Any:
        """Regression input: log budget relative to the base's MACs."""
        import numpy as np
        return np.log(np.asarray(macs, dtype=float) / self.base_macs)

    def predict(self, macs: float) -> tuple[float, float]:
        """(r, d) the formula gives for a budget in MACs."""
        xs, train = self.x([macs]), self.x([p[0] for p in self.points])
        r = float(self.r_fit.predict(xs, train, [p[1] for p in self.points])[0])
        d = float(self.d_fit.predict(xs, train, [p[2] for p in self.points])[0])
        if not (r > 0 and d > 0):
            raise BudgetError(f"formula {self.name!r} gives r={r:.3g}, d={d:.3g} at {format_macs(macs)}: "
                              "outside its usable range")
        return r, d

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    def save(self, path: "str | Path") -> None:
        """Write the formula as JSON (atomically)."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Formula":
        """Rebuild from `to_dict()` output, validating its shape."""
        try:
            fits = {k: TargetFit(**data[k]) for k in ("r_fit", "d_fit")}
            formula = cls(kind=data["kind"], base=data["base"], rules=data["rules"], base_macs=int(data["base_macs"]),
                          points=tuple(tuple(map(float, p)) for p in data["points"]), name=data.get("name", "custom"),
                          resolution=data.get("resolution"), **fits)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"not a valid formula file: {exc!r}") from None
        choice("formula kind", formula.kind, FORMULA_KINDS)
        if any(len(p) != 3 for p in formula.points):
            raise InvalidArgumentError("not a valid formula: its points must be (macs, r, d) triples")
        if formula.resolution is not None:
            check_resolution(formula.resolution, "formula resolution")
        get_base(formula.base), get_rules(formula.rules)
        return formula


def _points(points: Iterable[Any]) -> list[tuple[float, float, float]]:
    out = []
    for p in points:
        if isinstance(p, Twist):
            out.append((float(p.macs), p.r, p.d))
        elif isinstance(p, Sequence) and len(p) == 3:
            out.append(tuple(map(float, p)))
        else:
            raise InvalidArgumentError(f"a formula point is a Twist or (macs, r, d), got {p!r}")
    if len(out) < 3:
        raise InvalidArgumentError(f"fitting a formula needs at least 3 points, got {len(out)}")
    return sorted(out)


def _fit_target(x: Any, y: Any, kind: str, noise: float = 1e-4) -> TargetFit:
    import numpy as np

    slope, intercept = np.polyfit(x, y, 1)
    if kind == "linear":
        return TargetFit(float(intercept), float(slope))
    try:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    except ImportError:
        raise ExtraNotInstalledError("fitting a GPR formula needs scikit-learn, which is not installed: "
                                     "pip install 'tinynet-zoo[formula]'") from None
    kernel = ConstantKernel(1e-2, (1e-6, 1.0)) * RBF(0.5, (0.2, 5.0)) + WhiteKernel(min(1e-6, noise), (1e-8, noise))
    gpr = GaussianProcessRegressor(kernel, n_restarts_optimizer=8, random_state=0)
    gpr.fit(np.asarray(x)[:, None], np.asarray(y) - (intercept + slope * np.asarray(x)))
    params = gpr.kernel_.get_params()
    return TargetFit(float(intercept), float(slope), length_scale=float(params["k1__k2__length_scale"]),
                     signal_var=float(params["k1__k1__constant_value"]), noise_var=float(params["k2__noise_level"]))


def fit_formula(points: Iterable[Any], kind: str = "gpr", base: str = DEFAULT_BASE, rules: str = "tinynet",
                name: str = "custom", resolution: int | None = None, noise: float = 1e-4) -> Formula:
    """Fit r(c) and d(c) over frontier points (Twists or (macs, r, d)) with GPR or linear regression.

    resolution: the pixels r is relative to when the points come from a search at a small resolution
    (None: the base's own); noise: the GP's largest white-noise variance (raise it for noisy fronts).
    """
    choice("formula kind", kind, FORMULA_KINDS)
    import numpy as np

    pts = _points(points)
    base_macs = Twist(1.0, 1.0, 1.0, resolution or get_base(base).resolution, base, rules).macs
    x = np.log(np.array([p[0] for p in pts]) / base_macs)
    return Formula(kind=kind, base=base, rules=rules, base_macs=base_macs, points=tuple(pts), name=name,
                   r_fit=_fit_target(x, np.array([p[1] for p in pts]), kind, noise),
                   d_fit=_fit_target(x, np.array([p[2] for p in pts]), kind, noise), resolution=resolution)


def leave_one_out(points: Iterable[Any], kind: str = "gpr", base: str = DEFAULT_BASE) -> list[dict[str, float]]:
    """Fit on all points but one, predict the held-out one: per point, |error| of r and d."""
    pts = _points(points)
    rows = []
    for i, (macs, r, d) in enumerate(pts):
        held = fit_formula(pts[:i] + pts[i + 1:], kind=kind, base=base)
        pr, pd = held.predict(macs)
        rows.append({"macs": macs, "r": r, "d": d, "r_pred": pr, "d_pred": pd, "r_err": abs(pr - r),
                     "d_err": abs(pd - d)})
    return rows


def default_points() -> list[tuple[float, float, float]]:
    """The published frontier: (MACs, r, d) of TinyNet-A..E and EfficientNet-B0 (r = d = 1)."""
    names = ("tinynet_a", "tinynet_b", "tinynet_c", "tinynet_d", "tinynet_e", "efficientnet_b0")
    return sorted((float(t.macs), t.r, t.d) for t in (get_entry(n).twist for n in names))


@lru_cache(maxsize=1)
def _packaged_formula() -> Formula:
    text = resources.files(__package__).joinpath("formulas/tiny_b0.json").read_text()
    return Formula.from_dict(json.loads(text))


def load_formula(formula: "str | Path | Formula") -> Formula:
    """'tiny' (the packaged fit to TinyNet-A..E and B0), a JSON file path, or a Formula as is."""
    if isinstance(formula, Formula):
        return formula
    if formula == "tiny":
        return _packaged_formula()
    if not isinstance(formula, (str, Path)):
        raise InvalidArgumentError(f"formula must be 'tiny', 'giant', a formula .json path or a Formula, got "
                                   f"{formula!r}")
    path = Path(formula)
    if path.suffix != ".json":
        raise unknown("formula", str(formula), FORMULAS)  # a name (a path to a .json file is also accepted)
    if not path.is_file():
        raise InvalidArgumentError(f"formula file {str(path)!r} does not exist" + (" (it is a folder)" if path.is_dir()
                                                                                  else ""))
    try:
        return Formula.from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read formula file {str(path)!r}: {exc}") from None


GRID_RATIO = 1.002  # budgets are landed on a log grid 0.2% apart; see for_flops


def for_flops(budget: "float | int | str", base: str = DEFAULT_BASE, formula: "str | Path | Formula" = "tiny",
              tolerance: float = 0.01, resolution: "int | None" = None) -> Twist:
    """The Twist a formula gives for a MAC budget, landed on the exact MAC count (within 1%, never above).

    resolution: the pixels r is relative to, for data smaller than the base's (e.g. 64 px images: the base
    network at 64 px is r = 1, and the supported budgets shrink with its MACs); default the base's own.
    base: any declared base (core/bases); on a base the formula was not fitted on (the packaged 'tiny' fit is B0's)
    the fit's (r, d) are read at the budget relative to the base's MACs and the width is solved on the base's own
    exact MACs and rules: a transfer (docs/bases.md compares it with the giant formula).
    Monotone by construction: the result is the largest landing among grid budgets g <= budget (a log grid
    0.2% apart; each landing is <= its g, so the search stops once the best beats the next g). A budget
    that cannot be met within `tolerance` gets a BudgetWarning saying how close it came.
    """
    macs = parse_budget(budget)
    base_def = get_base(base)
    number("tolerance", tolerance, 0, 0.5, low_open=True)
    if resolution is not None:
        base_def = dataclasses.replace(base_def, resolution=check_resolution(resolution))
    fit = None if formula == "giant" else load_formula(formula)
    low = budget_range(base, resolution)[0]
    lowest, high = budget_range(base, resolution, formula)
    if resolution is not None and low <= macs < lowest:
        raise BudgetError(f"budget {describe_macs(macs)} is below the smallest network the formula builds at "
                          f"{resolution} px (about {describe_macs(lowest)}); choose at least that, or more pixels")
    check_range(macs, lowest, high, budget)
    k = round(math.log(macs / low) / math.log(GRID_RATIO))  # round: a budget on the grid is its own index
    while k > 0 and _grid_budget(k, low) > macs:
        k -= 1
    best: Twist | None = None
    for index in range(k, -1, -1):
        if best is not None and best.macs >= _grid_budget(index, low):
            break
        try:
            found = _land_grid(index, base_def, fit, tolerance, resolution is not None)
        except BudgetError:  # below the smallest network buildable at these pixels: the best is already found
            if best is None:
                raise
            break
        if best is None or found.macs > best.macs:
            best = found
    assert best is not None
    if best.macs < macs * (1 - tolerance):
        warnings.warn(f"budget {format_macs(macs)} met only to {100 * (1 - best.macs / macs):.2f}% below "
                      f"({best.macs} MACs); the tolerance is {100 * tolerance:g}%", BudgetWarning, stacklevel=2)
    return best


def budget_range(base: str = DEFAULT_BASE, resolution: "int | None" = None,
                 formula: "str | Path | Formula | None" = None) -> tuple[float, float]:
    """The MAC budgets for_flops accepts for a base at `resolution` px: 10M..4G at the base's own pixels, scaled
    with the base network's MACs at other pixels; given a formula, from the smallest network it builds there."""
    base_def = get_base(base)
    if resolution is not None:
        base_def = dataclasses.replace(base_def, resolution=check_resolution(resolution))
    scale = _base_macs(base_def) / _base_macs(get_base(base))
    low, high = MIN_BUDGET * scale, MAX_BUDGET * scale
    if resolution is None or formula is None or formula == "giant":
        return low, high
    fit = load_formula(formula)
    try:
        _land_grid(0, base_def, fit, 0.01, True)
    except BudgetError:  # at few pixels the smallest network the formula builds can be above the scaled range
        low = _grid_budget(_smallest_index(0, base_def, fit, 0.01), low)
    return low, high


def _smallest_index(index: int, base_def: Base, fit: "Formula | None", tolerance: float) -> int:
    """The lowest grid index above `index` (which cannot be landed) that lands: doubling, then bisecting."""
    def lands(i: int) -> bool:
        try:
            _land_grid(i, base_def, fit, tolerance, True)
            return True
        except BudgetError:
            return False
    bad, step = index, 1
    while not lands(bad + step):
        bad, step = bad + step, 2 * step
    good = bad + step
    while good - bad > 1:
        middle = (bad + good) // 2
        bad, good = (bad, middle) if lands(middle) else (middle, good)
    return good


def _grid_budget(index: int, low: float = MIN_BUDGET) -> float:
    return low * GRID_RATIO ** index


@lru_cache(maxsize=4096)
def _land_grid(index: int, base_def: Base, fit: "Formula | None", tolerance: float, fixed: bool = False) -> Twist:
    """The landing for one grid budget: tiny formula up to the base's MACs (or `fit` is None), giant above.
    `fixed`: the caller chose the base's pixels, which a fit's own resolution then does not replace."""
    budget = _grid_budget(index, MIN_BUDGET * _base_macs(base_def) / _base_macs(get_base(base_def.name)))
    base = base_def.name
    if fit is not None and fit.resolution is not None and fit.base == base and not fixed:
        base_def = dataclasses.replace(base_def, resolution=fit.resolution)  # r is relative to the fit's pixels
    base_macs = _base_macs(base_def)
    # each grid landing aims tighter than the tolerance: the result may come from a grid budget below
    aim = tolerance - 2 * (GRID_RATIO - 1)
    if fit is None or budget > base_macs:
        return land_giant(base_def, budget, aim)
    rules = fit.rules if fit.base == base else base_def.rules
    r, d = fit.predict(budget * fit.base_macs / base_macs)
    return land(base_def, get_rules(rules), r, d, budget, aim)


@lru_cache(maxsize=None)
def _base_macs(base_def: Base) -> int:
    return Twist(1.0, 1.0, 1.0, base_def.resolution, base_def.name, base_def.rules).macs
