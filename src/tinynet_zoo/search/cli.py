"""`tinynet-zoo search` (run or resume a search) and `tinynet-zoo search report DIR` (its analysis)."""
from __future__ import annotations

import argparse
from typing import Any

from ..errors import InvalidArgumentError, TinyNetZooError


def add_cli(sub: Any) -> None:
    """Register `tinynet-zoo search` and its `report` action."""
    p = sub.add_parser("search", help="Rubik's-cube search: train random twists under budgets, fit a formula",
                       description="Run (or resume) a search: `search --data DIR --budgets 25M,50M --trials 24 "
                                   "--out runs/x`; analyse it: `search report runs/x`.")
    p.add_argument("action", nargs="?", choices=["report"], help="'report DIR': analyse a search folder")
    p.add_argument("dir", nargs="?", help="the search folder to report on")
    p.add_argument("--data", help="image folder (class sub-folders, or train/ and val/)")
    p.add_argument("--base", default="efficientnet_b0")
    p.add_argument("--rules", default="tinynet")
    p.add_argument("--budgets", help="comma-separated MACs at the trained resolutions, e.g. 25M,50M,100M")
    p.add_argument("--trials", type=int, default=24, help="trials in all, spread over the budgets")
    p.add_argument("--epochs", type=int, default=3, help="proxy schedule: epochs per trial")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate of the proxy training")
    p.add_argument("--augment", action="store_true", help="timm's training augmentation (off: eval transform)")
    p.add_argument("--inherit", action="store_true", help="start each trial from weights cut from a pretrained net")
    p.add_argument("--base-resolution", type=int, default=None, help="pixels r is relative to (default: the base's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="search folder (results.jsonl; re-running resumes it)")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--workers", type=int, default=None, help="local: parallel trials (0: in this process)")
    p.add_argument("--threads", type=int, default=1, help="local: CPU threads per trial")
    p.add_argument("--address", default=None, help="ray: cluster to join, e.g. auto")
    p.add_argument("--cpus-per-trial", type=float, default=1)
    p.add_argument("--gpus-per-trial", type=float, default=0)
    p.add_argument("--retry-failed", action="store_true", help="run trials recorded as failed again")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plot", action="store_true", help="report: skip the PNG")
    p.set_defaults(func=_cmd_search)


def _cmd_search(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    if args.action == "report":
        if not args.dir:
            raise InvalidArgumentError("`search report` needs the search folder: tinynet-zoo search report runs/x")
        from .analysis import search_report
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
    from .run import run_search
    try:
        summary = run_search(
            args.data, args.budgets, args.trials, args.out, base=args.base, rules=args.rules,
            base_resolution=args.base_resolution, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
            seed=args.seed, augment=args.augment, pretrained="inherit" if args.inherit else False,
            backend=args.backend, workers=args.workers, threads=args.threads, address=args.address,
            cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, retry_failed=args.retry_failed,
            progress=not args.no_progress and not args.json)
    except KeyboardInterrupt:
        raise TinyNetZooError(f"interrupted; finished trials are in {args.out}/results.jsonl: run the same "
                              "command again to resume") from None
    text = (f"{summary.ran} trial(s) run, {summary.skipped} already recorded, {len(summary.failed)} failed, "
            f"{summary.wall_s:.0f} s; results: {summary.results}\nanalyse: tinynet-zoo search report {args.out}")
    return summary.to_dict(), text
