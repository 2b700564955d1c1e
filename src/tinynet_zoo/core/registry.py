"""The catalogue: names and aliases → entries (twist on a base, the paper's numbers, default checkpoint tag, eval
data config). Measured numbers belong to checkpoints and live in the weights manifest."""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidArgumentError, UnknownModelError, unknown
from .bases import get_base
from .twist import Twist

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bicubic", "bilinear", "nearest", "lanczos", "box", "hamming", "random")  # what timm resizes with


@dataclass(frozen=True)
class DataConfig:
    """Eval preprocessing: resize to resolution/crop_pct, center-crop `resolution`, normalise."""

    resolution: int
    crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass(frozen=True)
class Metrics:
    """Published (the paper's) or measured (a checkpoint's) numbers; None where the source gives none. MACs, not
    2x FLOPs."""

    macs: float | None = None
    params: float | None = None
    top1: float | None = None
    top5: float | None = None
    source: str = ""


@dataclass(frozen=True)
class Entry:
    """One catalogued model."""

    name: str
    twist: Twist
    family: str  # "tinynet", "efficientnet", "shrunken-efficientnet" or "mobilenetv3"
    description: str
    paper: Metrics = Metrics()
    aliases: tuple[str, ...] = ()
    checkpoint: str | None = None  # tag in weights_manifest.json, e.g. "tinynet_b.in1k"
    paired_with: str | None = None  # for shrunken EfficientNets: the TinyNet whose MACs they match
    data_config: DataConfig = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.data_config is None:
            object.__setattr__(self, "data_config", DataConfig(resolution=self.twist.resolution))

    @property
    def timm_name(self) -> str:
        """The name in timm's registry: the canonical name, or its '-'-free alias ('efficientnet_bm2')."""
        return next(name for name in (self.name, *self.aliases) if "-" not in name)


_PAPER = "Han et al. 2020, Table 2 (FLOPs are MACs)"


def _tinynet(letter: str, r: float, d: float, w: float, res: int, paper: tuple) -> Entry:
    return Entry(
        name=f"tinynet_{letter}", twist=Twist(r, d, w, res), family="tinynet",
        description=f"TinyNet-{letter.upper()} (tiny formula, Han et al. 2020)",
        paper=Metrics(*paper, source=_PAPER), checkpoint=f"tinynet_{letter}.in1k")


# Shrunken EfficientNets: the inverse giant formula at a continuous phi solved so each lands on its
# paired TinyNet's exact MACs (see solver.land_giant; tests re-derive these numbers).
_SHRUNKEN = {
    1: ("tinynet_b", 0.790178, 0.735496, 0.8905712653696531, 176),
    2: ("tinynet_c", 0.647054, 0.56672, 0.7874678497144814, 140),
    3: ("tinynet_d", 0.575772, 0.48668, 0.6457872811190699, 132),
    4: ("tinynet_e", 0.432968, 0.335545, 0.6874769336514273, 84),
}


def _shrunken(k: int) -> Entry:
    pair, r, d, w, res = _SHRUNKEN[k]
    paper = Metrics(24e6, None, 56.7, None, source=_PAPER) if k == 4 else Metrics(source=_PAPER)
    return Entry(
        name=f"efficientnet_b-{k}", twist=Twist(r, d, w, res, rules="efficientnet"),
        family="shrunken-efficientnet", paper=paper, aliases=(f"efficientnet_bm{k}",), paired_with=pair,
        description=f"EfficientNet-B^-{k}: inverse giant formula at the MACs of {pair}")


def _base_entry(name: str, description: str, paper: Metrics = Metrics(), family: str = "efficientnet") -> Entry:
    """A base network itself (r = d = w = 1 under its own rules), with the pretrained checkpoint its declaration
    names (core/bases)."""
    base = get_base(name)
    return Entry(name=name, twist=Twist(1.0, 1.0, 1.0, base.resolution, base=name, rules=base.rules), family=family,
                 description=description, paper=paper, checkpoint=base.checkpoint)


ENTRIES: tuple[Entry, ...] = (
    _tinynet("a", 0.86, 1.2, 1.0, 192, (339e6, 6.2e6, 76.8)),
    _tinynet("b", 0.84, 1.1, 0.75, 188, (202e6, 3.7e6, 75.0)),
    _tinynet("c", 0.825, 0.85, 0.54, 184, (100e6, 2.5e6, 71.2)),
    _tinynet("d", 0.68, 0.695, 0.54, 152, (52e6, 2.3e6, 67.0)),
    _tinynet("e", 0.475, 0.6, 0.51, 106, (24e6, 2.0e6, 59.9)),
    _base_entry("efficientnet_b0", "EfficientNet-B0, the base every TinyNet is twisted from",
                Metrics(390e6, 5.3e6, 77.1, source=_PAPER)),
    *(_shrunken(k) for k in (1, 2, 3, 4)),
    _base_entry("efficientnet_lite0", "EfficientNet-Lite0: ReLU6, no SE, fixed stem/head (a second base)"),
    _base_entry("mobilenetv3_large_100", "MobileNetV3-Large: ReLU/hard-swish, hard-sigmoid SE, pooled head "
                "(a third base)", family="mobilenetv3"),
)

_BY_NAME: dict[str, Entry] = {e.name: e for e in ENTRIES}
_ALIASES: dict[str, str] = {alias: e.name for e in ENTRIES for alias in e.aliases}


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Canonical model names matching a shell-style wildcard pattern (any case), naturally sorted."""
    if not isinstance(pattern, str):
        raise InvalidArgumentError(f"pattern must be a shell wildcard string such as 'tinynet_*', got {pattern!r}")
    return sorted((n for n in _BY_NAME if fnmatch.fnmatchcase(n, pattern.lower())), key=_natural_key)


def split_tag(name: str) -> tuple[str, "str | None"]:
    """'tinynet_b.in1k' → ('tinynet_b', 'in1k'); a name without a tag → (name, None)."""
    model, dot, tag = name.strip().partition(".")
    return model, (tag if dot else None)


def get_entry(name: str) -> Entry:
    """The registry entry for a canonical name or alias (case-insensitive); a name with a '.tag' is refused
    here (the factory resolves tags against the weights manifest)."""
    if not isinstance(name, str):
        raise UnknownModelError(f"a model name is a string, got {type(name).__name__}")
    model, tag = split_tag(name)
    key = _ALIASES.get(model.lower(), model.lower())
    if key not in _BY_NAME:
        raise unknown("model", model, [*_BY_NAME, *_ALIASES], UnknownModelError)
    if tag is not None:
        raise UnknownModelError(f"{name!r} names a checkpoint tag; look it up with tinynet_zoo.model_info or "
                                "create, which check it against the weights manifest")
    return _BY_NAME[key]
