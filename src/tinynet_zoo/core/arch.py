"""`Arch`: the concrete block list of a Twist, decoded with timm's arch-def helpers."""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from ..errors import TinyNetZooError
from .bases import Base, Rules, get_base


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
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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
    expand: float
    kernel: int
    stride: int
    se_ratio: float
    noskip: bool


def stage_repeats(base: Base, rules: Rules, d: float) -> tuple[int, ...]:
    """Blocks per stage at depth multiplier d, by timm's depth_trunc rule (checked against timm on decode)."""
    scale = (lambda n: max(1, round(n * d))) if rules.repeats == "round" else (lambda n: math.ceil(n * d))
    last = len(base.stages) - 1
    return tuple(stage.repeats if rules.fix_first_last and i in (0, last) else scale(stage.repeats)
                 for i, stage in enumerate(base.stages))


_DECODED: dict[tuple, tuple] = {}


def _stages(base: Base, rules: Rules, d: float) -> tuple[tuple, tuple[_Slot, ...]]:
    """timm's decoded block kwargs (shared, never mutated) and their skeleton, cached by blocks per stage."""
    key = (base.name, rules.name, stage_repeats(base, rules, d))
    found = _DECODED.get(key)
    if found is not None:
        return found
    from timm.models._efficientnet_builder import decode_arch_def

    stages = decode_arch_def(base.arch_def(), d, depth_trunc=rules.repeats, fix_first_last=rules.fix_first_last)
    if tuple(len(stage) for stage in stages) != key[2]:
        raise TinyNetZooError(f"timm decoded depth {d} differently from stage_repeats {key[2]}: timm changed")
    slots = tuple(
        _Slot(ba["block_type"], stage_idx, ba.get("exp_ratio", 1.0), ba["dw_kernel_size"],
              ba["stride"] if idx == 0 else 1,  # timm's builder strides only a stage's first block
              ba.get("se_ratio") or 0.0, bool(ba.get("noskip", False)))
        for stage_idx, stage in enumerate(stages) for idx, ba in enumerate(stage))
    found = _DECODED[key] = (tuple(tuple(stage) for stage in stages), slots)
    return found


def decode_parts(base: Base, rules: Rules, d: float, w: float) -> Arch:
    """Decode (base, rules, d, w) without building a Twist."""
    return dataclasses.replace(shared_arch(base, rules, d, w), d=d, w=w)


def shared_arch(base: Base, rules: Rules, d: float, w: float) -> Arch:
    """The cached Arch shared by every (d, w) with the same integer blocks and widths (its d, w are unset).

    The formula solvers' inner loop: it skips copying, and `Arch.memo` keeps MAC counts per resolution.
    """
    from timm.models._efficientnet_builder import round_channels

    divisor = base.channel_divisor
    widths = tuple(round_channels(c, w, divisor) for c in _stage_channels(base.name))
    stem = base.stem_channels if rules.stem == "fixed" else round_channels(base.stem_channels, w, divisor)
    head = _head_channels(base, rules, w)
    # Many (d, w) share the same integer blocks and widths: the assembled blocks are cached by those.
    key = (base.name, rules.name, stage_repeats(base, rules, d), stem, widths, head)
    arch = _ASSEMBLED.get(key)
    if arch is None:
        if len(_ASSEMBLED) >= _CACHE_LIMIT:
            _ASSEMBLED.clear()
        arch = _ASSEMBLED[key] = _assemble(base, rules, d, stem, widths, head)
    return arch


_CACHE_LIMIT = 16384
_ASSEMBLED: dict[tuple, Arch] = {}


@lru_cache(maxsize=None)
def _stage_channels(base_name: str) -> tuple[int, ...]:
    return tuple(stage.channels for stage in get_base(base_name).stages)


def _assemble(base: Base, rules: Rules, d: float, stem: int, widths: tuple[int, ...], head: int) -> Arch:
    """Concrete blocks for given blocks-per-stage (from d) and integer stage widths."""
    from timm.layers import make_divisible

    block_args, slots = _stages(base, rules, d)
    blocks, in_chs = [], stem
    for s in slots:
        out_chs = widths[s.stage]
        mid_chs = make_divisible(in_chs * s.expand) if s.kind == "ir" else in_chs
        se_chs = round(mid_chs * s.se_ratio / s.expand) if s.se_ratio else 0
        blocks.append(Block(s.kind, s.stage, in_chs, mid_chs, out_chs, s.kernel, s.stride, se_chs,
                            s.stride == 1 and in_chs == out_chs and not s.noskip))
        in_chs = out_chs
    return Arch(base=base, rules=rules, d=float("nan"), w=float("nan"), stem_chs=stem, head_chs=head,
                blocks=tuple(blocks), block_args=block_args)
