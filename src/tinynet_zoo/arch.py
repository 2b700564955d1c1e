"""`Arch`: the concrete block list of a Twist, decoded with timm's arch-def helpers."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from .bases import Base, Rules, get_base, get_rules
from .twist import Twist


class Block(NamedTuple):
    """One built block with its integer channel counts."""

    kind: str  # "ds" or "ir"
    stage: int
    in_chs: int
    mid_chs: int  # expanded channels (== in_chs for "ds")
    out_chs: int
    kernel: int
    stride: int
    se_chs: int  # squeeze-excite reduced channels, 0 without SE
    skip: bool


@dataclass(frozen=True)
class Arch:
    """Stem, blocks and head of a twisted base; everything MAC/param counting and building needs."""

    base: Base
    rules: Rules
    d: float
    w: float
    stem_chs: int
    head_chs: int
    blocks: tuple[Block, ...]
    block_args: tuple  # timm's decoded per-stage block kwargs (copied before building)

    def timm_block_args(self) -> list[list[dict[str, Any]]]:
        """A fresh copy of the decoded block kwargs (timm's builder mutates what it is given)."""
        return copy.deepcopy([list(stage) for stage in self.block_args])

    @property
    def depths(self) -> tuple[int, ...]:
        """Blocks per stage."""
        return tuple(len(stage) for stage in self.block_args)


def _head_channels(base: Base, rules: Rules, w: float) -> int:
    from timm.models._efficientnet_builder import round_channels

    scaled = round_channels(base.head_channels, w, base.channel_divisor)
    return {"max": max(base.head_channels, scaled), "scaled": scaled, "fixed": base.head_channels}[rules.head]


class _Slot(NamedTuple):
    kind: str
    stage: int
    channels: int  # unscaled output channels
    expand: float
    kernel: int
    stride: int
    se_ratio: float
    noskip: bool


@lru_cache(maxsize=4096)
def _stages(base_name: str, rules_name: str, d: float) -> tuple[tuple, tuple[_Slot, ...]]:
    """timm's decoded block kwargs for a depth multiplier (shared, never mutated) and their skeleton."""
    from timm.models._efficientnet_builder import decode_arch_def

    base, rules = get_base(base_name), get_rules(rules_name)
    stages = decode_arch_def(base.arch_def(), d, depth_trunc=rules.repeats, fix_first_last=rules.fix_first_last)
    slots = tuple(
        _Slot(ba["block_type"], stage_idx, ba["out_chs"], ba.get("exp_ratio", 1.0), ba["dw_kernel_size"],
              ba["stride"] if idx == 0 else 1,  # timm's builder strides only a stage's first block
              ba.get("se_ratio") or 0.0, bool(ba.get("noskip", False)))
        for stage_idx, stage in enumerate(stages) for idx, ba in enumerate(stage))
    return tuple(tuple(stage) for stage in stages), slots


def decode(twist: Twist) -> Arch:
    """Decode a Twist into its concrete architecture with timm's `decode_arch_def` and `round_channels`."""
    return decode_parts(get_base(twist.base), get_rules(twist.rules), twist.d, twist.w)


def decode_parts(base: Base, rules: Rules, d: float, w: float) -> Arch:
    """Decode (base, rules, d, w) without building a Twist: the formula solvers' inner loop."""
    from timm.models._efficientnet_builder import round_channels

    divisor = base.channel_divisor
    widths = tuple(round_channels(c, w, divisor) for c in _stage_channels(base.name))
    stem = base.stem_channels if rules.stem == "fixed" else round_channels(base.stem_channels, w, divisor)
    arch = _assemble(base.name, rules.name, d, stem, widths, _head_channels(base, rules, w))
    return dataclasses.replace(arch, w=w)


@lru_cache(maxsize=1)
def _stage_channels(base_name: str) -> tuple[int, ...]:
    return tuple(stage.channels for stage in get_base(base_name).stages)


@lru_cache(maxsize=8192)
def _assemble(base_name: str, rules_name: str, d: float, stem: int, widths: tuple[int, ...], head: int) -> Arch:
    """The Arch for given integer widths; widths repeat across many w, so this is cached."""
    from timm.layers import make_divisible

    base, rules = get_base(base_name), get_rules(rules_name)
    block_args, slots = _stages(base_name, rules_name, d)
    blocks, in_chs = [], stem
    for s in slots:
        out_chs = widths[s.stage]
        mid_chs = make_divisible(in_chs * s.expand) if s.kind == "ir" else in_chs
        se_chs = round(mid_chs * s.se_ratio / s.expand) if s.se_ratio else 0
        blocks.append(Block(s.kind, s.stage, in_chs, mid_chs, out_chs, s.kernel, s.stride, se_chs,
                            s.stride == 1 and in_chs == out_chs and not s.noskip))
        in_chs = out_chs
    # w is filled in by decode_parts (many w share these integer widths)
    return Arch(base=base, rules=rules, d=d, w=0.0, stem_chs=stem, head_chs=head, blocks=tuple(blocks),
                block_args=block_args)
