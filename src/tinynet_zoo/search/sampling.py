"""Sampling trials: random r and d in the search ranges, w solved so the exact MACs land on the budget."""
from __future__ import annotations

import random
from dataclasses import dataclass

from ..core.bases import get_base, get_rules
from ..core.budget import format_macs
from ..core.solver import solve_width
from ..core.twist import MIN_RESOLUTION, Twist, even_resolution
from ..errors import BudgetError
from .config import SearchConfig, trial_id

MAX_DRAWS = 2000  # rejection sampling: draws of (r, d) before a budget is declared unreachable


@dataclass(frozen=True)
class TrialSpec:
    """One trial: its stable id, budget, index within the budget and the twist to train."""

    id: str
    budget: float
    index: int
    twist: Twist


def sample_twist(config: SearchConfig, budget: float, index: int) -> Twist:
    """The twist of trial `index` at `budget`: deterministic in (seed, budget, index), so a resumed search
    samples exactly the same networks.

    r and d are drawn uniformly from the ranges; resolution = r * base_resolution (even pixels) and the
    recorded r is resolution / base_resolution; w is the widest width whose exact MACs fit the budget,
    kept only if it is in the w range and within the tolerance below the budget (else draw again).
    """
    base, rules, space = get_base(config.base), get_rules(config.rules), config.space
    rng = random.Random(f"{config.seed}:{budget:.0f}:{index}")
    for _ in range(MAX_DRAWS):
        r, d = rng.uniform(*space.r), rng.uniform(*space.d)
        resolution = even_resolution(config.base_resolution, r)
        if resolution < MIN_RESOLUTION:
            continue
        found = solve_width(base, rules, d, resolution, budget, guess=0.5 * sum(space.w))
        if found is None or not space.w[0] <= found.w <= space.w[1]:
            continue
        if found.macs >= budget * (1 - space.tolerance):
            return Twist(resolution / config.base_resolution, round(d, 6), found.w, resolution, config.base,
                         config.rules)
    raise BudgetError(f"no twist with r in {space.r}, d in {space.d} and w in {space.w} lands within "
                      f"{100 * space.tolerance:g}% of {format_macs(budget)} after {MAX_DRAWS} draws; widen the "
                      "ranges or choose a budget further from the range's ends")


def trial_specs(config: SearchConfig) -> list[TrialSpec]:
    """Every trial of the search, budgets in increasing order, then by index."""
    return [TrialSpec(trial_id(budget, i), budget, i, sample_twist(config, budget, i))
            for budget, count in config.trials_per_budget().items() for i in range(count)]
