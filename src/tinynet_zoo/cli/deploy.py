"""Deploy commands: `bench` (latency and throughput per CPU backend) and `export` (a verified deployable file)."""
from __future__ import annotations

import argparse
from typing import Any

from ..deploy.bench import bench, format_rows, plot


def cmd_bench(args: argparse.Namespace) -> Any:
    """`bench MODEL...`: latency and throughput per backend against timm eager."""
    backends = args.backends.split(",") if args.backends else None
    rows = bench(args.models, backends, runs=args.runs, warmup=args.warmup, batch=args.batch,
                 batch_runs=args.batch_runs, progress=not args.no_progress, cache_dir=args.cache_dir)
    text = format_rows(rows)
    if args.plot:
        text += f"\nplot: {plot(rows, args.plot)}"
    return rows, text


def cmd_export(args: argparse.Namespace) -> Any:
    """`export MODEL --out PATH`: a verified ONNX, OpenVINO IR or ExecuTorch file."""
    raise NotImplementedError("export command: being implemented")
