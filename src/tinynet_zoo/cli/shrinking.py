"""Shrink command: `shrink --data DIR --budget 8M --out DIR` (resumable, one report card)."""
from __future__ import annotations

import argparse
from typing import Any

from ..shrinking.run import shrink


def cmd_shrink(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """`shrink`: teacher, student, comparisons, export and report card; Ctrl-C keeps finished steps."""
    try:
        report = shrink(args.data, args.out, budget=args.budget, latency=args.latency, teacher=args.teacher,
                        epochs=args.epochs, resolution=args.resolution, seed=args.seed, compare=not args.no_compare,
                        backend=args.backend, distill_weight=args.distill_weight, int8=args.int8,
                        overwrite=args.overwrite)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"finished steps are recorded in {args.out}/shrink.json: run the same command again "
                                "to continue") from None
    return report.to_dict(), report.text()
