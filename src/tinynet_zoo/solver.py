"""Landing a (r, d) direction on a MAC budget: width and an even-pixel resolution nudge, solved exactly."""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

from .arch import decode_parts
from .bases import Base, Rules, get_rules
from .budget import format_macs
from .errors import BudgetError, TinyNetZooError
from .flops import count_macs
from .twist import ALPHA, GAMMA, MAX_MULTIPLIER, MIN_RESOLUTION, MAX_RESOLUTION, Twist, even_resolution

W_MIN, W_MAX = 0.05, 4.0
W_STEPS = 16  # bisection steps: width resolved to (W_MAX - W_MIN) / 2**16 ~ 6e-5
NUDGES = (0, -2, 2, -4, 4, -6, 6, -8, 8)  # even-pixel resolution nudges, tried in this order
GOOD_ENOUGH = 0.002  # stop nudging once within 0.2% below the budget
TOLERANCE = 0.01


class BudgetWarning(UserWarning, TinyNetZooError):
    """A budget could only be met less tightly than the 1% tolerance."""


class _Landing(NamedTuple):
    macs: int
    w: float
    resolution: int


def macs_of(base: Base, rules: Rules, d: float, w: float, resolution: int) -> int:
    """Exact MACs of one configuration (the solvers' inner evaluation)."""
    return count_macs(decode_parts(base, rules, d, w), resolution)


def solve_width(base: Base, rules: Rules, d: float, resolution: int, budget: float) -> _Landing | None:
    """The widest w (to ~1e-4) whose exact MACs do not exceed the budget, or None if even W_MIN does."""
    lo_macs = macs_of(base, rules, d, W_MIN, resolution)
    if lo_macs > budget:
        return None
    lo, hi = W_MIN, W_MAX
    if macs_of(base, rules, d, hi, resolution) <= budget:
        return _Landing(macs_of(base, rules, d, hi, resolution), hi, resolution)
    for _ in range(W_STEPS):
        mid = (lo + hi) / 2
        mid_macs = macs_of(base, rules, d, mid, resolution)
        if mid_macs <= budget:
            lo, lo_macs = mid, mid_macs
        else:
            hi = mid
    return _Landing(lo_macs, lo, resolution)


def land(base: Base, rules: Rules, r: float, d: float, budget: float, tolerance: float = TOLERANCE) -> Twist:
    """Twist with resolution ~ base*r (nudged by <= 8 px) and depth d whose width lands on the budget from below."""
    nominal = even_resolution(base.resolution, r)
    best: _Landing | None = None
    for delta in NUDGES:
        resolution = nominal + delta
        if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
            continue
        found = solve_width(base, rules, d, resolution, budget)
        if found is not None and (best is None or found.macs > best.macs):
            best = found
        if best is not None and best.macs >= budget * (1 - GOOD_ENOUGH):
            break
    if best is None:
        raise BudgetError(f"budget {format_macs(budget)} is below the smallest network buildable at "
                          f"r={r:.3g}, d={d:.3g} on {base.name}")
    if best.macs < budget * (1 - tolerance):
        warnings.warn(f"budget {format_macs(budget)} met only to {100 * (1 - best.macs / budget):.2f}% "
                      f"({best.macs} MACs); the tolerance is {100 * tolerance:g}%", BudgetWarning, stacklevel=3)
    return Twist(round(r, 6), round(d, 6), best.w, best.resolution, base.name, rules.name)


def solve_phi(base: Base, budget: float, lo: float = -12.0, hi: float = 5.0, steps: int = 40) -> float:
    """Largest compound-scaling phi whose giant-formula network (base's own rules) fits the budget."""
    rules = get_rules(base.rules)

    def fits(phi: float) -> bool:
        resolution = max(MIN_RESOLUTION, even_resolution(base.resolution, GAMMA ** phi))
        w = min(1.1 ** phi, MAX_MULTIPLIER)
        return macs_of(base, rules, ALPHA ** phi, w, resolution) <= budget

    if not fits(lo):
        raise BudgetError(f"budget {format_macs(budget)} is below the giant formula's smallest network")
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def land_giant(base: Base, budget: float) -> Twist:
    """The giant (compound) formula at the phi solved from the budget, width re-solved on exact MACs."""
    phi = solve_phi(base, budget)
    if not math.isfinite(phi):
        raise BudgetError(f"no giant-formula network fits {format_macs(budget)}")
    return land(base, get_rules(base.rules), GAMMA ** phi, ALPHA ** phi, budget)
