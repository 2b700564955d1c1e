"""Base networks to twist (stage tables as data) and the rounding rules that scale them."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import unknown


@dataclass(frozen=True)
class Stage:
    """One stage of MBConv blocks: block kind ('ds' depthwise-separable, 'ir' inverted residual)."""

    block: str
    kernel: int
    stride: int
    expand: int
    channels: int
    repeats: int
    se: float = 0.0

    def arch_string(self) -> str:
        """This stage in timm's arch-def notation (decoded only by timm's `decode_arch_def`)."""
        se = f"_se{self.se:g}" if self.se else ""
        return f"{self.block}_r{self.repeats}_k{self.kernel}_s{self.stride}_e{self.expand}_c{self.channels}{se}"


@dataclass(frozen=True)
class Rules:
    """How a twist's (d, w) turn into integer repeats and channels."""

    name: str
    stem: str  # "fixed" keeps the base's stem channels; "scaled" multiplies them by w
    repeats: str  # "round" to nearest or "ceil" (timm's depth_trunc)
    head: str  # "max": max(head, round(head*w)); "scaled": round(head*w); "fixed": head
    fix_first_last: bool = False  # Lite keeps the first and last stage depth unscaled
    description: str = ""


RULES: dict[str, Rules] = {
    r.name: r
    for r in (
        Rules("tinynet", stem="fixed", repeats="round", head="max",
              description="TinyNet: 32-channel stem, repeats rounded to nearest, head max(1280, 1280*w)"),
        Rules("efficientnet", stem="scaled", repeats="ceil", head="scaled",
              description="EfficientNet: stem and head scaled by w, repeats rounded up"),
        Rules("lite", stem="fixed", repeats="ceil", head="fixed", fix_first_last=True,
              description="EfficientNet-Lite: fixed stem and head, first/last stage depth fixed, repeats rounded up"),
    )
}


@dataclass(frozen=True)
class Base:
    """A network to twist: stage table, stem/head widths, activation and default resolution."""

    name: str
    stages: tuple[Stage, ...]
    act: str
    rules: str  # the rule set the base's own family uses
    stem_channels: int = 32
    head_channels: int = 1280
    resolution: int = 224
    channel_divisor: int = 8

    def arch_def(self) -> list[list[str]]:
        """The stage table as timm arch-def strings, one list per stage."""
        return [[stage.arch_string()] for stage in self.stages]


_B0_STAGES = (
    Stage("ds", kernel=3, stride=1, expand=1, channels=16, repeats=1, se=0.25),
    Stage("ir", kernel=3, stride=2, expand=6, channels=24, repeats=2, se=0.25),
    Stage("ir", kernel=5, stride=2, expand=6, channels=40, repeats=2, se=0.25),
    Stage("ir", kernel=3, stride=2, expand=6, channels=80, repeats=3, se=0.25),
    Stage("ir", kernel=5, stride=1, expand=6, channels=112, repeats=3, se=0.25),
    Stage("ir", kernel=5, stride=2, expand=6, channels=192, repeats=4, se=0.25),
    Stage("ir", kernel=3, stride=1, expand=6, channels=320, repeats=1, se=0.25),
)

BASES: dict[str, Base] = {
    b.name: b
    for b in (
        Base("efficientnet_b0", stages=_B0_STAGES, act="swish", rules="efficientnet"),
        Base("efficientnet_lite0", stages=tuple(Stage(**{**s.__dict__, "se": 0.0}) for s in _B0_STAGES),
             act="relu6", rules="lite"),
    )
}


def get_base(name: str) -> Base:
    """The registered Base called `name`."""
    try:
        return BASES[name]
    except (KeyError, TypeError):
        raise unknown("base", name, BASES) from None


def get_rules(name: str) -> Rules:
    """The registered rounding Rules called `name`."""
    try:
        return RULES[name]
    except (KeyError, TypeError):
        raise unknown("rule set", name, RULES) from None
