"""`ModelConfig.of(model)`: the typed config of a built module, read once from the pretrained_cfg it carries, and
the readers that use it (model_info, inheritance, batch-norm recalibration) instead of reading the dict."""
import pytest
import torch

import tinynet_zoo as tz
from tinynet_zoo.core.registry import DataConfig
from tinynet_zoo.weights.model_config import ModelConfig, config_or_none, read_model_config, record

SMALL = tz.Twist(r=0.3, d=0.4, w=0.35, resolution=32)


def test_of_a_built_module_is_the_config_its_folder_saves(tmp_path):
    model = tz.create(SMALL, num_classes=3)
    model.pretrained_cfg["label_names"] = ["cat", "dog", "fox"]
    config = ModelConfig.of(model)
    assert (config.twist, config.name, config.num_classes, config.in_chans) == (SMALL, "twist", 3, 3)
    assert config.label_names == ("cat", "dog", "fox")
    assert config.data == DataConfig(resolution=32)
    saved = read_model_config(tz.save_pretrained(model, tmp_path / "m"))
    assert (saved.twist, saved.name, saved.num_classes, saved.label_names, saved.data) == \
        (config.twist, config.name, config.num_classes, config.label_names, config.data)


def test_of_a_catalogued_model_names_its_entry_and_follows_a_new_resolution():
    model = tz.create("tinynet_e", num_classes=10)
    record(model, label_names=[str(i) for i in range(10)], resolution=64)  # what finetune(resolution=64) records
    config = ModelConfig.of(model)
    assert (config.name, config.num_classes, config.data.resolution) == ("tinynet_e", 10, 64)
    assert config.label_names == tuple("0123456789")
    assert config.twist == tz.model_info("tinynet_e").twist


def test_of_a_features_only_backbone_reads_its_twist():
    backbone = tz.create(SMALL, features_only=True)
    assert ModelConfig.of(backbone).twist == SMALL


def test_label_names_that_do_not_fit_the_head_read_as_none_and_saving_refuses(tmp_path):
    model = tz.create(SMALL, num_classes=3)
    model.pretrained_cfg["label_names"] = ["cat", "dog"]
    assert ModelConfig.of(model).label_names is None
    with pytest.raises(tz.InvalidArgumentError, match=r"3 classes but label names \['cat', 'dog'\]"):
        tz.save_pretrained(model, tmp_path / "m")


def test_a_module_not_made_by_create_is_refused_by_name():
    import timm

    plain = timm.create_model("efficientnet_b0", pretrained=False, num_classes=3)
    with pytest.raises(tz.InvalidArgumentError, match="not made by tinynet_zoo.create .* got a EfficientNet"):
        ModelConfig.of(plain)
    assert config_or_none(plain) is None
    assert config_or_none(torch.nn.Linear(2, 2)) is None


def test_inheriting_from_a_plain_timm_module_says_what_is_wrong():
    # before: a KeyError('twist') from deep inside create
    import timm

    plain = timm.create_model("efficientnet_b0", pretrained=False)
    with pytest.raises(tz.InvalidArgumentError, match="inherit_from: this module was not made by tinynet_zoo"):
        tz.create(tz.Twist(r=0.3, d=0.4, w=0.35, resolution=32), pretrained="inherit", inherit_from=plain)


def test_model_info_of_a_built_module_reads_its_typed_config():
    info = tz.model_info(tz.create("tinynet_e"))
    assert info.twist == tz.model_info("tinynet_e").twist
    assert "tinynet_e" in info.description
