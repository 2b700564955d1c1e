"""Model folders in timm's hub format: plain timm loads catalogued ones (a process that never imports tinynet_zoo),
the zoo's timm entry points load every twist, the registration is lazy and idempotent, and folders of the first
format (a fixture written by tinynet_zoo 0.1.0) still load."""
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from timm.models import load_checkpoint, model_entrypoint
from timm.models._hub import load_model_config_from_path
from timm.models._pretrained import PretrainedCfg

import tinynet_zoo as tz
from conftest import TIMM_NAMES, hub_cache_entry
from tinynet_zoo.core.bases import get_base
from tinynet_zoo.core.module import TIMM_BUILTIN
from tinynet_zoo.core.registry import ENTRIES
from tinynet_zoo.weights.folder import is_our_folder
from tinynet_zoo.weights.model_config import read_model_config

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = tz.Twist(0.3, 0.4, 0.35, 48)
LABELS = ["ant", "bee", "cat", "dog", "eel"]


def _perturbed(model):
    """Every weight moved off its init (and BN statistics set), so a wrong or partial load changes the logits."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.2)
    return model.eval()


def _logits(model, x):
    with torch.no_grad():
        return model.eval()(x)


def _save(spec, folder, **kwargs):
    model = _perturbed(tz.create(spec, num_classes=5, **kwargs))
    model.pretrained_cfg["label_names"] = list(LABELS)
    tz.save_pretrained(model, folder)
    return model


@pytest.fixture(scope="module")
def timm_folders(tmp_path_factory):
    """A saved folder per catalogued model timm also registers, a local hub cache holding one, and the logits."""
    root = tmp_path_factory.mktemp("timm_folders")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    expected, threads = {"input": x}, torch.get_num_threads()
    torch.set_num_threads(1)  # as the process that compares (OMP_NUM_THREADS=1): the same sums in the same order
    try:
        for name in TIMM_NAMES:
            expected[name] = _logits(_save(name, root / name), x)
    finally:
        torch.set_num_threads(threads)
    hub_cache_entry(root / "hub", "me/tiny-e", root / "tinynet_e")
    save_file(expected, str(root / "expected.safetensors"))
    return root


PLAIN_TIMM = """
import sys, timm, torch
from safetensors.torch import load_file
root = sys.argv[1]
expected = load_file(root + "/expected.safetensors")
for spec, name in [*((f"local-dir:{root}/{n}", n) for n in sys.argv[2:]), ("hf-hub:me/tiny-e", "tinynet_e")]:
    model = timm.create_model(spec, pretrained=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(expected["input"]), expected[name], rtol=0, atol=0)
    cfg = timm.data.resolve_data_config({}, model=model)
    assert model.pretrained_cfg["label_names"] == ["ant", "bee", "cat", "dog", "eel"], spec
    print(spec, type(model).__name__, model.num_classes, tuple(cfg["input_size"]), cfg["crop_pct"])
print("tinynet_zoo imported:", "tinynet_zoo" in sys.modules)
import tinynet_zoo  # after timm: importing the package registers the zoo's names at once
print(timm.is_model("efficientnet_bm3"), timm.is_model("tinynet_twist"))
"""


@pytest.mark.slow
def test_plain_timm_loads_catalogued_folders_with_identical_logits(timm_folders):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(timm_folders / "hub"), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", PLAIN_TIMM, str(timm_folders), *TIMM_NAMES], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[-2:] == ["tinynet_zoo imported: False", "True True"] and len(lines) == len(TIMM_NAMES) + 3
    info = tz.model_info("tinynet_b")
    assert f"local-dir:{timm_folders}/tinynet_b EfficientNet 5 (3, {info.resolution}, {info.resolution}) " \
           f"{info.data_config.crop_pct}" in lines


@pytest.mark.parametrize("name", ["tinynet_b", "efficientnet_lite0"])
def test_config_is_timms_hub_format(timm_folders, name):
    config = json.loads((timm_folders / name / "config.json").read_text())
    assert config["architecture"] == name and config["num_classes"] == 5 and config["label_names"] == LABELS
    assert config["num_features"] == tz.model_info(name).twist.arch.head_chs and "model_args" not in config
    assert set(config["pretrained_cfg"]) <= {f.name for f in dataclasses.fields(PretrainedCfg)}
    assert tz.Twist.from_dict(config["twist"]) == tz.model_info(name).twist and config["format"] == 2
    pretrained_cfg, arch, model_args = load_model_config_from_path(timm_folders / name)  # timm's own parser
    PretrainedCfg(**pretrained_cfg)
    assert (arch, model_args, pretrained_cfg["num_classes"]) == (name, {}, 5)
    assert "library_name: timm" in (timm_folders / name / "README.md").read_text()


LAZY = """
import json, sys, warnings
warnings.filterwarnings("error", message="Overwriting")  # timm's warning when a name is registered over another
import tinynet_zoo as tz
from tinynet_zoo.core.registry import ENTRIES
tz.for_flops(5e7)
assert "timm" not in sys.modules
import timm
own = sorted(n for n in timm.list_models() if n in {e.timm_name for e in ENTRIES})
assert not timm.is_model("tinynet_twist")  # tinynet_zoo was imported before timm: nothing registered yet
first = tz.register_timm()
assert tz.register_timm() == first
print(json.dumps({"own": own, "registered": first, "bm2": timm.models.model_entrypoint("efficientnet_bm2").__module__}))
"""


@pytest.mark.slow
def test_registration_is_lazy_and_leaves_timms_own_names():
    out = subprocess.run([sys.executable, "-c", LAZY], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout) == {"own": sorted(TIMM_BUILTIN), "bm2": "tinynet_zoo.timm_entry", "registered": [
        "efficientnet_bm1", "efficientnet_bm2", "efficientnet_bm3", "efficientnet_bm4", "tinynet_twist"]}


def test_register_timm_is_idempotent_in_process():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # timm warns when a name is registered over another
        first, second = tz.register_timm(), tz.register_timm()
    assert first == second == ["efficientnet_bm1", "efficientnet_bm2", "efficientnet_bm3", "efficientnet_bm4",
                               "tinynet_twist"]
    for name in TIMM_BUILTIN:  # left to timm: its own module for the base's class
        assert model_entrypoint(name).__module__ == get_base(tz.model_info(name).twist.base).timm.module
    assert model_entrypoint("tinynet_twist").__module__ == "tinynet_zoo.timm_entry"


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.timm_name not in TIMM_BUILTIN], ids=lambda e: e.timm_name)
def test_timm_create_model_builds_the_zoos_names(entry):
    tz.register_timm()
    with torch.device("meta"):
        theirs, ours = timm.create_model(entry.timm_name), tz.create(entry.name)
    assert {k: v.shape for k, v in theirs.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
    assert sum(p.numel() for p in theirs.parameters()) == entry.twist.params
    assert timm.data.resolve_data_config({}, model=theirs)["input_size"] == (3, entry.twist.resolution,
                                                                              entry.twist.resolution)


def test_generic_twist_entry_checkpoints_and_backbones(tmp_path):
    tz.register_timm()
    ours = _perturbed(tz.create(SMALL, num_classes=5))
    theirs = timm.create_model("tinynet_twist", twist=SMALL.to_dict(), num_classes=5)
    assert timm.data.resolve_data_config({}, model=theirs)["input_size"] == (3, 48, 48)
    save_file(ours.state_dict(), str(tmp_path / "w.safetensors"))
    load_checkpoint(theirs, str(tmp_path / "w.safetensors"))  # what timm's validate.py --checkpoint does
    x = torch.randn(2, 3, 48, 48)
    torch.testing.assert_close(_logits(theirs, x), _logits(ours, x), rtol=0, atol=0)
    backbone = timm.create_model("tinynet_twist", twist=SMALL, features_only=True, out_indices=(3, 4))
    assert backbone.feature_info.channels() == tz.create(SMALL, features_only=True,
                                                        out_indices=(3, 4)).feature_info.channels()
    assert [f.shape[1] for f in backbone(torch.zeros(1, 3, 64, 64))] == backbone.feature_info.channels()
    with pytest.raises(tz.InvalidArgumentError, match="tinynet_twist needs twist="):
        timm.create_model("tinynet_twist")
    # timm's own export of a model made through the entry round-trips with timm alone (the twist is a model arg)
    timm.models.save_for_hf(theirs, tmp_path / "timm_export")
    again = timm.create_model(f"local-dir:{tmp_path / 'timm_export'}", pretrained=True)
    torch.testing.assert_close(_logits(again, x), _logits(ours, x), rtol=0, atol=0)


def test_twist_and_shrunken_folders_load_through_timm(tmp_path, monkeypatch):
    import huggingface_hub.constants

    tz.register_timm()
    x = torch.randn(2, 1, 64, 64)
    specs = {"twist": SMALL, "efficientnet_b-2": "efficientnet_bm2"}
    for label, spec in specs.items():
        model = _save(spec, tmp_path / label, in_chans=1, global_pool="max" if label == "twist" else "avg")
        loaded = timm.create_model(f"local-dir:{tmp_path / label}", pretrained=True)
        torch.testing.assert_close(_logits(loaded, x), _logits(model, x), rtol=0, atol=0)
        assert loaded.pretrained_cfg["label_names"] == LABELS and loaded.pretrained_cfg["input_size"][0] == 1
        again = tz.create(tmp_path / label)
        torch.testing.assert_close(_logits(again, x), _logits(model, x), rtol=0, atol=0)
        assert again.pretrained_cfg["architecture"] == label and read_model_config(tmp_path / label).in_chans == 1
    config = json.loads((tmp_path / "twist" / "config.json").read_text())
    assert config["architecture"] == "tinynet_twist" and config["model_args"]["twist"] == SMALL.to_dict()
    assert config["model_args"]["global_pool"] == "max"
    assert json.loads((tmp_path / "efficientnet_b-2" / "config.json").read_text())["architecture"] == "efficientnet_bm2"
    hub_cache_entry(tmp_path / "hub", "me/twist", tmp_path / "twist")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    from_hub = timm.create_model("hf-hub:me/twist", pretrained=True)
    torch.testing.assert_close(_logits(from_hub, x), _logits(tz.create(tmp_path / "twist"), x), rtol=0, atol=0)


@pytest.mark.parametrize("change, match", [
    (lambda c: c.update(architecture="tinynet_a"), "architecture 'tinynet_a' .* does not build its twist"),
    (lambda c: c["model_args"]["twist"].update(w=0.5), "does not build its twist"),
    (lambda c: c.update(architecture="resnet50"), "does not build its twist"),
    (lambda c: c.pop("pretrained_cfg"), "not a valid model config"),
    (lambda c: c["pretrained_cfg"].pop("input_size"), "not a valid model config"),
    (lambda c: c.update(label_names=["a"]), "lists 1 class names for 5 classes"),
    (lambda c: c.update(format=3), "format 3; this tinynet_zoo reads up to 2"),
])
def test_inconsistent_configs_are_refused(tmp_path, change, match):
    _save(SMALL, tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    change(config)
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(tz.IncompatibleCheckpointError, match=match):
        tz.create(tmp_path / "m")
    assert not is_our_folder(tmp_path / "m")


def test_first_format_folders_still_load_and_resave_in_timms_format(tmp_path):
    old = FIXTURES / "format1_twist"
    assert json.loads((old / "config.json").read_text())["format"] == 1
    check = load_file(str(FIXTURES / "format1_twist.check.safetensors"))
    model = tz.create(old)
    logits = _logits(model, check["input"])  # another process wrote the file: thread counts may round differently
    torch.testing.assert_close(logits, check["logits"], rtol=1e-5, atol=1e-5)
    assert model.pretrained_cfg["label_names"] == ["cat", "dog", "fox"] and model.num_classes == 3
    info = tz.model_info(old)
    assert info.twist == tz.Twist(0.3, 0.1, 0.1, 32, rules="efficientnet") and info.resolution == 32
    assert is_our_folder(old)
    copy = shutil.copytree(old, tmp_path / "copy")
    tz.save_pretrained(model, copy)  # our own folder: replaced whole, now in timm's format
    assert json.loads((copy / "config.json").read_text())["format"] == 2 and sorted(os.listdir(copy)) == [
        "README.md", "config.json", "model.safetensors"]
    tz.register_timm()
    loaded = timm.create_model(f"local-dir:{copy}", pretrained=True)
    torch.testing.assert_close(_logits(loaded, check["input"]), logits, rtol=0, atol=0)
