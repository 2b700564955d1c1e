"""`finetune`: any model spec (a catalogued name, a MAC budget, a Twist, a saved folder or 'hf-hub:...') trained
on an image folder in one call; `tinynet-zoo finetune` runs the same, under torchrun with DDP."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..checks import boolean, known_keys
from ..core.twist import check_resolution
from ..errors import InvalidArgumentError
from ..factory import create, resolve
from ..preprocess import transforms
from ..weights.model_config import ModelConfig, record
from .checkpoint import resume_point
from .config import TrainConfig, TrainResult
from .data import ImageDataset, datasets, scan_folder
from .distill import DISTILL_WEIGHT, TEMPERATURE, Distillation
from .freezing import freeze
from . import qat
from .loop import train
from .probe import fit_head

if TYPE_CHECKING:
    import torch.nn as nn

SCRATCH_DROP_RATE, SCRATCH_DROP_PATH_RATE = 0.2, 0.1  # dropout before the classifier, stochastic depth


def _zero_head(net: "nn.Module") -> None:
    """A new head starts at zero (as BiT does): no early large random logits to wreck pretrained features."""
    import torch

    if getattr(net, "classifier", None) is not None and hasattr(net.classifier, "weight"):
        torch.nn.init.zeros_(net.classifier.weight)
        torch.nn.init.zeros_(net.classifier.bias)


class Prepared(NamedTuple):
    """The model to fine-tune, whether it starts from trained weights, and whether its head is new."""

    net: Any
    pretrained: bool
    new_head: bool


def build(spec: Any, num_classes: int, pretrained: "bool | str | None" = None, freeze_until: str | None = None,
          drop_rate: "float | None" = None, drop_path_rate: "float | None" = None) -> Prepared:
    """The model to fine-tune: pretrained=None means the spec's default (its checkpoint, else 'inherit'); drop
    rates None mean none on trained weights (they slow a short fine-tune down) and 0.2 / 0.1 from scratch."""
    target = resolve(spec)
    pretrained = target.default_pretrained() if pretrained is None and not target.brings_weights else pretrained
    trained = target.brings_weights or bool(pretrained)
    kwargs = {"drop_rate": (0.0 if trained else SCRATCH_DROP_RATE) if drop_rate is None else drop_rate,
              "drop_path_rate": (0.0 if trained else SCRATCH_DROP_PATH_RATE) if drop_path_rate is None else
              drop_path_rate}
    if target.brings_weights and pretrained not in (None, True):
        raise InvalidArgumentError(f"{target.label} brings its own weights; pretrained={pretrained!r} does not "
                                   "apply (to train that architecture from scratch, pass its twist instead)")
    if target.kind == "module":  # trained as it is built; only a head of another class count is replaced
        net, new_head = target.module, getattr(target.module, "num_classes", num_classes) != num_classes
        if new_head:
            net.reset_classifier(num_classes)
    elif target.brings_weights:
        net = create(target, num_classes=num_classes, **kwargs)
        new_head = ModelConfig.of(net).label_names is None  # the saved head was kept only for equal counts
    else:
        net = create(target, pretrained=pretrained, num_classes=num_classes, **kwargs)
        new_head = bool(pretrained) and num_classes != 1000  # hosted and inherited heads have 1000 classes
    if new_head:
        _zero_head(net)
    if freeze_until:
        freeze(net, freeze_until)
    return Prepared(net, bool(pretrained) or target.brings_weights, new_head)


def _start(prepared: Prepared, splits: Any, config: TrainConfig, warm_start_head: "bool | None",
           resume: Any) -> tuple[TrainConfig, dict[str, float]]:
    """The run's rates and batch-norm mode for its weights, and the head warm start (a linear probe) when it
    applies."""
    config = config.for_weights(prepared.pretrained, len(splits.train))
    if warm_start_head is None:
        warm_start_head = prepared.pretrained and prepared.new_head
    if not warm_start_head or resume is not None:  # a resumed run brings its trained head
        return config, {}
    return config, fit_head(prepared.net, ImageDataset(splits.train, transforms(prepared.net, train=False)))


def finetune(model: Any, data: "str | Path", out_dir: "str | Path | None" = None, *,
             pretrained: "bool | str | None" = None, val_fraction: float = 0.2, freeze_until: str | None = None,
             drop_rate: "float | None" = None, drop_path_rate: "float | None" = None, resolution: int | None = None,
             resume: "str | Path | None" = None, overwrite: bool = False, warm_start_head: "bool | None" = None,
             teacher: Any = None, distill_weight: float = DISTILL_WEIGHT, temperature: float = TEMPERATURE,
             **config: Any) -> TrainResult:
    """Fine-tune a model spec (name, MAC budget, Twist, folder, hub repo) on an image folder; `config` takes
    TrainConfig fields.

    pretrained: None (default) loads the entry's checkpoint for names and inherits weights for budgets/Twists;
    False trains from scratch. A new head on pretrained weights is first fitted on the frozen features
    (`warm_start_head`, default on there). resolution overrides the model's input size (e.g. small images).
    teacher: a model spec (e.g. a fine-tuned folder) whose predictions the student also learns (distillation:
    `distill_weight` of the loss is the KL divergence at `temperature`, the rest the labels' cross-entropy).
    qat=True (needs the `mobile` extra): quantization-aware fine-tuning, through the fake int8 quantization of
    the `.pte` int8 export; the saved weights stay float (config.json notes `qat`), export them with
    precision="int8".
    With out_dir (default: the folder being resumed): run.json, metrics.jsonl, curves.png, checkpoints/ (for
    resume) and best/; a folder holding another run is refused unless resuming it or overwrite=True.
    """
    known_keys("training option", config, TrainConfig.keys())
    train_config = TrainConfig(**config)
    if resolution is not None:
        check_resolution(resolution)
    if resume is not None:
        resume_point(resume)  # a wrong --resume path fails before any weights are fetched
    drop_path_rate = qat.check_request(train_config.qat, resume, drop_path_rate)
    if warm_start_head is not None:
        boolean("warm_start_head", warm_start_head)
    splits = scan_folder(data, val_fraction=val_fraction, seed=train_config.seed)
    import torch
    torch.manual_seed(train_config.seed)  # the same seed gives the same initial weights (new heads, scratch runs)
    prepared = build(model, len(splits.classes), pretrained, freeze_until, drop_rate=drop_rate,
                     drop_path_rate=drop_path_rate)
    net = prepared.net
    record(net, label_names=splits.classes, resolution=resolution)
    train_config, probe = _start(prepared, splits, train_config, warm_start_head, resume)
    train_set, val_set = datasets(splits, net, train_config.augment)
    loss = None
    if teacher is not None:
        loss = Distillation(create(teacher), len(splits.classes), distill_weight, temperature,
                            train_config.label_smoothing, cache=train_config.augment == "none")
    result = train(net, train_set, val_set, train_config, out_dir, resume=resume, overwrite=overwrite, loss=loss,
                   extra_meta={"qat": qat.SCHEME} if train_config.qat else None)
    result.skipped_images, result.head_warm_start = len(splits.skipped), probe
    return result
