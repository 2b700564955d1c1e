"""Wall-clock timing of warmed calls (median and p90 in milliseconds), alone or in interleaved rounds."""
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


PAUSE_S = 0.01  # between two engines' blocks in a round: lets the previous engine's spinning threads go idle


def call_times(fn: Callable[[], Any], calls: int) -> list[float]:
    """Milliseconds of each of `calls` calls of `fn`, timed one by one."""
    times = []
    for _ in range(max(1, calls)):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def summarize(times: list[float]) -> Timing:
    """Median and p90 of call times in milliseconds."""
    ordered = sorted(times)
    return Timing(median_ms=percentile(ordered, 0.5), p90_ms=percentile(ordered, 0.9), runs=len(ordered))


def time_calls(fn: Callable[[], Any], warmup: int = 10, runs: int = 50) -> Timing:
    """Call `fn` `warmup` times untimed, then time `runs` calls one by one."""
    for _ in range(warmup):
        fn()
    return summarize(call_times(fn, runs))


def one_round(fns: dict[str, Callable[[], Any]], calls: int, reverse: bool = False) -> dict[str, list[float]]:
    """One interleaved round: each callable timed for `calls` calls in turn (in reverse order when asked, so that
    over rounds no callable always runs right after the same neighbour), with a short pause between blocks."""
    order = list(fns)[::-1] if reverse else list(fns)
    times = {}
    for label in order:
        time.sleep(PAUSE_S)
        times[label] = call_times(fns[label], calls)
    return times
