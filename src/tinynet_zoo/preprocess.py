"""A model's input: its data config (size, interpolation, mean, std, crop) and preprocessing transforms, as
timm's `resolve_data_config` and `create_transform` give them for any model spec."""
from __future__ import annotations

from typing import Any, Callable

from .checks import boolean
from .errors import InvalidArgumentError, UnknownNameError, unknown
from .factory import create


def _module(spec: Any) -> Any:
    model = create(spec)
    if not getattr(model, "pretrained_cfg", None):
        raise InvalidArgumentError("this module has no pretrained_cfg (it was not made by tinynet_zoo.create); "
                                   "pass its name, Twist or folder instead")
    return model


def data_config(spec: Any, **overrides: Any) -> dict[str, Any]:
    """Input size, interpolation, mean, std and crop of a model spec, as timm's `resolve_data_config` gives them."""
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=_module(spec))
    for key in overrides:
        if key not in config:
            raise unknown("data config key", key, config, UnknownNameError)
    config.update(overrides)
    return config


def transforms(spec: Any, train: bool = False, **overrides: Any) -> Callable:
    """timm's preprocessing for a model spec: evaluation (resize, centre crop, normalise) or training augmentation."""
    from timm.data import create_transform

    return create_transform(**data_config(spec, **overrides), is_training=boolean("train", train))
