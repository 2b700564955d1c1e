"""Training commands: `finetune` (one run; under torchrun, one process of a distributed run)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..training.checkpoint import generations
from ..training.finetune import finetune
from ..training.loop import run_dir_of
from .options import pretrained_option


def cmd_finetune(args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    """`finetune MODEL --data DIR`: one fine-tuning run (rank 0 reports under torchrun)."""
    pretrained = False if args.scratch else pretrained_option(args.pretrained)
    try:
        result = finetune(
            args.model, args.data, args.out, pretrained=pretrained, val_fraction=args.val_fraction,
            freeze_until=args.freeze_until, resolution=args.resolution, drop_rate=args.drop_rate,
            drop_path_rate=args.drop_path_rate, resume=args.resume, overwrite=args.overwrite,
            warm_start_head=False if args.no_warm_start else None, teacher=args.teacher,
            distill_weight=args.distill_weight, temperature=args.temperature,
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, backbone_lr_scale=args.backbone_lr_scale,
            layer_decay=args.layer_decay, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
            warmup_steps=args.warmup_steps, warmup_epochs=args.warmup_epochs, ema_decay=args.ema_decay or None,
            batchnorm=args.batchnorm, augment=args.augment, amp=args.amp, channels_last=args.channels_last,
            workers=args.workers, seed=args.seed, progress=not args.no_progress and not args.json, qat=args.qat)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_resume_hint(args)) from None
    summary = {k: v for k, v in result.to_dict().items() if k != "history"}
    summary["epochs"] = len(result.history)
    text = (f"best val top-1 {result.best_top1:.2f}% ({result.best_source} weights, epoch {result.best_epoch}); "
            f"final {result.final_top1:.2f}%; {result.images_per_s:.0f} train img/s over {result.world_size} "
            f"process(es); {result.wall_s:.1f} s")
    if args.out:
        text += f"\nrun folder: {args.out} (best weights: {Path(args.out) / 'best'})"
        if args.qat:
            text += (f"\nint8 file: tinynet-zoo export {Path(args.out) / 'best'} --out model.pte --int8 "
                     "--calibration DIR")
    if int(os.environ.get("RANK", "0")) != 0:  # only rank 0 prints under torchrun
        return None, ""
    return summary, text


def _resume_hint(args: argparse.Namespace) -> str:
    """What an interrupted run left behind and the command that continues it."""
    folder = args.out or (str(run_dir_of(args.resume)) if args.resume else None)
    found = generations(folder) if folder else []
    if not found:
        return "no epoch was finished, so there is nothing to resume" if folder else \
            "without --out nothing was saved; give --out DIR to make a run resumable"
    return (f"epoch {int(found[-1].name.split('-')[1])} is saved in {folder}; continue with the same command "
            f"and --resume {folder}")
