"""How a run learns: its automatic settings decided for the data, parameter groups (per-block rates, a lower
backbone rate) and the default loss."""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .config import EMA_MIN_STEPS, TrainConfig

if TYPE_CHECKING:
    import torch.nn as nn

AUTO_WARMUP_STEPS = 50  # automatic warm-up: 10% of the steps, at most this many
AUTO_EMA_DECAY = 0.999


def resolve_config(config: TrainConfig, images: int, steps: int) -> TrainConfig:
    """The config with its automatic values decided for this data: epochs, warm-up steps, EMA."""
    epochs = config.resolved_epochs(images)
    total = epochs * steps
    if config.warmup_epochs is not None:
        warmup = int(config.warmup_epochs * steps)
    else:
        warmup = config.warmup_steps if config.warmup_steps is not None else min(AUTO_WARMUP_STEPS, total // 10)
    ema = config.ema_decay
    if ema == "auto":
        ema = AUTO_EMA_DECAY if total >= EMA_MIN_STEPS else None
    return replace(config, epochs=epochs, warmup_steps=warmup, warmup_epochs=None, ema_decay=ema)


def param_groups(model: "nn.Module", config: TrainConfig) -> list[dict[str, Any]]:
    """timm's parameter groups (no decay on norms and biases; per-block rates with layer_decay), the classifier's
    at the full rate and every other one at `backbone_lr_scale` of it (as lr_scale, which timm's schedulers apply)."""
    from timm.optim import param_groups_layer_decay, param_groups_weight_decay

    groups = param_groups_layer_decay(model, config.weight_decay, layer_decay=config.layer_decay) \
        if config.layer_decay else param_groups_weight_decay(model, config.weight_decay)
    head = {id(p) for p in model.get_classifier().parameters()}
    out = []
    for group in groups:
        for is_head in (True, False):
            params = [p for p in group["params"] if (id(p) in head) == is_head]
            if params:
                scale = group.get("lr_scale", 1.0) * (1.0 if is_head else config.backbone_lr_scale)
                out.append({**group, "params": params, "lr_scale": scale})
    return out


def cross_entropy(label_smoothing: float) -> Any:
    """The default loss: cross-entropy with label smoothing (called as loss(logits, targets, images, indices))."""
    import torch.nn.functional as F

    return lambda logits, targets, images, indices: F.cross_entropy(logits.float(), targets,
                                                                    label_smoothing=label_smoothing)
