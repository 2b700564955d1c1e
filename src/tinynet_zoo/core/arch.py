"""`Arch`: the concrete block list of a Twist, and the integer arithmetic that decodes it: timm's depth rounding
(`depth_trunc`), `make_divisible` and `round_channels`, in pure Python so that counting MACs, `for_flops` and the
catalogue never import torch or timm. This is the one place the package computes what timm also computes;
tests/test_timm_parity.py checks it against timm's `decode_arch_def`, `round_channels` and built modules for every
registry entry, both bases, every rule set and random twists. Modules are still built only by timm
(`core/module.py`)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple

from .bases import Base, Rules, get_base


def make_divisible(value: float, divisor: int = 8, min_value: "int | None" = None, round_limit: float = 0.9) -> int:
    """timm's `make_divisible`: the nearest multiple of divisor (at least min_value), never 10% below value."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < round_limit * value else rounded


def round_channels(channels: int, multiplier: float = 1.0, divisor: int = 8) -> int:
    """timm's `round_channels`: channels scaled by a width multiplier, made divisible."""
    return make_divisible(channels * multiplier, divisor) if multiplier else channels


class Block(NamedTuple):
    """One built block with its integer channel counts."""

    kind: str  # "ds", "ir" or "cn"
    stage: int
    in_chs: int
    mid_chs: int  # expanded channels (== in_chs for "ds" and "cn")
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
    depths: tuple[int, ...]  # blocks per stage
    memo: dict = field(default_factory=dict, init=False, repr=False, compare=False)


def _head_channels(base: Base, rules: Rules, w: float) -> int:
    scaled = round_channels(base.head_channels, w, base.channel_divisor)
    return {"max": max(base.head_channels, scaled), "scaled": scaled, "fixed": base.head_channels}[rules.head]


class _Slot(NamedTuple):
    kind: str
    stage: int
    expand: float
    kernel: int
    stride: int
    se_ratio: float


def run_repeats(base: Base, rules: Rules, d: float) -> tuple[tuple[int, ...], ...]:
    """Blocks per run of every stage at depth multiplier d: the stage's total scaled by timm's `depth_trunc`
    ('round': nearest, at least 1; 'ceil'), the first and last stage kept when the rules fix them, then spread
    over the stage's runs (`spread_repeats`)."""
    scale = (lambda n: max(1, round(n * d))) if rules.repeats == "round" else (lambda n: math.ceil(n * d))
    last = len(base.stages) - 1
    out = []
    for i, stage in enumerate(base.stages):
        total = stage.repeats if rules.fix_first_last and i in (0, last) else scale(stage.repeats)
        runs = stage.runs
        out.append((total,) if len(runs) == 1 else spread_repeats(tuple(r.repeats for r in runs), total))
    return tuple(out)


def stage_repeats(base: Base, rules: Rules, d: float) -> tuple[int, ...]:
    """Blocks per stage at depth multiplier d (what timm's `decode_arch_def` builds)."""
    return tuple(sum(runs) for runs in run_repeats(base, rules, d))


def spread_repeats(runs: tuple[int, ...], total: int) -> tuple[int, ...]:
    """A stage's scaled repeats spread over its runs as timm's `_scale_stage_depth` does: in proportion, last run
    first, every run at least one block."""
    left, out = sum(runs), []
    for repeats in reversed(runs):
        scaled = max(1, round(repeats / left * total))
        out.append(scaled)
        left -= repeats
        total -= scaled
    return tuple(reversed(out))


_DECODED: dict[tuple, tuple[_Slot, ...]] = {}


def _slots(base: Base, repeats: tuple[tuple[int, ...], ...]) -> tuple[_Slot, ...]:
    """The block skeleton for given blocks per run of every stage (what timm's `decode_arch_def` gives), cached."""
    key = (base.name, repeats)
    found = _DECODED.get(key)
    if found is None:
        slots = []
        for index, (stage, counts) in enumerate(zip(base.stages, repeats)):
            first = len(slots)
            for run, run_count in zip(stage.runs, counts):
                for _ in range(run_count):
                    slots.append(_Slot(run.block, index, float(run.expand) if run.block == "ir" else 1.0, run.kernel,
                                       run.stride if len(slots) == first else 1,  # only a stage's first block strides
                                       run.se))
        found = _DECODED[key] = tuple(slots)
    return found


def decode_parts(base: Base, rules: Rules, d: float, w: float) -> Arch:
    """Decode (base, rules, d, w) without building a Twist."""
    return dataclasses.replace(shared_arch(base, rules, d, w), d=d, w=w)


def shared_arch(base: Base, rules: Rules, d: float, w: float) -> Arch:
    """The cached Arch shared by every (d, w) with the same integer blocks and widths (its d, w are unset).

    The formula solvers' inner loop: it skips copying, and `Arch.memo` keeps MAC counts per resolution.
    """
    divisor = base.channel_divisor
    widths = tuple(round_channels(c, w, divisor) for c in _stage_channels(base.name))
    fixed_stem = rules.stem == "fixed" or w < rules.fix_stem_below
    stem = base.stem_channels if fixed_stem else round_channels(base.stem_channels, w, divisor)
    head = _head_channels(base, rules, w)
    # Many (d, w) share the same integer blocks and widths: the assembled blocks are cached by those.
    key = (base.name, rules.name, run_repeats(base, rules, d), stem, widths, head)
    arch = _ASSEMBLED.get(key)
    if arch is None:
        if len(_ASSEMBLED) >= _CACHE_LIMIT:
            _ASSEMBLED.clear()
        arch = _ASSEMBLED[key] = _assemble(base, rules, key[2], stem, widths, head)
    return arch


_CACHE_LIMIT = 16384
_ASSEMBLED: dict[tuple, Arch] = {}


@lru_cache(maxsize=None)
def _stage_channels(base_name: str) -> tuple[int, ...]:
    return tuple(stage.channels for stage in get_base(base_name).stages)


def _se_channels(base: Base, mid_chs: int, ratio: float, expand: float) -> int:
    """Squeeze-excite channels of a block (0 without SE): from the expanded channels or the block input, rounded
    to nearest or made divisible, as the base's timm class sizes them."""
    if not ratio:
        return 0
    se = base.se
    value = mid_chs * ratio if se.from_expanded else mid_chs * ratio / expand
    return make_divisible(value) if se.rounding == "divisible" else round(value)


def _assemble(base: Base, rules: Rules, repeats: tuple[tuple[int, ...], ...], stem: int, widths: tuple[int, ...],
              head: int) -> Arch:
    """Concrete blocks for given blocks per stage and integer stage widths (timm's builder's arithmetic)."""
    blocks, in_chs = [], stem
    for s in _slots(base, repeats):
        out_chs = widths[s.stage]
        mid_chs = make_divisible(in_chs * s.expand) if s.kind == "ir" else in_chs
        se_chs = _se_channels(base, mid_chs, s.se_ratio, s.expand)
        blocks.append(Block(s.kind, s.stage, in_chs, mid_chs, out_chs, s.kernel, s.stride, se_chs,
                            s.kind != "cn" and s.stride == 1 and in_chs == out_chs))
        in_chs = out_chs
    return Arch(base=base, rules=rules, d=float("nan"), w=float("nan"), stem_chs=stem, head_chs=head,
                blocks=tuple(blocks), depths=tuple(sum(runs) for runs in repeats))
