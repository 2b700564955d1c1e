"""Arch → module: timm's `EfficientNet` (or `EfficientNetFeatures`) built for a decoded architecture, and the
timm-style `pretrained_cfg` that records how to feed it and which twist it is."""
from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Sequence

from ..checks import choice, integer, known_keys, probability
from ..errors import InvalidArgumentError, TinyNetZooError, UnknownModelError
from .arch import Arch
from .registry import DataConfig, Entry, get_entry
from .twist import Twist

if TYPE_CHECKING:
    import torch.nn as nn

TWIST_ARCHITECTURE = "tinynet_twist"  # timm's generic entry for any twist (its model_args carry the twist)
# Catalogued models timm registers itself (a test checks this against timm): their folders load with plain timm.
TIMM_BUILTIN = frozenset({"tinynet_a", "tinynet_b", "tinynet_c", "tinynet_d", "tinynet_e", "efficientnet_b0",
                          "efficientnet_lite0", "mobilenetv3_large_100"})
# Keyword arguments passed through to timm's EfficientNet; anything else is a mistake we report.
MODEL_KWARGS = ("drop_rate", "drop_path_rate", "global_pool")
FEATURES_KWARGS = ("drop_rate", "drop_path_rate", "out_indices", "feature_location")
GLOBAL_POOLS = ("avg", "max", "avgmax", "catavgmax", "")


def check_kwargs(kwargs: dict[str, Any], features_only: bool) -> dict[str, Any]:
    """The model keyword arguments, checked (unknown names get a close match; values their range)."""
    known_keys("keyword argument", kwargs, FEATURES_KWARGS if features_only else MODEL_KWARGS)
    out = dict(kwargs)
    for key in ("drop_rate", "drop_path_rate"):
        if key in out:
            out[key] = probability(key, out[key])
    if "global_pool" in out:
        choice("global_pool", out["global_pool"], GLOBAL_POOLS)
    if "out_indices" in out:
        indices = out["out_indices"]
        if not isinstance(indices, Sequence) or isinstance(indices, str) or not indices:
            raise InvalidArgumentError(f"out_indices must be a non-empty sequence of ints in 0..4, got {indices!r}")
        out["out_indices"] = tuple(integer("out_indices item", i, 0, 4) for i in indices)
    return out


def timm_kwargs(arch: Arch) -> dict[str, Any]:
    """What the base's timm class needs to build an Arch: block kwargs decoded by timm's own `decode_arch_def` from
    the base's arch strings, the stem, timm's `round_channels` at the twist's width, activation, norm and (where the
    base declares its own) squeeze-excite layer."""
    import torch.nn as nn
    from timm.layers import get_act_layer
    from timm.models._efficientnet_blocks import SqueezeExcite
    from timm.models._efficientnet_builder import decode_arch_def, round_channels

    rules, base = arch.rules, arch.base
    block_args = decode_arch_def(base.arch_def(), arch.d, depth_trunc=rules.repeats,
                                 fix_first_last=rules.fix_first_last)
    if tuple(len(stage) for stage in block_args) != arch.depths:
        raise TinyNetZooError(f"timm decodes depth {arch.d} as {[len(s) for s in block_args]} blocks per stage, "
                              f"tinynet_zoo as {list(arch.depths)}: timm changed its depth rounding")
    kwargs = dict(
        block_args=block_args,
        stem_size=arch.stem_chs,
        fix_stem=True,  # the stem width is already decided by the twist's rules
        round_chs_fn=partial(round_channels, multiplier=arch.w, divisor=base.channel_divisor),
        act_layer=get_act_layer(base.act),
        norm_layer=nn.BatchNorm2d,
    )
    se = base.se
    if se.from_expanded or se.rounding != "round" or se.gate != "sigmoid" or se.act is not None:
        kwargs["se_layer"] = partial(
            SqueezeExcite, gate_layer=se.gate, force_act_layer=get_act_layer(se.act) if se.act else None,
            rd_round_fn=round_channels if se.rounding == "divisible" else round)
    return kwargs


def timm_class(arch: Arch, role: str) -> Any:
    """The timm class (role 'model' or 'features') or `_create_*` helper (role 'create') that builds the base."""
    import importlib

    build = arch.base.timm
    return getattr(importlib.import_module(build.module), getattr(build, role))


def build_module(arch: Arch, num_classes: int = 1000, in_chans: int = 3, features_only: bool = False,
                 **kwargs: Any) -> "nn.Module":
    """Build the base's timm class (EfficientNet, MobileNetV3, or their Features class) for an Arch; checks
    arguments first."""
    integer("num_classes", num_classes, 0)
    integer("in_chans", in_chans, 1)
    kwargs = check_kwargs(kwargs, features_only)
    common = dict(timm_kwargs(arch), in_chans=in_chans)
    if features_only:
        return timm_class(arch, "features")(**common, **kwargs)
    return timm_class(arch, "model")(**common, num_features=arch.head_chs, num_classes=num_classes, **kwargs)


def attach_config(model: "nn.Module", twist: Twist, architecture: str, num_classes: int, in_chans: int,
                  data: DataConfig, label_names: "Sequence[str] | None" = None) -> "nn.Module":
    """Attach a timm-style pretrained_cfg (so timm's `resolve_data_config` works) that also records the twist."""
    model.pretrained_cfg = dict(
        architecture=architecture, twist=twist.to_dict(),
        num_classes=num_classes, input_size=(in_chans, data.resolution, data.resolution),
        crop_pct=data.crop_pct, interpolation=data.interpolation, mean=tuple(data.mean), std=tuple(data.std),
        first_conv="conv_stem", classifier="classifier",
        label_names=list(label_names) if label_names is not None else None,
    )
    return model


def catalogued(label: "str | None", twist: Twist) -> "Entry | None":
    """The registry entry a model's label names, if its twist is that entry's own (else None: an uncatalogued twist,
    e.g. one fine-tuned from a budget)."""
    try:
        entry = get_entry(label) if label else None
    except UnknownModelError:
        return None
    return entry if entry is not None and entry.twist == twist else None


def timm_architecture(label: "str | None", twist: Twist) -> str:
    """The timm model name that builds this model: a catalogued entry's timm name, else the generic twist entry."""
    entry = catalogued(label, twist)
    return entry.timm_name if entry is not None else TWIST_ARCHITECTURE
