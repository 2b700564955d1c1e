"""create(): timm-identical modules, class/channel swaps, backbones, and specific errors for bad input."""
import os

import pytest
import timm
import torch

import tinynet_zoo as tz
from conftest import TIMM_NAMES


@pytest.mark.parametrize("name", TIMM_NAMES)
def test_state_dict_identical_to_timm(name):
    ours, theirs = tz.create(name).state_dict(), timm.create_model(name).state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


@pytest.mark.parametrize("name", ["tinynet_e", "efficientnet_b0"])
def test_same_weights_same_logits_as_timm(name):
    theirs = timm.create_model(name).eval()
    ours = tz.create(name).eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_num_classes_in_chans_and_kwargs():
    model = tz.create("tinynet_e", num_classes=7, in_chans=1, drop_rate=0.1, drop_path_rate=0.1)
    assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 7)
    assert model.conv_stem.in_channels == 1
    assert model.pretrained_cfg["input_size"] == (1, 106, 106)


def test_features_only_backbone():
    model = tz.create("tinynet_c", features_only=True, out_indices=(2, 3, 4))
    feats = model(torch.zeros(1, 3, 128, 128))
    assert [f.shape[1] for f in feats] == model.feature_info.channels()
    assert model.feature_info.reduction() == [8, 16, 32]


def test_twist_builds_uncatalogued_size():
    twist = tz.Twist(0.5, 0.5, 0.5, 112)
    model = tz.create(twist)
    assert sum(p.numel() for p in model.parameters()) == twist.params


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_classes=-1), "num_classes must be an integer >= 0"),
    (dict(num_classes=2.5), "num_classes must be an integer"),
    (dict(num_classes=True), "num_classes must be an integer"),
    (dict(in_chans=0), "in_chans must be an integer >= 1"),
    (dict(drop_rat=0.2), "did you mean 'drop_rate'"),
    (dict(drop_rate=1.5), r"drop_rate must be a finite number in \[0, 1\)"),
    (dict(features_only=True, out_indices=(7,)), "out_indices item must be an integer in"),
    (dict(pretrained="yes"), "pretrained must be False, True, 'inherit' or a checkpoint tag"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(tz.InvalidArgumentError, match=match):
        tz.create("tinynet_e", **kwargs)


def test_unknown_name_suggests_close_match():
    with pytest.raises(tz.UnknownModelError, match="did you mean 'tinynet_a'") as err:
        tz.create("tinynet_aa")
    assert isinstance(err.value, KeyError) and isinstance(err.value, tz.TinyNetZooError)
    with pytest.raises(tz.InvalidArgumentError, match="a model name"):
        tz.create(["tinynet_a"])
    with pytest.raises(tz.BudgetError, match="outside the supported range"):
        tz.create(42)  # a number is a MAC budget


def test_create_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tz.create("tinynet_e")
    assert os.listdir(tmp_path) == []
