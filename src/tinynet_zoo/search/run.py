"""`run_search`: sample the trials, skip those already recorded, run the rest on a backend, record each."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..core.bases import DEFAULT_BASE
from ..errors import DataError
from .executors import make_backend
from .config import SearchConfig, SearchSpace
from .results import RESULTS_NAME, ResultsFile, prepare_out_dir
from .sampling import TrialSpec, trial_specs
from .trial import TrainFn

TRIAL_ATTEMPTS = 2  # a failed trial is retried once, then recorded as failed


@dataclass(frozen=True)
class SearchSummary:
    """What one call of `run_search` did."""

    results: str
    trials: int
    ran: int
    skipped: int
    failed: tuple[str, ...]
    wall_s: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)


def _record(spec: TrialSpec, attempt: int, outcome: "dict[str, Any] | Exception") -> dict[str, Any]:
    twist = spec.twist
    record = {"id": spec.id, "budget": spec.budget, "index": spec.index, "r": twist.r, "d": twist.d, "w": twist.w,
              "resolution": twist.resolution, "macs": twist.macs, "params": twist.params, "attempts": attempt,
              "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if isinstance(outcome, Exception):
        return {**record, "status": "failed", "error": f"{type(outcome).__name__}: {outcome}"[:500]}
    return {**record, "status": "ok", **outcome}


def _say(bar: Any, progress: bool, message: str) -> None:
    if progress:
        bar.write(message)
    else:
        logging.getLogger(__name__).warning(message)


def _drive(backend: Any, todo: list[TrialSpec], results: ResultsFile, progress: bool) -> list[str]:
    """Submit every trial, record each as it returns, retry a failure once; the ids that failed."""
    from tqdm.auto import tqdm

    failed = []
    for spec in todo:
        backend.submit(spec, 1)
    with tqdm(total=len(todo), desc="search", unit="trial", disable=not progress) as bar:
        while backend.pending:
            spec, attempt, outcome = backend.next_done()
            if isinstance(outcome, Exception) and attempt < TRIAL_ATTEMPTS:
                _say(bar, progress, f"trial {spec.id} failed ({type(outcome).__name__}: {outcome}); retrying once")
                backend.submit(spec, attempt + 1)
                continue
            record = _record(spec, attempt, outcome)
            results.append(record)
            if record["status"] == "failed":
                failed.append(spec.id)
                _say(bar, progress, f"trial {spec.id} failed twice; recorded as failed: {record['error']}")
            bar.set_postfix_str(f"{spec.id} top-1 {record.get('top1', float('nan')):.1f}%")
            bar.update(1)
    return failed


def run_search(data: "str | Path", budgets: "Sequence[float | str] | str", trials: int, out: "str | Path", *,
               base: str = DEFAULT_BASE, rules: str = "tinynet", base_resolution: int | None = None,
               epochs: int = 3, batch_size: int = 64, lr: float = 3e-3, val_fraction: float = 0.2,
               seed: int = 0, pretrained: "bool | str" = False, augment: bool = False,
               space: SearchSpace | None = None,
               backend: str = "local", workers: int | None = None, threads: int = 1, address: str | None = None,
               cpus_per_trial: float = 1, gpus_per_trial: float = 0, retry_failed: bool = False,
               progress: bool = False, train_fn: TrainFn | None = None) -> SearchSummary:
    """Run (or resume) a Rubik's-cube search into `out`/results.jsonl; trials already recorded are skipped.

    budgets: MACs at the trained resolutions (r is relative to base_resolution, default the base's own);
    trials: in all, spread evenly over the budgets. train_fn(twist, config) -> {"top1": ..., ...} replaces
    the proxy training (the fine-tune loop) and must be importable where trials run.
    """
    if isinstance(budgets, str):
        budgets = [b for b in budgets.split(",") if b.strip()]
    config = SearchConfig(str(data), tuple(budgets), trials, base=base, rules=rules,
                          base_resolution=base_resolution or 0, epochs=epochs, batch_size=batch_size, lr=lr,
                          val_fraction=val_fraction, seed=seed, pretrained=pretrained, augment=augment,
                          space=space or SearchSpace())
    if not Path(config.data).is_dir():
        raise DataError(f"data folder {config.data} does not exist or is not a folder")
    prepare_out_dir(out)
    specs = trial_specs(config)
    results = ResultsFile(out, config.identity())
    done = results.done(include_failed=not retry_failed)
    todo = [spec for spec in specs if spec.id not in done]
    tic = time.perf_counter()
    failed: list[str] = []
    if todo:
        runner = make_backend(backend, config, train_fn, workers=workers, tasks=len(todo),
                              threads=threads, address=address, cpus_per_trial=cpus_per_trial,
                              gpus_per_trial=gpus_per_trial)
        interrupted = True
        try:
            failed = _drive(runner, todo, results, progress)
            interrupted = False
        finally:
            runner.close(interrupted)
    return SearchSummary(str(Path(out) / RESULTS_NAME), len(specs), len(todo), len(specs) - len(todo),
                         tuple(failed), time.perf_counter() - tic)

