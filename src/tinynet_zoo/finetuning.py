"""`finetune`: a catalogued model, a MAC budget or a Twist, trained on an image folder in one call (and the
`tinynet-zoo finetune` command, which runs the same under torchrun for DistributedDataParallel)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError
from .train import AMP_MODES, CHANNELS_LAST_MODES, TrainConfig, TrainResult

if TYPE_CHECKING:
    import torch.nn as nn

    from .twist import Twist


def resolve_model(model: "str | float | int | Twist") -> "str | Twist":
    """What `create` should build for a name or alias, 'hf-hub:user/repo', a MAC budget ('50M', 50e6) or a Twist."""
    from .budget import parse_budget
    from .formula import for_flops
    from .twist import Twist

    if isinstance(model, Twist) or isinstance(model, str) and model.startswith("hf-hub:"):
        return model
    try:
        budget = parse_budget(model)
    except InvalidArgumentError:
        if isinstance(model, str):
            from .registry import get_entry
            return get_entry(model).name  # a name or alias; an unknown one raises with close matches
        raise
    return for_flops(budget)


def build(model: "str | float | int | Twist", num_classes: int, pretrained: "bool | str | None" = None,
          freeze_until: str | None = None, **kwargs: Any) -> "nn.Module":
    """The model to fine-tune: pretrained=None means the entry's checkpoint for names, 'inherit' for budgets."""
    from .build import create
    from .twist import Twist

    target = resolve_model(model)
    if isinstance(target, str) and target.startswith("hf-hub:"):
        if pretrained not in (None, True):
            raise InvalidArgumentError(f"{target} brings its own weights; pretrained={pretrained!r} does not apply "
                                       "(to train that architecture from scratch, pass its twist instead)")
        net = create(target, num_classes=num_classes, **kwargs)
    else:
        if pretrained is None:
            pretrained = "inherit" if isinstance(target, Twist) else True
        net = create(target, pretrained=pretrained, num_classes=num_classes, **kwargs)
        if pretrained and getattr(net, "classifier", None) is not None and num_classes != 1000:
            import torch
            torch.nn.init.zeros_(net.classifier.weight)  # a new head starts at zero (as BiT does): no early
            torch.nn.init.zeros_(net.classifier.bias)    # large random logits to wreck pretrained features
    if freeze_until:
        from .freezing import freeze
        freeze(net, freeze_until)
    return net


def finetune(model: "str | float | int | Twist", data: "str | Path", out_dir: "str | Path | None" = None, *,
             pretrained: "bool | str | None" = None, val_fraction: float = 0.2, freeze_until: str | None = None,
             drop_rate: float = 0.2, drop_path_rate: float = 0.1, resolution: int | None = None,
             resume: "str | Path | None" = None, **config: Any) -> TrainResult:
    """Fine-tune a model name, MAC budget or Twist on an image folder; `config` takes TrainConfig fields.

    pretrained: None (default) loads the entry's checkpoint for names and inherits weights for budgets/Twists;
    False trains from scratch. resolution overrides the model's input size (e.g. small images, a faster run).
    With out_dir: metrics.jsonl, curves.png, last.* (for resume) and best/.
    """
    from .data import datasets, scan_folder

    unknown = sorted(set(config) - set(TrainConfig.keys()))
    if unknown:
        import difflib
        hints = [difflib.get_close_matches(k, TrainConfig.keys(), n=1) for k in unknown]
        raise InvalidArgumentError(
            f"unknown training option(s) {unknown}" + "".join(f"; did you mean {h[0]!r}?" for h in hints if h)
            + f" (accepted: {', '.join(TrainConfig.keys())})")
    train_config = TrainConfig(**config)
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int)
                                   or not 16 <= resolution <= 1024):
        raise InvalidArgumentError(f"resolution must be an integer number of pixels in 16..1024, got {resolution!r}")
    splits = scan_folder(data, val_fraction=val_fraction, seed=train_config.seed)
    import torch
    torch.manual_seed(train_config.seed)  # the same seed gives the same initial weights (new heads, scratch runs)
    net = build(model, len(splits.classes), pretrained, freeze_until, drop_rate=drop_rate,
                drop_path_rate=drop_path_rate)
    net.pretrained_cfg["label_names"] = list(splits.classes)
    if resolution is not None:
        net.pretrained_cfg["input_size"] = (net.pretrained_cfg["input_size"][0], resolution, resolution)
    train_set, val_set = datasets(splits, net)
    from .train import train
    result = train(net, train_set, val_set, train_config, out_dir, resume=resume)
    result.skipped_images = len(splits.skipped)
    return result


# ---------------------------------------------------------------- command line

def add_cli(sub: Any) -> None:
    """Register `tinynet-zoo finetune`."""
    p = sub.add_parser("finetune", help="fine-tune a model or MAC budget on an image folder (torchrun for DDP)",
                       description="Fine-tune NAME_OR_BUDGET (a catalogued model, 'hf-hub:user/repo', or a MAC "
                                   "budget like 50M built with the tiny formula) on an ImageFolder. Under "
                                   "`torchrun --nproc_per_node N` it trains with DistributedDataParallel.")
    p.add_argument("model", metavar="NAME_OR_BUDGET")
    p.add_argument("--data", required=True, help="folder of class sub-folders, or train/ and val/ folders")
    p.add_argument("--out", default=None, help="run folder: metrics.jsonl, curves.png, last.*, best/")
    p.add_argument("--resume", default=None, help="a run folder or its last.safetensors")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--pretrained", default=None,
                         help="True (default for names), inherit (default for budgets) or a checkpoint tag")
    weights.add_argument("--scratch", action="store_true", help="random initialisation")
    defaults = TrainConfig()
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="per process")
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    p.add_argument("--warmup-epochs", type=float, default=defaults.warmup_epochs)
    p.add_argument("--ema-decay", type=float, default=defaults.ema_decay, help="0 turns EMA off")
    p.add_argument("--amp", choices=AMP_MODES, default=defaults.amp)
    p.add_argument("--channels-last", choices=CHANNELS_LAST_MODES, default=defaults.channels_last)
    p.add_argument("--workers", type=int, default=defaults.workers)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--resolution", type=int, default=None, help="input pixels (default: the model's own)")
    p.add_argument("--freeze-until", default=None, help="e.g. blocks.4: freeze the stem through that part")
    p.add_argument("--drop-rate", type=float, default=0.2)
    p.add_argument("--drop-path-rate", type=float, default=0.1)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_finetune)


def _cmd_finetune(args: argparse.Namespace) -> tuple[dict[str, Any] | None, str]:
    pretrained: "bool | str | None" = False if args.scratch else args.pretrained
    if isinstance(pretrained, str) and pretrained.lower() in ("true", "false"):
        pretrained = pretrained.lower() == "true"
    result = finetune(
        args.model, args.data, args.out, pretrained=pretrained, val_fraction=args.val_fraction,
        freeze_until=args.freeze_until, resolution=args.resolution, drop_rate=args.drop_rate,
        drop_path_rate=args.drop_path_rate,
        resume=args.resume, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, label_smoothing=args.label_smoothing, warmup_epochs=args.warmup_epochs,
        ema_decay=args.ema_decay or None, amp=args.amp, channels_last=args.channels_last, workers=args.workers,
        seed=args.seed, progress=not args.no_progress and not args.json)
    summary = {k: v for k, v in result.to_dict().items() if k != "history"}
    summary["epochs"] = len(result.history)
    text = (f"best val top-1 {result.best_top1:.2f}% ({result.best_source} weights, epoch {result.best_epoch}); "
            f"final {result.final_top1:.2f}%; {result.images_per_s:.0f} train img/s over {result.world_size} "
            f"process(es); {result.wall_s:.1f} s")
    if args.out:
        text += f"\nrun folder: {args.out} (best weights: {Path(args.out) / 'best'})"
    if int(os.environ.get("RANK", "0")) != 0:  # only rank 0 prints under torchrun
        return None, ""
    return summary, text
