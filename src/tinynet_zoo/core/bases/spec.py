"""What declaring a base takes: its stage table (runs of blocks, per-run activation and squeeze-excite), its stem and
head, the rounding rules that scale it, the timm class that builds it and its pretrained checkpoint. Pure data: the
arithmetic (core/arch.py, core/flops.py), building (core/module.py), inheritance (weights/channels.py), freezing,
timm registration, search and shrink all read a `Base` and nothing else about it."""
from __future__ import annotations

from dataclasses import dataclass

BLOCK_KINDS = ("ds", "ir", "cn")  # timm's depthwise-separable, inverted-residual and conv-bn-act blocks
HEADS = ("norm", "pooled")


@dataclass(frozen=True)
class Run:
    """Identical blocks in a row (one timm arch-def string): kind, kernel, stride of the first, expansion, output
    channels, repeats, squeeze-excite ratio and an activation overriding the base's (None: the base's)."""

    block: str
    kernel: int
    stride: int
    expand: float
    channels: int
    repeats: int
    se: float = 0.0
    act: "str | None" = None

    def arch_string(self) -> str:
        """This run in timm's arch-def notation (decoded only by timm's `decode_arch_def`)."""
        se = f"_se{self.se:g}" if self.se else ""
        act = {None: "", "relu": "_nre", "relu6": "_nr6", "hard_swish": "_nhs", "swish": "_nsw"}[self.act]
        expand = f"_e{self.expand:g}" if self.block != "cn" else ""
        return f"{self.block}_r{self.repeats}_k{self.kernel}_s{self.stride}{expand}_c{self.channels}{se}{act}"


@dataclass(frozen=True)
class Stage:
    """One stage: runs of blocks sharing one output width; depth scales the stage's total repeats (timm spreads
    them over the runs, the last run first)."""

    runs: tuple[Run, ...]

    @property
    def channels(self) -> int:
        """The stage's output channels (its residual stream)."""
        return self.runs[-1].channels

    @property
    def repeats(self) -> int:
        """Blocks in the stage at depth 1."""
        return sum(run.repeats for run in self.runs)

    def arch_strings(self) -> list[str]:
        """The stage's runs as timm arch-def strings."""
        return [run.arch_string() for run in self.runs]


def stage(block: str, kernel: int, stride: int, expand: float, channels: int, repeats: int, se: float = 0.0,
          act: "str | None" = None) -> Stage:
    """A stage of one run (EfficientNet's stages)."""
    return Stage((Run(block, kernel, stride, expand, channels, repeats, se, act),))


@dataclass(frozen=True)
class Rules:
    """How a twist's (d, w) turn into integer repeats and channels."""

    name: str
    stem: str  # "fixed" keeps the base's stem channels; "scaled" multiplies them by w
    repeats: str  # "round" to nearest or "ceil" (timm's depth_trunc)
    head: str  # "max": max(head, round(head*w)); "scaled": round(head*w); "fixed": head
    fix_first_last: bool = False  # Lite keeps the first and last stage depth unscaled
    description: str = ""
    fix_stem_below: float = 0.0  # a "scaled" stem stays fixed while w is below this (MobileNetV3: 0.75)


@dataclass(frozen=True)
class SqueezeExcite:
    """How a base's squeeze-excite layers are sized and gated: reduced channels from the expanded channels or the
    block input, rounded to nearest ("round") or made divisible by 8 ("divisible"); gate and inner activation
    (None: the block's)."""

    from_expanded: bool = False
    rounding: str = "round"
    gate: str = "sigmoid"
    act: "str | None" = None


@dataclass(frozen=True)
class TimmBuild:
    """Which timm module and classes build the base: the model class, its features class and the `_create_*`
    helper timm's own entry points use (it loads pretrained weights and handles features_only)."""

    module: str
    model: str
    features: str
    create: str


EFFICIENTNET_BUILD = TimmBuild("timm.models.efficientnet", "EfficientNet", "EfficientNetFeatures", "_create_effnet")
MOBILENETV3_BUILD = TimmBuild("timm.models.mobilenetv3", "MobileNetV3", "MobileNetV3Features", "_create_mnv3")


@dataclass(frozen=True)
class Base:
    """A network to twist: stage table, stem/head widths and layout, activation, squeeze-excite, default
    resolution, the timm class that builds it and its pretrained checkpoint tag.

    head: "norm" (EfficientNet: conv_head, batch norm, activation on the last feature map, then pooling) or
    "pooled" (MobileNetV3: pooling, then conv_head with a bias and an activation, no norm).
    """

    name: str
    stages: tuple[Stage, ...]
    act: str
    rules: str  # the rule set the base's own family uses
    stem_channels: int = 32
    head_channels: int = 1280
    resolution: int = 224
    channel_divisor: int = 8
    head: str = "norm"
    se: SqueezeExcite = SqueezeExcite()
    timm: TimmBuild = EFFICIENTNET_BUILD
    checkpoint: "str | None" = None  # weights-manifest tag of the base network's pretrained weights
    description: str = ""

    def arch_def(self) -> list[list[str]]:
        """The stage table as timm arch-def strings, one list per stage."""
        return [stage.arch_strings() for stage in self.stages]

    @property
    def head_norm(self) -> "str | None":
        """The key of the head's batch norm ('bn2'), None where the head has none."""
        return "bn2" if self.head == "norm" else None
