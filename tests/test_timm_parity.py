"""The pure-Python architecture arithmetic (core/arch.py) equals timm's: `make_divisible`, `round_channels`,
`decode_arch_def`'s depth rounding and block list, and the modules timm's own generators build, for every registry
entry, both bases, every rule set and random twists. A timm release that changes any of these fails here."""
import sys
import subprocess

import pytest
import timm  # noqa: F401  (this test is the one place the arithmetic meets timm)
import torch
from hypothesis import given, settings, strategies as st
from timm.layers import make_divisible as timm_make_divisible
from timm.models import efficientnet as timm_effnet, mobilenetv3 as timm_mnv3
from timm.models._efficientnet_builder import decode_arch_def, round_channels as timm_round_channels
from torch.utils.flop_counter import FlopCounterMode

import tinynet_zoo as tz
from conftest import ALL_MODELS
from tinynet_zoo.core.arch import Block, make_divisible, round_channels, stage_repeats
from tinynet_zoo.core.bases import BASES, RULES, get_base, get_rules
from tinynet_zoo.core.flops import count_macs, count_params
from tinynet_zoo.core.module import build_module

# timm's own generator for each base's own rule set (the variant only names the pretrained cfg it borrows)
GENERATORS = {
    ("efficientnet_b0", "tinynet"): lambda t: timm_effnet._gen_tinynet("tinynet_a", t.w, t.d),
    ("efficientnet_b0", "efficientnet"): lambda t: timm_effnet._gen_efficientnet("efficientnet_b0", t.w, t.d),
    ("efficientnet_lite0", "lite"): lambda t: timm_effnet._gen_efficientnet_lite("efficientnet_lite0", t.w, t.d),
    ("mobilenetv3_large_100", "mobilenetv3"): lambda t: timm_mnv3._gen_mobilenet_v3("mobilenetv3_large_100", t.w, t.d),
}


def module_layout(model) -> tuple[int, tuple[Block, ...], int]:
    """(stem channels, blocks, head channels) read off a built timm EfficientNet."""
    blocks = []
    for stage_index, stage in enumerate(model.blocks):
        for block in stage:
            se = getattr(getattr(block, "se", None), "conv_reduce", None)
            if type(block).__name__ == "ConvBnAct":
                conv = block.conv
                blocks.append(Block("cn", stage_index, conv.in_channels, conv.in_channels, conv.out_channels,
                                    conv.kernel_size[0], conv.stride[0], 0, block.has_skip))
                continue
            if type(block).__name__ == "InvertedResidual":
                kind, in_chs, mid_chs, out_chs = ("ir", block.conv_pw.in_channels, block.conv_pw.out_channels,
                                                  block.conv_pwl.out_channels)
            else:
                assert type(block).__name__ == "DepthwiseSeparableConv"
                kind, in_chs, mid_chs, out_chs = ("ds", block.conv_dw.in_channels, block.conv_dw.in_channels,
                                                  block.conv_pw.out_channels)
            blocks.append(Block(kind, stage_index, in_chs, mid_chs, out_chs, block.conv_dw.kernel_size[0],
                                block.conv_dw.stride[0], se.out_channels if se is not None else 0, block.has_skip))
    return model.conv_stem.out_channels, tuple(blocks), model.conv_head.out_channels


def timm_built(twist: tz.Twist):
    """The module timm builds for a twist: its own generator where one exists, else its builder (decode_arch_def,
    round_channels) through core/module.py."""
    make = GENERATORS.get((twist.base, twist.rules))
    return make(twist) if make is not None else build_module(twist.arch)


def assert_same_as_timm(twist: tz.Twist, resolution: "int | None" = None) -> None:
    """Channels block by block, params and (at `resolution`) MACs of the Arch equal timm's module; built on the
    meta device: shapes only, no weights initialised, no arithmetic run."""
    with torch.device("meta"):
        model = timm_built(twist).eval()
    arch = twist.arch
    assert module_layout(model) == (arch.stem_chs, arch.blocks, arch.head_chs), twist
    assert count_params(arch) == sum(p.numel() for p in model.parameters()), twist
    if resolution is not None:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(torch.zeros(1, 3, resolution, resolution, device="meta"))
        assert count_macs(arch, resolution) == counter.get_total_flops() // 2, twist


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_registry_entry_equals_timms_module(name):
    assert_same_as_timm(tz.model_info(name).twist, resolution=64)


twists = st.builds(
    tz.Twist, r=st.just(1.0), d=st.floats(0.1, 2.0), w=st.floats(0.05, 1.6), resolution=st.just(64),
    base=st.sampled_from(sorted(BASES)), rules=st.sampled_from(sorted(RULES)))


@settings(max_examples=25, deadline=None)
@given(twist=twists)
def test_random_twists_equal_timms_modules(twist):
    assert_same_as_timm(twist)


def timm_decoded(base_name: str, rules_name: str, d: float, w: float) -> tuple[int, list[tuple], int]:
    """Stem, per-block (kind, stage, kernel, stride, in, mid, out, se) and head from timm's decode_arch_def and
    round_channels, with timm's builder's channel arithmetic (InvertedResidual: make_divisible(in * exp))."""
    base, rules = get_base(base_name), get_rules(rules_name)
    stages = decode_arch_def(base.arch_def(), d, depth_trunc=rules.repeats, fix_first_last=rules.fix_first_last)
    fixed_stem = rules.stem == "fixed" or w < rules.fix_stem_below
    stem = base.stem_channels if fixed_stem else timm_round_channels(base.stem_channels, w)
    head_scaled = timm_round_channels(base.head_channels, w)
    head = {"max": max(base.head_channels, head_scaled), "scaled": head_scaled, "fixed": base.head_channels}[rules.head]
    rows, in_chs = [], stem
    for stage_index, stage in enumerate(stages):
        for i, ba in enumerate(stage):
            out = timm_round_channels(ba["out_chs"], w)
            expand = ba.get("exp_ratio", 1.0)
            mid = timm_make_divisible(in_chs * expand) if ba["block_type"] == "ir" else in_chs
            se = 0
            if ba.get("se_ratio"):  # timm's SqueezeExcite: rd_round_fn(channels * rd_ratio)
                ratio = ba["se_ratio"] if base.se.from_expanded else ba["se_ratio"] / expand
                se = timm_round_channels(mid * ratio) if base.se.rounding == "divisible" else round(mid * ratio)
            kernel = ba["kernel_size"] if ba["block_type"] == "cn" else ba["dw_kernel_size"]
            rows.append((ba["block_type"], stage_index, kernel, ba["stride"] if i == 0 else 1, in_chs, mid, out, se))
            in_chs = out
    return stem, rows, head


@settings(max_examples=60, deadline=None)
@given(d=st.floats(0.05, 4.0), w=st.floats(0.02, 4.0), base=st.sampled_from(sorted(BASES)),
       rules=st.sampled_from(sorted(RULES)))
def test_decoding_equals_timms_decode_arch_def(d, w, base, rules):
    arch = tz.Twist(1.0, d, w, 224, base=base, rules=rules).arch
    ours = (arch.stem_chs, [(b.kind, b.stage, b.kernel, b.stride, b.in_chs, b.mid_chs, b.out_chs, b.se_chs)
                            for b in arch.blocks], arch.head_chs)
    assert ours == timm_decoded(base, rules, d, w)


@pytest.mark.parametrize("base", sorted(BASES))
@pytest.mark.parametrize("rules", sorted(RULES))
def test_depth_rounding_equals_timm_on_a_fine_grid(base, rules):
    b, r = get_base(base), get_rules(rules)
    for step in range(1, 801):  # d = 0.005 .. 4.0, every rounding boundary of these repeat counts included
        d = step / 200
        stages = decode_arch_def(b.arch_def(), d, depth_trunc=r.repeats, fix_first_last=r.fix_first_last)
        assert stage_repeats(b, r, d) == tuple(len(s) for s in stages), d


def test_channel_rounding_equals_timm_on_a_fine_grid():
    channels = sorted({s.channels for b in BASES.values() for s in b.stages} | {32, 1280, 3, 100, 7})
    for step in range(1, 4001):  # w = 0.001 .. 4.0
        w = step / 1000
        for c in channels:
            for divisor in (4, 8, 16):
                assert round_channels(c, w, divisor) == timm_round_channels(c, w, divisor), (c, w, divisor)
    assert round_channels(37, 0.0) == timm_round_channels(37, 0.0) == 37


@given(value=st.floats(0.0, 1e5, allow_nan=False), divisor=st.sampled_from([1, 2, 4, 8, 16, 32]),
       min_value=st.none() | st.integers(1, 64), round_limit=st.floats(0.0, 1.0))
def test_make_divisible_equals_timm(value, divisor, min_value, round_limit):
    assert make_divisible(value, divisor, min_value, round_limit) == \
        timm_make_divisible(value, divisor, min_value, round_limit)


def test_formula_catalogue_and_cli_import_neither_torch_nor_timm():
    code = ("import sys, tinynet_zoo as tz\n"
            "tz.for_flops(1e8); tz.for_flops('3G'); tz.model_info('tinynet_b'); tz.model_info('50M')\n"
            "tz.list_models(); tz.Twist(0.5, 0.5, 0.5, 96, base='efficientnet_lite0', rules='lite').params\n"
            "from tinynet_zoo.cli import main\n"
            "for argv in (['list'], ['info', 'efficientnet_bm2'], ['table'], ['formula', '100M']):\n"
            "    assert main(argv) == 0\n"
            "print(sorted(m for m in ('torch', 'timm', 'sklearn', 'safetensors') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
