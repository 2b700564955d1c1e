"""A model's input: its data config (size, interpolation, mean, std, crop) and preprocessing transforms, as
timm's `resolve_data_config` and `create_transform` give them for any model spec."""
from __future__ import annotations

from typing import Any, Callable

from .checks import boolean, choice, number
from .core.registry import INTERPOLATIONS
from .core.twist import MAX_RESOLUTION, MIN_RESOLUTION
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
    for key, value in overrides.items():
        if key not in config:
            raise unknown("data config key", key, config, UnknownNameError)
        config[key] = _CHECKS.get(key, lambda name, v: v)(key, value)
    return config


def _size(name: str, value: Any) -> tuple[int, int, int]:
    ok = isinstance(value, (tuple, list)) and len(value) == 3 and value[0] == 3 and all(
        isinstance(v, int) and not isinstance(v, bool) and MIN_RESOLUTION <= v <= MAX_RESOLUTION for v in value[1:])
    if not ok:
        raise InvalidArgumentError(f"{name} must be (3, H, W) with H and W in [{MIN_RESOLUTION}, {MAX_RESOLUTION}], "
                                   f"got {value!r}")
    return tuple(value)


def _triple(name: str, value: Any) -> tuple[float, float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        raise InvalidArgumentError(f"{name} must be 3 finite numbers (one per channel), got {value!r}")
    return tuple(number(f"{name} item", v) for v in value)


_CHECKS = {
    "input_size": _size, "mean": _triple, "std": _triple,
    "crop_pct": lambda name, v: number(name, v, 0, 1, low_open=True),
    "interpolation": lambda name, v: choice("interpolation", v, INTERPOLATIONS),
    "crop_mode": lambda name, v: choice("crop_mode", v, ("center", "squash", "border")),
}


AUGMENT = {"timm": {}, "light": {"scale": (0.75, 1.0), "hflip": 0.0, "color_jitter": None}}


def transforms(spec: Any, train: bool = False, augment: str = "timm", **overrides: Any) -> Callable:
    """timm's preprocessing for a model spec: evaluation (resize, centre crop, normalise) or training
    augmentation: 'timm' (its defaults: crops of 8-100%, flips, colour jitter), 'light' (crops of 75-100%, no
    flips, which would change the meaning of digits and text: what small fine-tuning sets need) or 'none'."""
    from timm.data import create_transform

    choice("augmentation", augment, (*AUGMENT, "none"))
    train = boolean("train", train) and augment != "none"
    return create_transform(**data_config(spec, **overrides), is_training=train,
                            **(AUGMENT[augment] if train else {}))
