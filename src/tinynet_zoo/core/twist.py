"""`Twist`: resolution, depth and width multipliers (plus pixels) on a Base; the giant formula."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from ..checks import integer, number
from ..errors import InvalidArgumentError
from .arch import Arch, decode_parts
from .bases import DEFAULT_BASE, get_base, get_rules
from .flops import count_macs, count_params

MIN_RESOLUTION, MAX_RESOLUTION = 32, 1024  # input pixels every part of the package accepts
MAX_MULTIPLIER = 8.0
# EfficientNet's compound-scaling coefficients: d = ALPHA**phi, w = BETA**phi, r = GAMMA**phi.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15


def check_resolution(value: Any, name: str = "resolution") -> int:
    """An input resolution in pixels: an integer in [MIN_RESOLUTION, MAX_RESOLUTION]."""
    return integer(name, value, MIN_RESOLUTION, MAX_RESOLUTION)


def even_resolution(base_resolution: int, r: float) -> int:
    """The base resolution scaled by r, rounded to the nearest even pixel count."""
    return int(2 * round(base_resolution * r / 2))


@dataclass(frozen=True)
class Twist:
    """Multipliers r (resolution), d (depth), w (width) relative to a base, and the input pixels."""

    r: float
    d: float
    w: float
    resolution: int
    base: str = DEFAULT_BASE
    rules: str = "tinynet"
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in ("r", "d", "w"):
            object.__setattr__(self, name, number(f"Twist.{name}", getattr(self, name), 0, MAX_MULTIPLIER,
                                                  low_open=True))
        res = self.resolution
        if isinstance(res, float) and res.is_integer():
            res = int(res)
        object.__setattr__(self, "resolution", check_resolution(res, "Twist.resolution"))
        get_base(self.base)
        get_rules(self.rules)

    @classmethod
    def from_multipliers(cls, r: float, d: float, w: float, base: str = DEFAULT_BASE,
                         rules: str = "tinynet") -> "Twist":
        """A Twist whose resolution is the base's scaled by r (nearest even pixel)."""
        if isinstance(r, (int, float)) and math.isfinite(r) and r > 0:
            resolution = even_resolution(get_base(base).resolution, r)
        else:
            resolution = MIN_RESOLUTION  # let __post_init__ report the bad r
        return cls(r, d, w, resolution, base, rules)

    def replace(self, **changes: Any) -> "Twist":
        """A copy with some fields changed."""
        return Twist(**{**self.to_dict(), **changes})

    @property
    def arch(self) -> "Arch":
        """The decoded architecture (cached per Twist)."""
        if "arch" not in self._cache:
            self._cache["arch"] = decode_parts(get_base(self.base), get_rules(self.rules), self.d, self.w)
        return self._cache["arch"]

    @cached_property
    def macs(self) -> int:
        """Multiply-accumulates of one forward pass at `resolution` (1000 classes, 3 input channels)."""
        return count_macs(self.arch, self.resolution)

    @cached_property
    def params(self) -> int:
        """Trainable parameters with a 1000-class head and 3 input channels."""
        return count_params(self.arch)

    def to_dict(self) -> dict[str, Any]:
        """Plain fields, JSON-ready."""
        data = asdict(self)
        data.pop("_cache")
        return data

    def to_json(self) -> str:
        """This twist as a JSON object string."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Twist":
        """Rebuild a Twist from `to_dict()` output."""
        allowed = {"r", "d", "w", "resolution", "base", "rules"}
        if not isinstance(data, dict) or not {"r", "d", "w", "resolution"} <= set(data) or set(data) - allowed:
            raise InvalidArgumentError(
                f"a Twist needs keys r, d, w, resolution (optional base, rules); got {data!r}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> "Twist":
        """Parse a Twist from `to_json()` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(f"not a JSON Twist: {exc}") from None
        return cls.from_dict(data)

    def __str__(self) -> str:
        return (f"Twist(r={self.r:.4g}, d={self.d:.4g}, w={self.w:.4g}, resolution={self.resolution}, "
                f"base={self.base}, rules={self.rules})")


def giant(phi: float, base: str = DEFAULT_BASE, resolution: int | None = None) -> Twist:
    """EfficientNet's compound ('giant') formula at a continuous phi; negative phi shrinks."""
    number("phi", phi)
    r, d, w = GAMMA ** phi, ALPHA ** phi, BETA ** phi
    res = even_resolution(get_base(base).resolution, r) if resolution is None else resolution
    return Twist(r, d, w, max(MIN_RESOLUTION, res), base, rules=get_base(base).rules)
