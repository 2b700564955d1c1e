"""The model config: what a model folder's config.json holds, read and checked once into a frozen `ModelConfig`
and written once from it (timm's hub format, format 2, with timm's `pretrained_cfg` produced from it).

config.json is timm's hub format: `architecture`, `num_classes`, `num_features`, `label_names`, `model_args` and a
`pretrained_cfg` holding only keys timm accepts, so `timm.create_model("local-dir:DIR")` loads it; the zoo's twist
record sits beside them. Format 1 (the zoo's own keys: twist, in_chans, classes, data_config) is still read.
Every field is checked when the file is read (type, range, finite numbers, agreement with the twist); a folder
that fails is refused with the file's path, the field, the value and what is accepted.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .. import __version__
from ..checks import choice, integer, number
from ..core.module import GLOBAL_POOLS, TWIST_ARCHITECTURE, catalogued, timm_architecture
from ..core.registry import INTERPOLATIONS, DataConfig
from ..core.twist import Twist, check_resolution
from ..errors import IncompatibleCheckpointError, InvalidArgumentError
from ..files import read_json

CONFIG_NAME = "config.json"
FORMAT = 2  # 2: timm's hub config plus the twist; 1: the zoo's own keys (still read)
# the keys config.json gives a meaning to; a user's `extra=` keys may not replace them
RESERVED = ("architecture", "num_classes", "num_features", "label_names", "model_args", "pretrained_cfg",
            "library", "format", "twist", "version", "metrics")
_FORMAT1 = ("architecture", "num_classes", "in_chans", "classes", "data_config", "library", "format", "twist",
            "version", "metrics")
_MODEL_ARGS = ("twist", "in_chans", "global_pool")
MAX_CHANNELS = 64  # input channels a saved model may declare
NOT_MADE_BY_CREATE = "this module was not made by tinynet_zoo.create"


@dataclass(frozen=True)
class ModelConfig:
    """A model folder's config, every field checked: the twist, the zoo's name for it, classes, input and data
    config, pooling, and the free-form metrics and extra keys saved beside them."""

    twist: Twist
    name: str  # a catalogued entry's name whose twist this is, or 'twist'
    num_classes: int
    data: DataConfig
    in_chans: int = 3
    label_names: "tuple[str, ...] | None" = None
    global_pool: str = "avg"
    metrics: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    version: str = __version__

    @property
    def architecture(self) -> str:
        """The timm model name that builds it: a catalogued entry's timm name, else the generic twist entry."""
        return timm_architecture(None if self.name == "twist" else self.name, self.twist)

    @property
    def num_features(self) -> int:
        """Channels of the head (what the classifier reads)."""
        return self.twist.arch.head_chs

    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's pretrained_cfg for this model (the keys timm's hub loader accepts)."""
        return {"input_size": [self.in_chans, self.data.resolution, self.data.resolution],
                "interpolation": self.data.interpolation, "crop_pct": self.data.crop_pct, "crop_mode": "center",
                "mean": list(self.data.mean), "std": list(self.data.std), "num_classes": self.num_classes,
                "fixed_input_size": False, "first_conv": "conv_stem", "classifier": "classifier"}

    def to_dict(self) -> dict[str, Any]:
        """config.json's content (format 2)."""
        args: dict[str, Any] = {"twist": self.twist.to_dict()} if self.architecture == TWIST_ARCHITECTURE else {}
        if self.in_chans != 3:
            args["in_chans"] = self.in_chans
        if self.global_pool != "avg":
            args["global_pool"] = self.global_pool
        config: dict[str, Any] = {"architecture": self.architecture, "num_classes": self.num_classes,
                                  "num_features": self.num_features}
        if self.label_names is not None:
            config["label_names"] = list(self.label_names)
        if args:
            config["model_args"] = args
        return {**config, "pretrained_cfg": self.pretrained_cfg(), "library": "tinynet_zoo", "format": FORMAT,
                "twist": self.twist.to_dict(), "version": self.version, "metrics": dict(self.metrics),
                **self.extra}

    @classmethod
    def of(cls, model: Any, refusal: str = NOT_MADE_BY_CREATE) -> "ModelConfig":
        """The typed config of a module made by `tinynet_zoo.create` (read from the pretrained_cfg it carries):
        its twist, classes, label names (None unless one per class), input channels and data config.
        InvalidArgumentError (starting with `refusal`) for any other module."""
        cfg = getattr(model, "pretrained_cfg", None)
        if not isinstance(cfg, dict) or not isinstance(cfg.get("twist"), dict):
            raise InvalidArgumentError(f"{refusal} (its pretrained_cfg records no twist); pass its name, Twist or "
                                       f"folder instead, got a {type(model).__name__}")
        twist = Twist.from_dict(cfg["twist"])
        entry = catalogued(cfg.get("architecture"), twist)
        size = cfg["input_size"]
        data = DataConfig(resolution=size[-1], crop_pct=cfg["crop_pct"], interpolation=cfg["interpolation"],
                          mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))
        classes = getattr(model, "num_classes", cfg.get("num_classes", 0))
        labels = cfg.get("label_names")
        fits = labels is not None and not isinstance(labels, str) and len(labels) == classes
        pool = getattr(getattr(model, "global_pool", None), "pool_type", "avg")
        return cls(twist=twist, name=entry.name if entry else "twist", num_classes=classes, data=data,
                   in_chans=size[0], global_pool=pool, label_names=_labels(list(labels), classes) if fits else None)

    def with_notes(self, metrics: "Mapping[str, Any] | None" = None,
                   extra: "Mapping[str, Any] | None" = None) -> "ModelConfig":
        """A copy with the given metrics and extra keys (checked: dicts, and extra may not replace a reserved key)."""
        for what, value in (("metrics", metrics), ("extra", extra)):
            if value is not None and not isinstance(value, dict):
                raise InvalidArgumentError(f"{what} must be a dict of JSON values, got {value!r}")
        clash = sorted(k for k in extra or {} if not isinstance(k, str) or k in RESERVED)
        if clash:
            raise InvalidArgumentError(f"extra keys {clash} are not allowed: config.json's own keys "
                                       f"({', '.join(RESERVED)}) cannot be replaced; rename them")
        return replace(self, metrics=dict(metrics or {}), extra=dict(extra or {}), version=__version__)


def from_model(model: Any) -> ModelConfig:
    """The config to save for a model made by `tinynet_zoo.create` (or fine-tuned from one): a classifier whose
    label names, when set, name each of its classes."""
    config = ModelConfig.of(model, "only models made by tinynet_zoo.create can be saved this way")
    if not hasattr(model, "classifier"):
        raise InvalidArgumentError("save the classifier model, not a features_only backbone")
    labels = model.pretrained_cfg.get("label_names")
    if labels is not None and config.label_names is None:
        raise InvalidArgumentError(f"the model has {config.num_classes} classes but label names {labels!r}; "
                                   "give a list with one name per class")
    return config


def record(model: Any, label_names: "Sequence[str] | None" = None, resolution: "int | None" = None) -> None:
    """Record label names and/or an input resolution on a built module, where its typed config is read from."""
    cfg = model.pretrained_cfg
    if label_names is not None:
        cfg["label_names"] = list(label_names)
    if resolution is not None:
        cfg["input_size"] = (cfg["input_size"][0], resolution, resolution)


def config_or_none(model: Any) -> "ModelConfig | None":
    """`ModelConfig.of(model)`, or None for a module not made by `tinynet_zoo.create` (e.g. a plain timm model)."""
    try:
        return ModelConfig.of(model)
    except InvalidArgumentError:
        return None


def read_model_config(folder: "str | Path") -> ModelConfig:
    """The config.json of a model folder, read and checked (either format); IncompatibleCheckpointError names the
    file and the field when it is not a valid config of this package."""
    path = Path(folder) / CONFIG_NAME
    data = read_json(path, "a model folder's config.json (written by save_pretrained)")
    if not isinstance(data, dict) or data.get("library") != "tinynet_zoo" or "twist" not in data:
        raise IncompatibleCheckpointError(f"{path} was not written by tinynet_zoo (no library/twist fields)")
    version = data.get("format", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT:
        raise IncompatibleCheckpointError(f"{path} has format {version!r}; this tinynet_zoo reads up to "
                                          f"{FORMAT}: pip install -U tinynet-zoo")
    parse = _format2 if version == 2 else _format1
    return _checked(path, lambda: parse(data, path))


def _checked(path: Path, build: Callable[[], ModelConfig]) -> ModelConfig:
    try:
        return build()
    except IncompatibleCheckpointError:
        raise
    except InvalidArgumentError as exc:
        raise IncompatibleCheckpointError(f"{path} is not a valid model config: {exc}; re-save the model or "
                                          "restore the file") from None
    except KeyError as exc:
        raise IncompatibleCheckpointError(f"{path} is not a valid model config (missing {exc})") from None


def _mapping(name: str, value: Any, keys: "tuple[str, ...] | None" = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{name} must be a JSON object, got {json.dumps(value)[:60]}")
    unknown = sorted(set(value) - set(keys)) if keys is not None else []
    if unknown:
        raise InvalidArgumentError(f"{name} has unknown keys {unknown}; accepted: {', '.join(keys or ())}")
    return value


def _triple(name: str, value: Any, minimum: float | None = None) -> tuple[float, float, float]:
    if not isinstance(value, list) or len(value) != 3:
        raise InvalidArgumentError(f"{name} must be a list of 3 finite numbers (one per channel), got {value!r}")
    return tuple(number(f"{name} item", v, minimum, low_open=True) for v in value)  # type: ignore[return-value]


def _labels(value: Any, num_classes: int) -> "tuple[str, ...] | None":
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidArgumentError(f"label_names must be a list of {num_classes} non-empty strings, got "
                                   f"{json.dumps(value)[:80]}")
    if len(value) != num_classes:
        raise InvalidArgumentError(f"label_names lists {len(value)} class names for {num_classes} classes; the "
                                   "folder is inconsistent")
    if len(set(value)) != len(value):
        raise InvalidArgumentError(f"label_names must be distinct, got {value!r}")
    return tuple(value)


def _data(size: Any, cfg: dict[str, Any]) -> tuple[int, DataConfig]:
    """(input channels, data config) from an input size [C, H, W] and the crop/interpolation/mean/std fields."""
    if not isinstance(size, list) or len(size) != 3 or size[1] != size[2]:
        raise InvalidArgumentError(f"input_size must be [channels, height, width] with height == width, got {size!r}")
    in_chans = integer("input channels", size[0], 1, MAX_CHANNELS)
    return in_chans, DataConfig(
        resolution=check_resolution(size[1], "input resolution"),
        crop_pct=number("crop_pct", cfg["crop_pct"], 0, 1, low_open=True),
        interpolation=choice("interpolation", cfg["interpolation"], INTERPOLATIONS),
        mean=_triple("mean", cfg["mean"]), std=_triple("std", cfg["std"], 0))


def _twist(value: Any) -> Twist:
    return Twist.from_dict(_mapping("twist", value, ("r", "d", "w", "resolution", "base", "rules")))


def _name(architecture: Any, twist: Twist, args: dict[str, Any], path: Path) -> str:
    """The zoo's name for a format-2 architecture, checked against the twist."""
    if architecture == TWIST_ARCHITECTURE and args.get("twist") == twist.to_dict():
        return "twist"
    entry = catalogued(architecture if isinstance(architecture, str) else None, twist)
    if entry is None or architecture != entry.timm_name:
        raise IncompatibleCheckpointError(f"{path}: architecture {architecture!r} (with model_args {args}) does not "
                                          f"build its twist {twist}; the folder is inconsistent")
    return entry.name


def _notes(data: dict[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    version = data.get("version", __version__)
    if not isinstance(version, str):
        raise InvalidArgumentError(f"version must be a string, got {version!r}")
    return dict(metrics=_mapping("metrics", data.get("metrics", {})), version=version,
                extra={k: v for k, v in data.items() if k not in known})


def _format2(data: dict[str, Any], path: Path) -> ModelConfig:
    twist = _twist(data["twist"])
    cfg = _mapping("pretrained_cfg", data["pretrained_cfg"])
    args = _mapping("model_args", data.get("model_args", {}), _MODEL_ARGS)
    num_classes = integer("num_classes", data["num_classes"], 0)
    in_chans, config = _data(cfg["input_size"], cfg)
    if args.get("in_chans", in_chans) != in_chans:
        raise InvalidArgumentError(f"model_args in_chans must equal input_size[0] ({in_chans}), got "
                                   f"{args['in_chans']!r}")
    if cfg.get("num_classes", num_classes) != num_classes:
        raise InvalidArgumentError(f"pretrained_cfg num_classes must equal num_classes ({num_classes}), got "
                                   f"{cfg['num_classes']!r}")
    name = _name(data.get("architecture"), twist, args, path)
    if data.get("num_features", twist.arch.head_chs) != twist.arch.head_chs:
        raise InvalidArgumentError(f"num_features must be {twist.arch.head_chs} (the head of twist {twist}), got "
                                   f"{data.get('num_features')!r}")
    return ModelConfig(twist=twist, name=name, num_classes=num_classes, data=config, in_chans=in_chans,
                       label_names=_labels(data.get("label_names"), num_classes),
                       global_pool=choice("global_pool", args.get("global_pool", "avg"), GLOBAL_POOLS),
                       **_notes(data, RESERVED))


def _format1(data: dict[str, Any], path: Path) -> ModelConfig:
    twist = _twist(data["twist"])
    num_classes = integer("num_classes", data["num_classes"], 0)
    cfg = _mapping("data_config", data["data_config"], ("resolution", "crop_pct", "interpolation", "mean", "std"))
    in_chans, config = _data([data.get("in_chans", 3), cfg["resolution"], cfg["resolution"]], cfg)
    label = data.get("architecture", "twist")
    entry = catalogued(label, twist) if isinstance(label, str) and label != "twist" else None
    if label != "twist" and entry is None:
        raise IncompatibleCheckpointError(f"{path}: architecture {label!r} does not build its twist {twist}; the "
                                          "folder is inconsistent")
    return ModelConfig(twist=twist, name=entry.name if entry else "twist", num_classes=num_classes, data=config,
                       in_chans=in_chans, label_names=_labels(data.get("classes"), num_classes),
                       **_notes(data, _FORMAT1))
