"""Twist validation and JSON round-trip; registry lookup, aliases, shrunken EfficientNets."""
import math

import pytest
from hypothesis import given, strategies as st

import tinynet_zoo as tz
from tinynet_zoo.core.bases import get_base
from tinynet_zoo.core.solver import land_giant


@given(r=st.floats(0.1, 8), d=st.floats(0.1, 8), w=st.floats(0.1, 8), res=st.integers(32, 1024),
       rules=st.sampled_from(["tinynet", "efficientnet", "lite"]))
def test_twist_json_round_trip(r, d, w, res, rules):
    twist = tz.Twist(r, d, w, res, rules=rules)
    assert tz.Twist.from_json(twist.to_json()) == twist
    assert hash(tz.Twist.from_dict(twist.to_dict())) == hash(twist)


@pytest.mark.parametrize("kwargs, match", [
    (dict(r=0), r"Twist.r must be a finite number in \(0, 8\], got 0"),
    (dict(d=math.nan), "Twist.d must be a finite number in"),
    (dict(w=-1), "Twist.w must be a finite number in"),
    (dict(w="1"), "Twist.w must be a finite number in .*got '1'"),
    (dict(resolution=16), r"resolution must be an integer in \[32, 1024\], got 16"),
    (dict(resolution=5000), r"resolution must be an integer in \[32, 1024\]"),
    (dict(resolution=100.5), "resolution must be an integer"),
    (dict(base="resnet50"), "unknown base 'resnet50'"),
    (dict(rules="tiny"), "did you mean 'tinynet'"),
])
def test_twist_rejects_bad_values(kwargs, match):
    args = dict(r=1.0, d=1.0, w=1.0, resolution=224) | kwargs
    with pytest.raises(tz.TinyNetZooError, match=match):
        tz.Twist(**args)


def test_from_json_rejects_garbage():
    with pytest.raises(tz.InvalidArgumentError):
        tz.Twist.from_json("{nope")
    with pytest.raises(tz.InvalidArgumentError, match="needs keys"):
        tz.Twist.from_dict({"r": 1})


def test_list_models_and_aliases():
    names = tz.list_models()
    assert names == ["efficientnet_b0", *(f"efficientnet_b-{k}" for k in (1, 2, 3, 4)), "efficientnet_lite0",
                     "mobilenetv3_large_100", *(f"tinynet_{c}" for c in "abcde")]
    assert tz.list_models("tinynet_*") == [f"tinynet_{c}" for c in "abcde"]
    assert tz.model_info("efficientnet_bm4").name == "efficientnet_b-4"
    assert tz.model_info("TinyNet_B.in1k").name == "tinynet_b"
    assert tz.list_models("nothing*") == []


def test_model_info_carries_everything():
    info = tz.model_info("tinynet_b")
    assert (info.twist.r, info.twist.d, info.twist.w, info.resolution) == (0.84, 1.1, 0.75, 188)
    assert info.macs == 200_709_360 and info.params == 3_730_562
    assert info.paper.top1 == 75.0 and info.measured.top1 == 74.946
    assert info.checkpoint == "tinynet_b.in1k"
    assert info.data_config.interpolation == "bicubic" and info.data_config.crop_pct == 0.875
    assert tz.model_info(tz.Twist(0.5, 0.5, 0.5, 112)).family == "uncatalogued"


@pytest.mark.parametrize("k, pair", [(1, "tinynet_b"), (2, "tinynet_c"), (3, "tinynet_d"), (4, "tinynet_e")])
def test_shrunken_efficientnets_land_on_paired_macs(k, pair):
    info, target = tz.model_info(f"efficientnet_b-{k}"), tz.model_info(pair).macs
    assert info.paired_with == pair and info.twist.rules == "efficientnet"
    assert 0.99 * target <= info.macs <= target
    assert land_giant(get_base("efficientnet_b0"), target) == info.twist  # the stored numbers re-derive
