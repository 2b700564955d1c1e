"""Wall-clock timing of warmed calls: median and p90 in milliseconds."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Timing:
    """Latency of `runs` timed calls after a warm-up, in milliseconds."""

    median_ms: float
    p90_ms: float
    runs: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 1]) of an ascending list."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def time_calls(fn: Callable[[], Any], warmup: int = 10, runs: int = 50) -> Timing:
    """Call `fn` `warmup` times untimed, then time `runs` calls one by one."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return Timing(median_ms=percentile(times, 0.5), p90_ms=percentile(times, 0.9), runs=len(times))
