"""Zoo models in timm's registry: the catalogued models timm lacks under timm-safe names (`efficientnet_bm1` ..
`efficientnet_bm4`) and `tinynet_twist`, a generic entry taking any twist as a model argument. Then
`timm.create_model("efficientnet_bm2")`, `timm.create_model("tinynet_twist", twist={...})`, timm-based scripts and
`timm.create_model("local-dir:DIR")` / `("hf-hub:user/repo")` of any zoo model folder build zoo models.

Registering imports timm, so it is lazy: `register_timm()` does it (idempotent), `create` calls it, and
`import tinynet_zoo` calls it only when timm is already imported. Names timm registers itself (tinynet_a..e,
efficientnet_b0, efficientnet_lite0, mobilenetv3_large_100) are left to timm. The modules are the class each twist's
base declares (timm's `EfficientNet` or `MobileNetV3`), built through timm's own `build_model_with_cfg` (pretrained
weights from a folder or the hub, features_only, class and channel adaptation all behave as for timm's TinyNets).
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable

from .core.module import TIMM_BUILTIN, TWIST_ARCHITECTURE, timm_class, timm_kwargs
from .core.registry import ENTRIES, DataConfig, Entry
from .core.twist import Twist
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = ["register_timm", TWIST_ARCHITECTURE]

_PAPER = "Model Rubik's Cube: Twisting Resolution, Depth and Width for TinyNets"


def _default_cfg(data: DataConfig, description: str) -> dict[str, Any]:
    """A timm pretrained cfg without weights (plain dict: timm's register_model makes it a PretrainedCfg)."""
    return dict(input_size=(3, data.resolution, data.resolution), crop_pct=data.crop_pct,
                interpolation=data.interpolation, mean=tuple(data.mean), std=tuple(data.std), num_classes=1000,
                first_conv="conv_stem", classifier="classifier", description=description, paper_name=_PAPER,
                paper_ids="arXiv:2010.14819")


def _build(variant: str, twist: Twist, pretrained: bool, **kwargs: Any) -> "nn.Module":
    """The base's timm class for a twist, through the `_create_*` helper its base declares (timm's `_create_effnet`
    as timm's own TinyNet entries, `_create_mnv3` for MobileNetV3)."""
    arch = twist.arch
    model_kwargs = dict(timm_kwargs(arch), num_features=arch.head_chs)
    model_kwargs.update(kwargs)
    return timm_class(arch, "create")(variant, pretrained, **model_kwargs)


def tinynet_twist(pretrained: bool = False, twist: "dict[str, Any] | Twist | None" = None,
                  **kwargs: Any) -> "nn.Module":
    """timm entry point for any twist: `timm.create_model("tinynet_twist", twist=tz.Twist(...).to_dict())`.

    Without a folder's or hub repo's pretrained cfg, the data config's input size is the twist's resolution.
    """
    if twist is None:
        raise InvalidArgumentError("tinynet_twist needs twist= (a Twist or its to_dict()), e.g. "
                                   "timm.create_model('tinynet_twist', twist={'r': 0.5, 'd': 0.5, 'w': 0.5, "
                                   "'resolution': 112})")
    twist = twist if isinstance(twist, Twist) else Twist.from_dict(twist)
    if kwargs.get("pretrained_cfg") is None:  # not loaded from a folder: describe this twist's input
        size = (kwargs.get("in_chans", 3), twist.resolution, twist.resolution)
        kwargs["pretrained_cfg_overlay"] = dict(input_size=size, **(kwargs.get("pretrained_cfg_overlay") or {}))
    return _build(TWIST_ARCHITECTURE, twist, pretrained, **kwargs)


def _catalogued_entry(entry: Entry) -> Callable[..., "nn.Module"]:
    """A timm entry point building one catalogued model."""
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> "nn.Module":
        return _build(entry.timm_name, entry.twist, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = entry.timm_name
    entrypoint.__module__ = __name__  # timm's register_model reads default_cfgs from this module
    entrypoint.__doc__ = f"{entry.description} ({entry.twist}); a tinynet_zoo entry point for timm."
    return entrypoint


# Entry points for the catalogued models timm lacks, and the generic twist entry, with their pretrained cfgs.
_ZOO_ONLY = tuple(entry for entry in ENTRIES if entry.timm_name not in TIMM_BUILTIN)
ENTRYPOINTS: dict[str, Callable[..., "nn.Module"]] = {
    **{entry.timm_name: _catalogued_entry(entry) for entry in _ZOO_ONLY}, TWIST_ARCHITECTURE: tinynet_twist}
default_cfgs: dict[str, dict[str, Any]] = {
    **{entry.timm_name: _default_cfg(entry.data_config, entry.description) for entry in _ZOO_ONLY},
    TWIST_ARCHITECTURE: _default_cfg(DataConfig(resolution=224), "any tinynet_zoo twist (model_args: twist)")}
_registered: list[str] = []


def register_timm() -> list[str]:
    """Register the zoo's entry points in timm's model registry (idempotent); returns the names registered.

    `efficientnet_bm1` .. `efficientnet_bm4` and `tinynet_twist` are added; names timm registers itself (tinynet_a..e,
    efficientnet_b0, efficientnet_lite0, mobilenetv3_large_100) are left to timm, and so is any of ours that timm (or another package) has
    taken meanwhile. Imports timm (about 3 s cold), so `import tinynet_zoo` alone never does it: `tinynet_zoo.create`
    calls it, and so does importing the package when timm is already imported.
    """
    if _registered:
        return list(_registered)
    from timm.models import is_model, register_model

    module = sys.modules[__name__]
    for name, fn in ENTRYPOINTS.items():
        if is_model(name):
            continue  # somebody else's model of that name: never overwritten
        setattr(module, name, fn)  # timm lists registered names in this module's __all__
        register_model(fn)
        _registered.append(name)
    return list(_registered)
