"""Landing a (r, d) direction on a MAC budget: width and an even-pixel resolution nudge, solved exactly."""
from __future__ import annotations

import math
from typing import NamedTuple

from ..errors import BudgetError
from .arch import shared_arch
from .bases import Base, Rules, get_rules
from .budget import format_macs
from .flops import count_macs
from .twist import ALPHA, GAMMA, MAX_MULTIPLIER, MIN_RESOLUTION, MAX_RESOLUTION, Twist, even_resolution

W_MIN, W_MAX = 0.05, 4.0
W_PRECISION = 1e-4  # width resolved to this
BRACKET = 1.02  # bracket growth factor around the secant estimate
MAX_NUDGE = 12  # pixels the resolution may move from base*r (even steps)
DEPTH_NUDGES = (1.03, 0.97, 1.06, 0.94, 1.1, 0.9)  # tried only when no resolution nudge meets the tolerance
GOOD_ENOUGH = 0.005  # stop nudging once within 0.5% below the budget
MACS_TOLERANCE = 0.01


class _Landing(NamedTuple):
    macs: int
    w: float
    resolution: int


def macs_of(base: Base, rules: Rules, d: float, w: float, resolution: int) -> int:
    """Exact MACs of one configuration (the solvers' inner evaluation, memoised per shared Arch)."""
    arch = shared_arch(base, rules, d, w)
    macs = arch.memo.get(resolution)
    if macs is None:
        macs = arch.memo[resolution] = count_macs(arch, resolution)
    return macs


def solve_width(base: Base, rules: Rules, d: float, resolution: int, budget: float,
                guess: float = 1.0) -> _Landing | None:
    """The widest w (to ~1e-4) whose exact MACs do not exceed the budget, or None if even W_MIN does."""
    def at(w: float) -> int:
        return macs_of(base, rules, d, w, resolution)

    w = min(max(guess, W_MIN), W_MAX)
    for _ in range(2):  # MACs grow roughly with w**2: two secant-like steps land near the answer
        w = min(max(w * math.sqrt(budget / at(w)), W_MIN), W_MAX)
    lo, hi = w, w
    if at(w) <= budget:  # walk up until the budget is exceeded, then bisect
        while at(hi) <= budget:
            if hi >= W_MAX:
                return _Landing(at(W_MAX), W_MAX, resolution)
            lo, hi = hi, min(hi * BRACKET, W_MAX)
    else:
        while at(lo) > budget:
            if lo <= W_MIN:
                return None
            lo, hi = max(lo / BRACKET, W_MIN), lo
    lo_macs = at(lo)
    while hi - lo > W_PRECISION:
        mid = (lo + hi) / 2
        mid_macs = at(mid)
        if mid_macs <= budget:
            lo, lo_macs = mid, mid_macs
        else:
            hi = mid
    return _Landing(lo_macs, lo, resolution)


def _resolutions(nominal: int, gap_fill: int) -> list[int]:
    """Resolutions to try: nominal, the one that would absorb the MAC gap at fixed width, then +-2, +-4, ..."""
    order = [nominal, gap_fill, gap_fill - 2]
    for step in range(2, MAX_NUDGE + 1, 2):
        order += [nominal - step, nominal + step]
    seen, out = set(), []
    for res in order:
        if res not in seen and abs(res - nominal) <= MAX_NUDGE and MIN_RESOLUTION <= res <= MAX_RESOLUTION:
            seen.add(res)
            out.append(res)
    return out


def _land_at_depth(base: Base, rules: Rules, nominal: int, d: float, budget: float) -> _Landing | None:
    """Best landing at depth d: width solved exactly, resolution nudged while the landing is not good enough."""
    best = solve_width(base, rules, d, nominal, budget) if MIN_RESOLUTION <= nominal <= MAX_RESOLUTION else None
    if best is not None and best.macs >= budget * (1 - GOOD_ENOUGH):
        return best
    ratio = budget / best.macs if best is not None else 1.0
    gap_fill = int(2 * math.floor(nominal * math.sqrt(ratio) / 2))
    guess = best.w if best is not None else 1.0
    for resolution in _resolutions(nominal, gap_fill):
        if resolution == nominal:
            continue
        found = solve_width(base, rules, d, resolution, budget, guess)
        if found is not None and (best is None or found.macs > best.macs):
            best, guess = found, found.w
        if best is not None and best.macs >= budget * (1 - GOOD_ENOUGH):
            break
    return best


def land(base: Base, rules: Rules, r: float, d: float, budget: float, tolerance: float = MACS_TOLERANCE) -> Twist:
    """Twist near (r, d) whose width, resolution (<= 12 px) and, rarely, depth (<= 10%) land on the budget.

    Width is solved on the exact MAC count; channel rounding makes MACs a staircase in w with some tall
    steps, so the resolution is nudged while the landing is more than GOOD_ENOUGH below the budget, and
    the depth only when no resolution brings it within the tolerance.
    """
    nominal = even_resolution(base.resolution, r)
    best, best_d = _land_at_depth(base, rules, nominal, d, budget), d
    for factor in DEPTH_NUDGES:
        if best is not None and best.macs >= budget * (1 - tolerance):
            break
        found = _land_at_depth(base, rules, nominal, d * factor, budget)
        if found is not None and (best is None or found.macs > best.macs):
            best, best_d = found, d * factor
    if best is None:
        raise BudgetError(f"budget {format_macs(budget)} is below the smallest network buildable at "
                          f"r={r:.3g}, d={d:.3g} on {base.name}")
    return Twist(round(r, 6), round(best_d, 6), best.w, best.resolution, base.name, rules.name)


def solve_phi(base: Base, budget: float, lo: float = -12.0, hi: float = 5.0, precision: float = 4e-3) -> float:
    """Largest compound-scaling phi whose giant-formula network (base's own rules) fits the budget."""
    rules = get_rules(base.rules)

    def fits(phi: float) -> bool:
        resolution = max(MIN_RESOLUTION, even_resolution(base.resolution, GAMMA ** phi))
        w = min(1.1 ** phi, MAX_MULTIPLIER)
        return macs_of(base, rules, ALPHA ** phi, w, resolution) <= budget

    if not fits(lo):
        raise BudgetError(f"budget {format_macs(budget)} is below the giant formula's smallest network")
    # MACs roughly double per unit of phi: start from that guess, bracket it, then bisect
    base_macs = macs_of(base, rules, 1.0, 1.0, base.resolution)
    guess = min(max(math.log2(budget / base_macs), lo), hi)
    if fits(guess):
        lo, step = guess, 0.25
        while lo + step < hi and fits(lo + step):
            lo, step = lo + step, step * 2
        hi = min(lo + step, hi)
    else:
        hi, step = guess, 0.25
        while hi - step > lo and not fits(hi - step):
            hi, step = hi - step, step * 2
        lo = max(hi - step, lo)
    while hi - lo > precision:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def land_giant(base: Base, budget: float, tolerance: float = MACS_TOLERANCE) -> Twist:
    """The giant (compound) formula at the phi solved from the budget, width re-solved on exact MACs."""
    phi = solve_phi(base, budget)
    return land(base, get_rules(base.rules), GAMMA ** phi, ALPHA ** phi, budget, tolerance)
