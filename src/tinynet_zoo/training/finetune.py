"""`finetune`: any model spec (a catalogued name, a MAC budget, a Twist, a saved folder or 'hf-hub:...') trained
on an image folder in one call; `tinynet-zoo finetune` runs the same, under torchrun with DDP."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import known_keys
from ..core.twist import check_resolution
from ..errors import InvalidArgumentError
from ..factory import create, resolve
from .checkpoint import resume_point
from .config import TrainConfig, TrainResult
from .data import datasets, scan_folder
from .freezing import freeze
from .loop import train

if TYPE_CHECKING:
    import torch.nn as nn


def _zero_head(net: "nn.Module") -> None:
    """A new head starts at zero (as BiT does): no early large random logits to wreck pretrained features."""
    import torch

    if getattr(net, "classifier", None) is not None and hasattr(net.classifier, "weight"):
        torch.nn.init.zeros_(net.classifier.weight)
        torch.nn.init.zeros_(net.classifier.bias)


def build(spec: Any, num_classes: int, pretrained: "bool | str | None" = None, freeze_until: str | None = None,
          **kwargs: Any) -> "nn.Module":
    """The model to fine-tune: pretrained=None means the spec's default (its checkpoint, else 'inherit')."""
    target = resolve(spec)
    if target.kind == "module":  # trained as it is built; only a head of another class count is replaced
        net = target.module
        if pretrained not in (None, True):
            raise InvalidArgumentError(f"a built module brings its own weights; pretrained={pretrained!r} does not "
                                       "apply")
        if getattr(net, "num_classes", num_classes) != num_classes:
            net.reset_classifier(num_classes)
            _zero_head(net)
    elif target.brings_weights:
        if pretrained not in (None, True):
            raise InvalidArgumentError(f"{target.label} brings its own weights; pretrained={pretrained!r} does not "
                                       "apply (to train that architecture from scratch, pass its twist instead)")
        net = create(target, num_classes=num_classes, **kwargs)
    else:
        if pretrained is None:
            pretrained = target.default_pretrained()
        net = create(target, pretrained=pretrained, num_classes=num_classes, **kwargs)
        if pretrained and num_classes != 1000:
            _zero_head(net)
    if freeze_until:
        freeze(net, freeze_until)
    return net


def finetune(model: Any, data: "str | Path", out_dir: "str | Path | None" = None, *,
             pretrained: "bool | str | None" = None, val_fraction: float = 0.2, freeze_until: str | None = None,
             drop_rate: float = 0.2, drop_path_rate: float = 0.1, resolution: int | None = None,
             resume: "str | Path | None" = None, overwrite: bool = False, **config: Any) -> TrainResult:
    """Fine-tune a model spec (name, MAC budget, Twist, folder, hub repo) on an image folder; `config` takes
    TrainConfig fields.

    pretrained: None (default) loads the entry's checkpoint for names and inherits weights for budgets/Twists;
    False trains from scratch. resolution overrides the model's input size (e.g. small images, a faster run).
    With out_dir (default: the folder being resumed): run.json, metrics.jsonl, curves.png, checkpoints/ (for
    resume) and best/; a folder holding another run is refused unless resuming it or overwrite=True.
    """
    known_keys("training option", config, TrainConfig.keys())
    train_config = TrainConfig(**config)
    if resolution is not None:
        check_resolution(resolution)
    if resume is not None:
        resume_point(resume)  # a wrong --resume path fails before any weights are fetched
    splits = scan_folder(data, val_fraction=val_fraction, seed=train_config.seed)
    import torch
    torch.manual_seed(train_config.seed)  # the same seed gives the same initial weights (new heads, scratch runs)
    net = build(model, len(splits.classes), pretrained, freeze_until, drop_rate=drop_rate,
                drop_path_rate=drop_path_rate)
    net.pretrained_cfg["label_names"] = list(splits.classes)
    if resolution is not None:
        net.pretrained_cfg["input_size"] = (net.pretrained_cfg["input_size"][0], resolution, resolution)
    train_set, val_set = datasets(splits, net)
    result = train(net, train_set, val_set, train_config, out_dir, resume=resume, overwrite=overwrite)
    result.skipped_images = len(splits.skipped)
    return result
