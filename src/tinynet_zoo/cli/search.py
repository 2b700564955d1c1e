"""Search commands: `search` (run or resume a search) and `search report DIR` (its analysis)."""
from __future__ import annotations

import argparse
from typing import Any

from ..errors import InvalidArgumentError
from ..search.analysis import search_report
from ..search.run import run_search


def cmd_search(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """`search ...` (run or resume a search) or `search report DIR` (analyse one)."""
    if args.action == "report":
        if not args.dir:
            raise InvalidArgumentError("`search report` needs the search folder: tinynet-zoo search report runs/x")
        report = search_report(args.dir, plot=not args.no_plot)
        return report.to_dict(), report.text()
    if args.dir:
        raise InvalidArgumentError(f"unexpected argument {args.dir!r}; to analyse a folder: tinynet-zoo search "
                                   f"report {args.dir}")
    missing = [flag for flag, value in (("--data", args.data), ("--budgets", args.budgets), ("--out", args.out))
               if not value]
    if missing:
        raise InvalidArgumentError(f"a search needs {', '.join(missing)} (e.g. --data digits/ --budgets 12M,18M "
                                   "--out runs/x)")
    try:
        summary = run_search(
            args.data, args.budgets, args.trials, args.out, base=args.base, rules=args.rules,
            base_resolution=args.base_resolution, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            seed=args.seed, augment=args.augment, pretrained="inherit" if args.inherit else False,
            backend=args.backend, workers=args.workers, threads=args.threads, address=args.address,
            cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, retry_failed=args.retry_failed,
            progress=not args.no_progress and not args.json)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"finished trials are in {args.out}/results.jsonl: run the same command again to "
                                "resume") from None
    text = (f"{summary.ran} trial(s) run, {summary.skipped} already recorded, {len(summary.failed)} failed, "
            f"{summary.wall_s:.0f} s; results: {summary.results}\nanalyse: tinynet-zoo search report {args.out}")
    return summary.to_dict(), text
