"""Deploy commands: `bench` (latency and throughput per CPU backend) and `export` (a verified deployable file)."""
from __future__ import annotations

import argparse
from typing import Any

from ..deploy.bench import bench, check_plot_path, format_rows, plot, quick_note
from ..deploy.engines import FORMATS
from ..deploy.export import export
from ..deploy.int8_gate import GateResult
from ..errors import InvalidArgumentError
from ..factory import resolve
from .options import pretrained_option


def cmd_bench(args: argparse.Namespace) -> Any:
    """`bench MODEL...`: latency and throughput per backend against timm eager."""
    backends = args.backends.split(",") if args.backends else None
    if args.plot:
        check_plot_path(args.plot, args.overwrite)  # before minutes of measuring, not after
    rows = bench(args.models, backends, runs=args.runs, warmup=args.warmup, batch=args.batch,
                 batch_runs=args.batch_runs, progress=not args.no_progress, cache_dir=args.cache_dir,
                 quick=args.quick)
    text = format_rows(rows) + (f"\n{quick_note(args.runs, args.batch_runs)}" if args.quick else "")
    if args.plot:
        text += f"\nplot: {plot(rows, args.plot, args.overwrite)}"
    return rows, text


def cmd_export(args: argparse.Namespace) -> Any:
    """`export MODEL --out PATH`: a verified ONNX, OpenVINO IR or ExecuTorch file of any model spec."""
    if args.batch < 0:
        raise InvalidArgumentError(f"--batch must be a batch size >= 1, or 0 for a dynamic batch axis; got "
                                   f"{args.batch}")
    pretrained = pretrained_option(args.pretrained)
    if pretrained is None:  # the one resolver says what the spec brings: a checkpoint, a folder's weights, inherit
        pretrained = resolve(args.model).default_pretrained()
    report = export(args.model, args.out, format=args.format, batch=args.batch or None, resolution=args.resolution,
                    pretrained=pretrained, variant=args.variant, overwrite=args.overwrite,
                    precision="int8" if args.int8 else "fp32", calibration=args.calibration, max_drop=args.max_drop,
                    min_agreement=args.min_agreement)
    data = {"model": args.model, "pretrained": pretrained, **report.to_dict()}
    shape = "x".join(map(str, report.input_shape))
    if report.int8 is not None:
        gate = GateResult(**{k: report.int8[k] for k in GateResult.__dataclass_fields__})
        generic = ("\ncalibrated and checked on scikit-image's generic sample photos, not on your images: int8 may "
                   "still lose accuracy on them; pass --calibration DIR with images like the ones the model will see"
                   if args.calibration is None else "")
        return data, (f"wrote {report.path} ({report.format} int8, input {shape}, {report.file_bytes / 1e6:.1f} MB); "
                      f"{gate.describe()}{generic}")
    spec = FORMATS[report.format]
    kind = report.format + (f" {report.variant}" if spec.check_variant is not None else "")
    beside = " and ".join(report.path.with_suffix(s).name for s in spec.companions)
    text = (f"wrote {report.path} ({kind}, input {shape}, {report.file_bytes / 1e6:.1f} MB"
            + (f" with {beside}" if beside else "") + "); "
            f"max |logit difference| to the eager model {report.max_abs_diff:.2g} (tolerance {report.tolerance:.2g}) "
            f"over batch {', '.join(map(str, report.verified_batches))}")
    return data, text
