"""Arch → timm module: `create` resolves a name or Twist, checks arguments and builds timm's EfficientNet."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .arch import Arch
from .errors import InvalidArgumentError
from .twist import Twist

if TYPE_CHECKING:
    import torch.nn as nn

# Keyword arguments passed through to timm's EfficientNet; anything else is a mistake we report.
MODEL_KWARGS = ("drop_rate", "drop_path_rate", "global_pool")
FEATURES_KWARGS = ("drop_rate", "drop_path_rate", "out_indices", "feature_location")


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_kwargs(kwargs: dict[str, Any], features_only: bool) -> None:
    import difflib

    allowed = FEATURES_KWARGS if features_only else MODEL_KWARGS
    for key, value in kwargs.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidArgumentError(
                f"unexpected keyword argument {key!r}{hint} (accepted: {', '.join(allowed)})")
        if key in ("drop_rate", "drop_path_rate") and not (
                isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1):
            raise InvalidArgumentError(f"{key} must be a probability in [0, 1), got {value!r}")
    if "out_indices" in kwargs:
        indices = kwargs["out_indices"]
        if not isinstance(indices, Sequence) or not indices or any(
                isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= 4 for i in indices):
            raise InvalidArgumentError(f"out_indices must be a non-empty sequence of ints in 0..4, got {indices!r}")
        kwargs["out_indices"] = tuple(indices)


def build_module(arch: Arch, num_classes: int = 1000, in_chans: int = 3, features_only: bool = False,
                 **kwargs: Any) -> "nn.Module":
    """Build timm's EfficientNet (or EfficientNetFeatures) for an Arch; checks arguments first."""
    _check_int("num_classes", num_classes, 0)
    _check_int("in_chans", in_chans, 1)
    _check_kwargs(kwargs, features_only)
    import torch.nn as nn
    from timm.layers import get_act_layer
    from timm.models._efficientnet_builder import round_channels
    from timm.models.efficientnet import EfficientNet, EfficientNetFeatures

    common = dict(
        block_args=arch.timm_block_args(),
        in_chans=in_chans,
        stem_size=arch.stem_chs,
        fix_stem=True,  # the stem width is already decided by the twist's rules
        round_chs_fn=partial(round_channels, multiplier=arch.w, divisor=arch.base.channel_divisor),
        act_layer=get_act_layer(arch.base.act),
        norm_layer=nn.BatchNorm2d,
    )
    if features_only:
        return EfficientNetFeatures(**common, **kwargs)
    return EfficientNet(**common, num_features=arch.head_chs, num_classes=num_classes, **kwargs)


def resolve(name_or_twist: "str | Twist") -> tuple[Twist, Any]:
    """The Twist to build and the registry entry it came from (None for a bare Twist)."""
    if isinstance(name_or_twist, Twist):
        return name_or_twist, None
    if isinstance(name_or_twist, str):
        from .registry import get_entry
        entry = get_entry(name_or_twist)
        return entry.twist, entry
    raise InvalidArgumentError(
        f"create() takes a model name (see list_models()) or a Twist, got {type(name_or_twist).__name__}")


def create(name_or_twist: "str | Twist", pretrained: "bool | str" = False, num_classes: int | None = None,
           in_chans: int | None = None, features_only: bool = False, checkpoint_path: "str | Path | None" = None,
           cache_dir: "str | Path | None" = None, **kwargs: Any) -> "nn.Module":
    """Build a catalogued model by name, or any Twist, as a timm EfficientNet, optionally with weights.

    pretrained: False, True (the entry's checkpoint), a manifest tag such as 'tinynet_b.in1k', or 'inherit'
    (cut from the nearest larger pretrained model of the same base). checkpoint_path loads a local file.
    'hf-hub:user/repo' re-creates a model saved by `push_to_hub` (its twist, classes and weights).
    num_classes defaults to 1000 (to the saved count for 'hf-hub:'), in_chans to 3 (to the saved count).
    """
    if isinstance(name_or_twist, str) and name_or_twist.startswith("hf-hub:"):
        if pretrained not in (False, True) or checkpoint_path is not None or features_only:
            raise InvalidArgumentError("'hf-hub:' models carry their own weights: pretrained, checkpoint_path and "
                                       "features_only do not apply")
        from .hub import from_hub
        return from_hub(name_or_twist, cache_dir=cache_dir, num_classes=num_classes, in_chans=in_chans, **kwargs)
    num_classes = 1000 if num_classes is None else num_classes
    in_chans = 3 if in_chans is None else in_chans
    twist, entry = resolve(name_or_twist)
    if not (pretrained in (False, True, None, "inherit") or isinstance(pretrained, str) and "." in pretrained):
        raise InvalidArgumentError(f"pretrained must be False, True, 'inherit' or a checkpoint tag like "
                                   f"'tinynet_b.in1k', got {pretrained!r}")
    model = build_module(twist.arch, num_classes=num_classes, in_chans=in_chans, features_only=features_only,
                         **kwargs)
    if pretrained or checkpoint_path is not None:
        from .pretrained import load_state, state_for
        load_state(model, state_for(twist, entry, pretrained, checkpoint_path, cache_dir), in_chans)
    from .registry import DataConfig
    data = entry.data_config if entry is not None else DataConfig(resolution=twist.resolution)
    return finish(model, twist, entry.name if entry is not None else "twist", num_classes, in_chans, data)


def finish(model: "nn.Module", twist: Twist, architecture: str, num_classes: int, in_chans: int, data: Any,
           label_names: "Sequence[str] | None" = None) -> "nn.Module":
    """Attach a timm-style pretrained_cfg (so timm's `resolve_data_config` works) that also records the twist."""
    model.pretrained_cfg = dict(
        architecture=architecture, twist=twist.to_dict(),
        num_classes=num_classes, input_size=(in_chans, data.resolution, data.resolution),
        crop_pct=data.crop_pct, interpolation=data.interpolation, mean=tuple(data.mean), std=tuple(data.std),
        first_conv="conv_stem", classifier="classifier",
        label_names=list(label_names) if label_names is not None else None,
    )
    return model
