"""`for_latency`: the largest tiny-formula twist whose measured batch-1 latency on this machine fits a budget.

The family searched is `for_flops(c)` over MAC budgets c (so r, d, w follow the tiny formula). Latency is
measured, not modelled: starting at 10M MACs the budget doubles until a twist is over the latency budget,
then the bracket is bisected on log MACs until its ends are within `tolerance`. Each measurement builds the
twist on the engine (with backend='auto': the winner of the race on the first twist, kept for the rest), which
may export, convert or lower it (seconds to tens of seconds on 2 cores), and times `runs` batch-1 calls.
Measurements: 1 + ceil(log2(c*/10M)) while doubling, + ceil(log2(ln 2 / ln(1 + tolerance))) bisecting
(4 at 5%, never more than MAX_BISECTIONS); about 9 for a budget met near 100M MACs. At a small `resolution`
the search starts at the smallest network the formula builds there (`budget_range`), not at 10M. Every value
a `measure` callback returns is checked (a finite number of milliseconds > 0).
"""
from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import Any, Callable

from ..core.formula import MAX_BUDGET, MIN_BUDGET, budget_range, for_flops
from ..core.twist import Twist
from ..checks import integer, number
from ..errors import BudgetError, BudgetWarning, InvalidArgumentError
from .backends import require
from .runtime import runtime
from .timing import time_calls


@dataclass(frozen=True)
class LatencyResult:
    """The twist found, its measured latency, and every (MACs, median ms) measured on the way."""

    twist: Twist
    median_ms: float
    budget_ms: float
    backend: str
    measurements: tuple[tuple[int, float], ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {"twist": self.twist.to_dict(), "macs": self.twist.macs, "median_ms": self.median_ms,
                "budget_ms": self.budget_ms, "backend": self.backend,
                "measurements": [list(m) for m in self.measurements]}


def measurement_bound(macs: float, tolerance: float) -> int:
    """Most measurements for_latency makes when the budget is met near `macs` MACs."""
    doubling = 1 + math.ceil(math.log2(max(macs, MIN_BUDGET) / MIN_BUDGET)) + 1
    return doubling + math.ceil(math.log2(math.log(2) / math.log1p(tolerance)))


class _Timer:
    """Times twists on one backend; 'auto' is resolved on the first twist and kept for the rest."""

    def __init__(self, backend: str, runs: int, warmup: int, cache_dir: Any) -> None:
        self.backend, self.threads, self.runs, self.warmup, self.cache_dir = backend, None, runs, warmup, cache_dir

    def __call__(self, twist: Twist) -> float:
        import numpy as np

        predictor = runtime(twist, backend=self.backend, threads=self.threads, cache_dir=self.cache_dir)
        self.backend, self.threads = predictor.backend, predictor.threads
        batch = np.zeros((1, 3, twist.resolution, twist.resolution), dtype=np.float32)
        return time_calls(lambda: predictor(batch), self.warmup, self.runs).median_ms

    def label(self) -> str:
        return self.backend + (f":{self.threads}" if self.threads else "")


MIN_TOLERANCE = 0.005  # for_flops lands budgets on a grid 0.2% apart: a finer bracket cannot be told apart
MAX_BISECTIONS = 12  # more than any tolerance >= MIN_TOLERANCE needs: nothing can loop for ever


def _checked_ms(value: Any, twist: Twist) -> float:
    """A latency the measure callback returned: a finite number of milliseconds > 0, else a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"measure returned {value!r} for the twist at {twist.macs / 1e6:.2f}M MACs "
                                   f"({twist.resolution} px); it must return a finite, positive number of "
                                   "milliseconds (float)")
    return float(value)


def _check_search(ms: Any, tolerance: Any, runs: Any, warmup: Any, measure: Any, backend: str) -> None:
    if isinstance(ms, bool) or not isinstance(ms, numbers.Real) or not math.isfinite(ms) or ms <= 0:
        raise BudgetError(f"a latency budget is a positive number of milliseconds, got {ms!r}")
    number("tolerance", tolerance, MIN_TOLERANCE, 1, high_open=True)
    if measure is not None and not callable(measure):
        raise InvalidArgumentError(f"measure must be a callable twist -> milliseconds (or None to time on "
                                   f"{backend!r}), got {measure!r}")
    if measure is None:
        integer("runs", runs, 1), integer("warmup", warmup, 0)
        if backend != "auto":
            require(backend)  # unknown or not installed: say so before building anything


def for_latency(ms: float, backend: str = "auto", base: str = "efficientnet_b0", formula: Any = "tiny",
                tolerance: float = 0.05, max_macs: float = MAX_BUDGET, runs: int = 30, warmup: int = 10,
                cache_dir: Any = None, measure: "Callable[[Twist], float] | None" = None,
                resolution: "int | None" = None) -> LatencyResult:
    """The largest tiny-formula twist (by MACs) whose measured batch-1 median latency is within `ms` milliseconds.

    max_macs caps the search (default: the top of for_flops' range); resolution fixes the pixels the twists
    are relative to (as in for_flops, whose budget range then scales with the base network's MACs there; the
    search starts at the smallest network the formula builds there); measure replaces the timing (a callable
    twist -> ms, each value checked), e.g. a fixed latency model or another harness. tolerance: the bracket's
    MAC ratio at which bisection stops, in [0.005, 1).
    """
    _check_search(ms, tolerance, runs, warmup, measure, backend)
    lowest, highest = budget_range(base, resolution, formula)
    if max_macs == MAX_BUDGET:
        max_macs = highest
    number("max_macs", max_macs)
    if not lowest <= max_macs <= highest:
        raise BudgetError(f"max_macs must be within {lowest:.3g} to {highest:.3g} MACs, got {max_macs!r}")
    timer = _Timer(backend, runs, warmup, cache_dir) if measure is None else None
    time_twist = measure or timer
    seen: list[tuple[int, float]] = []

    def probe(budget: float) -> tuple[Twist, float]:
        with warnings.catch_warnings():  # a bracket's budget is ours, not the user's: its landing is recorded
            warnings.simplefilter("ignore", BudgetWarning)
            twist = for_flops(budget, base=base, formula=formula, resolution=resolution)
        latency = _checked_ms(time_twist(twist), twist)
        seen.append((twist.macs, latency))
        return twist, latency

    best, best_ms = probe(lowest)
    if best_ms > ms:
        raise BudgetError(f"even the smallest twist ({best.macs / 1e6:.1f}M MACs) takes {best_ms:.3g} ms, over the "
                          f"budget of {ms:g} ms")
    best, best_ms = _search(probe, best, best_ms, ms, lowest, max_macs, tolerance)
    label = timer.label() if timer is not None else "custom"
    return LatencyResult(best, best_ms, float(ms), label, tuple(seen))


def _search(probe: Callable[[float], tuple[Twist, float]], best: Twist, best_ms: float, ms: float, lowest: float,
            max_macs: float, tolerance: float) -> tuple[Twist, float]:
    """Double from `lowest` until over budget, then bisect on log MACs (at most MAX_BISECTIONS steps)."""
    low, high = lowest, None
    while high is None and low < max_macs:  # double until over budget: at most log2(max/min) steps
        budget = min(2 * low, max_macs)
        twist, latency = probe(budget)
        if latency <= ms:
            low, best, best_ms = budget, twist, latency
        else:
            high = budget
    steps = 0
    while high is not None and high / low > 1 + tolerance and steps < MAX_BISECTIONS:  # bisect on log MACs
        budget, steps = math.sqrt(low * high), steps + 1
        twist, latency = probe(budget)
        if latency <= ms:
            low = budget
            if twist.macs > best.macs:
                best, best_ms = twist, latency
        else:
            high = budget
    if high is not None and high / low > 1 + tolerance:
        warnings.warn(f"for_latency stopped after {MAX_BISECTIONS} bisection steps with the bracket at "
                      f"{low / 1e6:.3g}M to {high / 1e6:.3g}M MACs (ratio {high / low:.4f}, tolerance {tolerance:g}); "
                      f"the twist found is at {best.macs / 1e6:.3g}M MACs", BudgetWarning, stacklevel=3)
    return best, best_ms
