"""`bench` and `tinynet-zoo bench`: batch-1 latency and batch-N throughput per backend, against timm eager and
against the best plain recipe.

All the backends of a model are built first, then measured in the same interleaved rounds (each round times
every backend for a few calls in turn, alternating the order), so a burst of load from other processes hits
every row alike. Ratios: eager median / row median, and best plain median / row median.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..checks import boolean, choice, integer, name_list
from ..errors import InvalidArgumentError
from ..files import ensure_parent_dir, refuse_existing, write_atomic
from ..info import model_info
from ..system import pyplot
from .backends import BENCH_ROWS, ENGINES, PLAIN, installed_backends, is_installed, require
from .engines import RECIPES
from .engines.builds import ModuleBuilds
from .export import prepare
from .runtime import module_predictor
from .timing import one_round, summarize

# the plain recipes (each a few lines of the libraries' own defaults on timm's module as built) are declared by
# the engine modules (deploy/engines/); _NEEDS: the backend whose package each one uses
_NEEDS = {name: r.needs for name, r in RECIPES.items() if r.needs}
LATENCY_ROUND_CALLS = 10  # batch-1 calls per backend and round (batch-N: one call per backend and round)
SLOW_BUILDS = ("compile-plain", "torch-compile")  # torch.compile: tens of seconds per model and batch on 2 cores
# quick: the plain recipes against auto alone (its race covers the engines), fewer timed calls, no throughput,
# no torch.compile, and a short race among the engines, each through one route (openvino-onnx is left out)
QUICK = {"runs": 20, "warmup": 3, "batch_runs": 0, "race_s": 3.0,
         "candidates": tuple(e.name for e in ENGINES if e.races_files and e.name not in SLOW_BUILDS)}


def quick_note(runs: int, batch_runs: int) -> str:
    """What --quick measures less than the default (`runs` and `batch_runs`: the defaults it replaces)."""
    return (f"quick: {QUICK['runs']} timed batch-1 calls per row instead of {runs}, no throughput (instead of "
            f"{batch_runs} calls at the batch size), auto raced for at most {QUICK['race_s']:g} s")


def default_backends(quick: bool = False) -> list[str]:
    """eager, the plain recipes and engines whose packages are installed, and auto (quick: the plain recipes but
    compile-plain, and auto)."""
    plain = [b for b in PLAIN[1:] if b == "compile-plain" or is_installed(_NEEDS[b])]
    if quick:
        return ["eager", *(b for b in plain if b not in SLOW_BUILDS), "auto"]
    return ["eager", *plain, *installed_backends(), "auto"]


def _names(kind: str, value: Any) -> "list[str] | None":
    """None, one name, or a non-empty list of names, as a list."""
    hint = ("name at least one; leave backends=None for eager, the plain recipes, every installed engine and auto"
            if kind == "backends" else "name at least one model, e.g. ['tinynet_e']")
    return name_list(kind, value, hint)


def _check_backends(backends: "list[str] | None", quick: bool = False) -> list[str]:
    chosen = backends or default_backends(quick)
    for name in chosen:
        choice("bench backend", name, BENCH_ROWS)
        if name != "auto" and name != "eager":
            require(_NEEDS.get(name, name))
    return ["eager", *(b for b in dict.fromkeys(chosen) if b != "eager")]  # eager first: the reference


class _Plain:
    """A plain recipe as a callable on numpy batches, built for each batch size it is called with."""

    def __init__(self, backend: str, builds: ModuleBuilds) -> None:
        self.backend, self.builds = backend, builds
        self.calls: dict[int, Callable[[Any], Any]] = {}

    def __call__(self, x: Any) -> Any:
        if x.shape[0] not in self.calls:
            self.calls = {x.shape[0]: RECIPES[self.backend].build(self.builds, x.shape[0])}  # one alive at a time
        return self.calls[x.shape[0]](x)


def _engine(backend: str, builds: ModuleBuilds, cache_dir: Any, race_s: "float | None" = None) -> tuple[Any, str]:
    """A callable on numpy batches for one bench backend, and a label of its configuration. Every row of a model
    is built from the same `builds`, so auto's race reuses the plain rows' conversions (race_s: auto's time cap,
    and auto then races the quick candidates)."""
    if backend in PLAIN:
        return _Plain(backend, builds), RECIPES[backend].label
    quick = backend == "auto" and race_s is not None
    predictor = module_predictor(builds, backend, cache_dir=cache_dir, time_cap_s=race_s,
                                 candidates=[b for b in QUICK["candidates"] if is_installed(b)] if quick else None)
    label = predictor.backend + (f", {predictor.threads} threads" if predictor.threads else "")
    return predictor, label


def _interleaved(engines: dict[str, Any], x: Any, warmup: int, runs: int, per_round: int,
                 say: Callable[[str], None] = lambda text: None) -> dict[str, Any]:
    """Timing per engine over interleaved rounds of `per_round` calls, `runs` timed calls each in all."""
    for label, engine in engines.items():
        say(f"warm-up {label}")
        for _ in range(max(1, warmup)):  # at least once: some engines build for a new batch size on first call
            engine(x)
    times: dict[str, list[float]] = {label: [] for label in engines}
    calls = {label: (lambda e=engine: e(x)) for label, engine in engines.items()}
    rounds = math.ceil(runs / per_round)
    for index in range(rounds):
        say(f"round {index + 1}/{rounds}")
        for label, measured in one_round(calls, per_round, reverse=index % 2 == 1).items():
            times[label] += measured
    return {label: summarize(measured[:runs]) for label, measured in times.items()}


def _measure(engines: dict[str, Any], resolution: int, warmup: int, runs: int, batch: int,
             batch_runs: int, say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 3, resolution, resolution), dtype=np.float32)
    many = rng.standard_normal((batch, 3, resolution, resolution), dtype=np.float32)
    latency = _interleaved(engines, one, warmup, runs, min(LATENCY_ROUND_CALLS, runs),
                           lambda t: say(f"batch 1, {t}"))
    throughput = (_interleaved(engines, many, min(2, warmup), batch_runs, 1, lambda t: say(f"batch {batch}, {t}"))
                  if batch_runs else {})
    return {label: {"median_ms": t.median_ms, "p90_ms": t.p90_ms, "runs": runs,
                    "images_per_s": batch * 1e3 / throughput[label].median_ms if throughput else None}
            for label, t in latency.items()}


def bench(models: "list[str] | str", backends: "list[str] | str | None" = None, runs: int = 100,
          warmup: int = 20, batch: int = 32, batch_runs: int = 5, progress: bool = True,
          cache_dir: "str | Path | None" = None, quick: bool = False) -> list[dict[str, Any]]:
    """Batch-1 latency (median, p90) and throughput (images/s at `batch`) per model and backend, measured in
    interleaved rounds, with ratios to timm eager and to the best plain recipe.

    models and backends: a list of names, or one name. Default rows: eager, the plain recipes and engines whose
    packages are installed, and auto. quick=True: by default only eager, the plain recipes but compile-plain,
    and auto (raced for 3 s among onnxruntime, openvino, executorch and torch); 20 timed calls, no throughput
    (runs, warmup and batch_runs are then ignored). progress: a bar on stderr naming the model, row and round.
    """
    from tqdm import tqdm

    models, backends = _names("models", models), _names("backends", backends)
    boolean("progress", progress), boolean("quick", quick)
    if models is None:
        raise InvalidArgumentError("models must be a list of names (or one name), got None")
    integer("runs", runs, 1), integer("warmup", warmup, 0), integer("batch", batch, 1)
    integer("batch_runs", batch_runs, 0)
    if quick:
        runs, warmup, batch_runs = QUICK["runs"], QUICK["warmup"], QUICK["batch_runs"]
    chosen = _check_backends(backends, quick)
    infos = {name: model_info(name) for name in models}  # unknown names fail before anything is measured
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(models) * len(chosen), disable=not progress, desc="bench", unit="build", leave=False)
    for name, info in infos.items():
        module, resolution = prepare(name)
        with tempfile.TemporaryDirectory(prefix="tinynet_zoo_bench_") as tmp:
            engines, labels, builds = {}, {}, ModuleBuilds(module, resolution, Path(tmp))
            for backend in chosen:
                bar.set_postfix_str(f"{name}: building {backend}")
                engines[backend], labels[backend] = _engine(backend, builds, cache_dir,
                                                            QUICK["race_s"] if quick else None)
                bar.update()
            measured = _measure(engines, resolution, warmup, runs, batch, batch_runs,
                                lambda text: bar.set_postfix_str(f"{name}: {text}"))
        rows += _add_ratios([{"model": name, "macs": info.macs, "resolution": resolution, "backend": backend,
                              "config": labels[backend], **measured[backend]} for backend in chosen])
    bar.close()
    return rows


def _add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    eager = next(r for r in rows if r["backend"] == "eager")
    best_plain = min(r["median_ms"] for r in rows if r["backend"] in PLAIN)
    for row in rows:
        row["speedup"] = eager["median_ms"] / row["median_ms"]
        row["vs_best_plain"] = best_plain / row["median_ms"]
        row["throughput_speedup"] = (row["images_per_s"] / eager["images_per_s"]
                                     if row["images_per_s"] and eager["images_per_s"] else None)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """Bench rows as a Markdown table."""
    lines = ["| model | MACs | backend | config | median ms | p90 ms | x eager | x best plain | img/s (batch) "
             "| x eager |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ips = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        tput = "-" if r["throughput_speedup"] is None else f"{r['throughput_speedup']:.2f}"
        lines.append(f"| {r['model']} | {r['macs'] / 1e6:.1f}M | {r['backend']} | {r['config']} | "
                     f"{r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['speedup']:.2f} | {r['vs_best_plain']:.2f} | "
                     f"{ips} | {tput} |")
    runs = sorted({r["runs"] for r in rows})
    lines.append(f"batch-1 median and p90 over {' to '.join(map(str, runs[::max(1, len(runs) - 1)]))} timed calls "
                 "per row" + ("" if any(r["images_per_s"] for r in rows) else "; throughput not measured"))
    return "\n".join(lines)


def check_plot_path(path: "str | Path", overwrite: bool = False) -> Path:
    """Refuse a plot path before any measuring: not .png, a folder, a missing folder, or (unless `overwrite`)
    an existing file."""
    path = Path(path)
    boolean("overwrite", overwrite)
    if path.suffix.lower() != ".png" and not path.is_dir():
        raise InvalidArgumentError(f"the plot is written as PNG: end {path.name!r} in .png")
    refuse_existing(path, overwrite, "plot")
    return ensure_parent_dir(path)


def plot(rows: list[dict[str, Any]], path: "str | Path", overwrite: bool = False) -> Path:
    """Latency (batch 1 median) against MACs, one line per backend, saved as a PNG (an existing file is refused
    unless overwrite=True)."""
    check_plot_path(path, overwrite)
    plt = pyplot("the latency plot")
    fig, ax = plt.subplots(figsize=(6, 4))
    for backend in dict.fromkeys(r["backend"] for r in rows):
        points = sorted((r["macs"] / 1e6, r["median_ms"]) for r in rows if r["backend"] == backend)
        ax.plot(*zip(*points), marker="o", label=backend)
    ax.set(xscale="log", yscale="log", xlabel="MACs (millions)", ylabel="batch-1 latency, median (ms)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)
