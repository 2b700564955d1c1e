"""backend='auto': race every candidate engine in interleaved rounds until the winner is clear, cache the choice.

The race: each round times every remaining candidate for a few calls (alternating the order), and scores it by
the median of those calls. From the third round on, a candidate whose ratio to the leader has a 95% confidence
interval (t interval on the per-round log ratios, paired by round) entirely above 1 is out. The race ends
when one candidate is left, or at the time cap; then the lowest median wins and the record says which others
could not be told apart from it.

The cache is one JSON file in the tinynet_zoo cache folder (see `system.cache_root`), deploy/backend_choice.json,
keyed by a machine fingerprint (CPU model, cores, library versions), then by the model's architecture, the
batch size, the thread setting and the candidates raced; it is rewritten atomically under a file lock.
"""
from __future__ import annotations

import json
import math
import platform
import statistics
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from ..errors import TinyNetZooError
from ..files import json_text, write_text_atomic
from ..system import cache_root, cpu_model, usable_cores
from .backends import ENGINES, reading
from .engines import FORMATS
from .engines.base import digest as _digest
from .engines.base import file_digest
from .timing import one_round

AUTO_WARMUP, RACE_ROUND_CALLS = 5, 5  # untimed calls per candidate; timed calls per candidate and round
MIN_ROUNDS, MAX_ROUNDS, TIME_CAP_S = 3, 40, 30.0
CACHE_FILE = "deploy/backend_choice.json"
_VERSIONED = (*dict.fromkeys(e.package for e in ENGINES), "numpy")  # the engines' packages
# two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal's 1.96)
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def _version(package: str) -> "str | None":
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_fingerprint() -> dict[str, Any]:
    """What makes a latency measurement transferable: CPU model, usable cores, library versions."""
    return {"cpu": cpu_model(), "cores": usable_cores(), "machine": platform.machine(),
            "python": platform.python_version(),
            **{pkg: _version(pkg) for pkg in _VERSIONED}}


def graph_key(path: "str | Path | None", module: Any = None, resolution: "int | None" = None) -> str:
    """Architecture key: an ONNX graph's operators and tensor shapes, an OpenVINO .xml, a .pte's bytes, or a
    module's parameter shapes and input resolution (weight values do not count, except inside a .pte)."""
    if path is None:
        return _digest([[list(p.shape) for p in module.state_dict().values()], resolution])
    path = Path(path)
    with reading(path):  # a suffix no engine reads is refused first
        key = next(f.graph_key for f in FORMATS.values() if f.suffix == path.suffix.lower())
        return (key or file_digest)(path)


def choice_key(graph: str, batch: int, threads: "int | None", candidates: list[str]) -> str:
    """The cache key of one race: architecture, batch size, thread setting and the candidates raced."""
    return _digest({"graph": graph, "batch": batch, "threads": threads, "candidates": sorted(candidates)})


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_choice(key: str, cache_dir: "str | Path | None" = None) -> "dict[str, Any] | None":
    """The cached choice for a race key on this machine, or None."""
    machine = _digest(machine_fingerprint())
    return _read(cache_root(cache_dir) / CACHE_FILE).get(machine, {}).get("models", {}).get(key)


def store_choice(key: str, entry: dict[str, Any], cache_dir: "str | Path | None" = None) -> Path:
    """Record a choice for a race key on this machine (locked read-modify-write, atomic replace)."""
    from filelock import FileLock

    path = cache_root(cache_dir) / CACHE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fingerprint = machine_fingerprint()
    with FileLock(str(path) + ".lock"):
        data = _read(path)
        slot = data.setdefault(_digest(fingerprint), {"machine": fingerprint, "models": {}})
        slot["models"][key] = entry
        write_text_atomic(path, json_text(data, indent=1))
    return path


def ratio_interval(slower: list[float], faster: list[float]) -> tuple[float, float, float]:
    """(ratio, low, high): the geometric mean of slower/faster over paired rounds and its 95% interval."""
    logs = [math.log(s / f) for s, f in zip(slower, faster)]
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), 0.0, math.inf
    quantile = _T975[len(logs) - 2] if len(logs) - 1 <= len(_T975) else 1.96
    half = quantile * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


@dataclass
class Race:
    """What a race measured: per-round medians (ms) of each candidate, who is left, and why each other left."""

    scores: dict[str, list[float]]
    alive: list[str]
    out: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> ratio and interval vs the leader
    rounds: int = 0

    def median(self, label: str) -> float:
        """Median over rounds of a candidate's per-round medians."""
        return statistics.median(self.scores[label])

    def leader(self) -> str:
        """The remaining candidate with the lowest median."""
        return min(self.alive, key=self.median)

    def compare(self, label: str, leader: str) -> dict[str, Any]:
        """`label`'s ratio to `leader` over the rounds both ran, with its 95% interval."""
        ratio, low, high = ratio_interval(self.scores[label], self.scores[leader])
        return {"vs": leader, "ratio": round(ratio, 4), "ci95": [round(low, 4), round(high, 4)]}

    def eliminate(self) -> None:
        """Drop every candidate whose interval against the leader lies above 1."""
        leader = self.leader()
        for label in [a for a in self.alive if a != leader]:
            comparison = self.compare(label, leader)
            if comparison["ci95"][0] > 1:
                self.alive.remove(label)
                self.out[label] = comparison


def race(engines: dict[str, Any], batch: Any, time_cap_s: float) -> Race:
    """Interleaved rounds over warmed engines on one input batch until one is left or the time cap is reached."""
    for engine in engines.values():
        for _ in range(AUTO_WARMUP):
            engine.run(batch)
    state = Race({label: [] for label in engines}, list(engines))
    start = time.monotonic()
    while state.rounds == 0 or (len(state.alive) > 1 and state.rounds < MAX_ROUNDS
                                and time.monotonic() - start < time_cap_s):
        calls = {label: (lambda e=engines[label]: e.run(batch)) for label in state.alive}
        for label, times in one_round(calls, RACE_ROUND_CALLS, reverse=state.rounds % 2 == 1).items():
            state.scores[label].append(statistics.median(times))
        state.rounds += 1
        if state.rounds >= MIN_ROUNDS:
            state.eliminate()
    return state


def reason(state: Race, time_cap_s: float) -> str:
    """Why the winner won, in one sentence."""
    winner = state.leader()
    if len(state.scores) == 1:
        return f"{winner} was the only candidate"
    if len(state.alive) == 1:
        label = min(state.out, key=lambda k: state.out[k]["ratio"])
        closest = state.out[label]
        return (f"{winner} won: every other candidate was slower with 95% confidence after {state.rounds} rounds; "
                f"the closest, {label}, by {closest['ratio']:.2f}x (interval {closest['ci95'][0]:.2f}-"
                f"{closest['ci95'][1]:.2f}) against {closest['vs']}")
    tied = [f"{label} {state.compare(label, winner)['ratio']:.2f}x" for label in state.alive if label != winner]
    limit = f"the {MAX_ROUNDS}-round limit" if state.rounds >= MAX_ROUNDS else f"the {time_cap_s:g} s cap"
    return (f"{winner} had the lowest median; {', '.join(tied)} could not be told apart from it (95% interval "
            f"includes 1) when the race stopped at {limit} after {state.rounds} rounds")


def measure_candidates(builders: dict[str, Callable[[], Any]], batch: int = 1,
                       time_cap_s: "float | None" = None) -> tuple[str, Any, dict[str, Any]]:
    """Build every candidate (a failing one is left out, its error recorded), race them on a `batch`-image
    input; (winning label, its engine, the record to cache)."""
    import numpy as np

    time_cap_s = TIME_CAP_S if time_cap_s is None else time_cap_s
    engines, failed = {}, {}
    for label, build in builders.items():
        try:
            engines[label] = build()
        except Exception as exc:  # e.g. torch.compile without a C++ compiler: recorded, the others still race
            failed[label] = f"{type(exc).__name__}: {str(exc)[:200]}"
    if not engines:
        raise TinyNetZooError(f"no candidate engine could be built: {failed}")
    shape = [batch if d is None else d for d in next(iter(engines.values())).input_shape()]
    state = race(engines, np.random.default_rng(0).standard_normal(shape, dtype=np.float32), time_cap_s)
    winner = state.leader()
    others = {label: state.out.get(label) or state.compare(label, winner) for label in engines if label != winner}
    entry = {"choice": winner, "reason": reason(state, time_cap_s), "batch": batch, "rounds": state.rounds,
             "median_ms": {label: round(state.median(label), 4) for label in engines}, "ratios": others,
             "failed": failed, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return winner, engines[winner], entry
