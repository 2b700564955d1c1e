"""Model folders: config.json is read and checked once (every field, either format), `extra=` cannot replace its
keys, info and create agree on what a folder is, and saving never removes a folder it cannot prove it made (saves
into one folder from several processes take turns)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tinynet_zoo as tz
from tinynet_zoo.weights.folder import MARKER, recover
from tinynet_zoo.weights.model_config import ModelConfig, read_model_config

SMALL = tz.Twist(r=0.3, d=0.4, w=0.35, resolution=32)
LABELS = ["cat", "dog", "fox"]
FIXTURES = Path(__file__).parent / "fixtures"


def _model(twist=SMALL, num_classes=3, labels=LABELS):
    torch.manual_seed(0)
    model = tz.create(twist, num_classes=num_classes)
    model.pretrained_cfg["label_names"] = labels
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return tz.save_pretrained(_model(), tmp_path_factory.mktemp("saved") / "m")


def _edited(saved, tmp_path, change):
    folder = Path(shutil.copytree(saved, tmp_path / "m"))
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _cfg(key, value):
    return lambda c: c["pretrained_cfg"].update({key: value})


@pytest.mark.parametrize("change, match", [
    (lambda c: c.update(label_names="abc"), r"label_names must be a list of 3 non-empty strings, got \"abc\""),
    (lambda c: c.update(label_names=["cat", "cat", "dog"]), "label_names must be distinct"),
    (lambda c: c.update(num_classes="3"), "num_classes must be an integer >= 0, got '3'"),
    (_cfg("input_size", [3, -32, -32]), r"input resolution must be an integer in \[32, 1024\], got -32"),
    (_cfg("mean", [float("nan"), 0.4, 0.4]), "mean item must be a finite number, got nan"),
    (_cfg("std", [0.2, 0.0, 0.2]), r"std item must be a finite number > 0, got 0.0"),
    (_cfg("interpolation", "bicubc"), "unknown interpolation 'bicubc'; did you mean 'bicubic'"),
    (lambda c: c["twist"].update(base="mobilenet_v9"), "unknown base 'mobilenet_v9'"),
    (lambda c: c["model_args"].update(global_pool="median"), "unknown global_pool 'median'"),
    (lambda c: c.update(num_features=999), "num_features must be 1280"),
    (lambda c: c.update(metrics="great"), "metrics must be a JSON object"),
])
def test_hand_edited_config_fields_are_refused_by_create_and_info(saved, tmp_path, change, match):
    folder = _edited(saved, tmp_path, change)
    for load in (tz.create, tz.model_info):
        with pytest.raises(tz.IncompatibleCheckpointError, match=f"config.json is not a valid model config: {match}"):
            load(folder)


def test_deeply_nested_config_is_refused_naming_the_file(saved, tmp_path):
    folder = Path(shutil.copytree(saved, tmp_path / "m"))
    (folder / "config.json").write_text('{"library": "tinynet_zoo", "twist": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(tz.IncompatibleCheckpointError, match=f"{folder / 'config.json'} is nested too deeply"):
        tz.model_info(folder)


def test_info_refuses_a_folder_whose_weights_are_another_models(saved, tmp_path):
    other = tz.save_pretrained(_model(SMALL.replace(w=0.5), 5, list("abcde")), tmp_path / "other")
    folder = Path(shutil.copytree(saved, tmp_path / "m"))
    shutil.copy(other / "model.safetensors", folder / "model.safetensors")
    for load in (tz.create, tz.model_info):
        with pytest.raises(tz.IncompatibleCheckpointError, match="model.safetensors does not match its config.json: "
                                                                 r"conv_head.weight has shape \[1280, 160, 1, 1\].* \(expected \[1280, 112, 1, 1\]\)"):
            load(folder)


@pytest.mark.parametrize("key", ["num_classes", "label_names", "twist", "pretrained_cfg"])
def test_extra_may_not_replace_the_configs_own_keys(tmp_path, key):
    with pytest.raises(tz.InvalidArgumentError, match=rf"extra keys \['{key}'\] are not allowed"):
        tz.save_pretrained(_model(), tmp_path / "m", extra={key: 10})
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("labels, match", [("abc", "label names 'abc'; give a list with one name per class"),
                                           ([1, 2, 3], "label_names must be a list of 3 non-empty strings"),
                                           (["a", "a", "b"], "label_names must be distinct")])
def test_a_model_whose_labels_no_folder_could_hold_is_refused_before_saving(tmp_path, labels, match):
    with pytest.raises(tz.InvalidArgumentError, match=match):
        tz.save_pretrained(_model(labels=labels), tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_model_config_round_trips_and_gives_timms_pretrained_cfg(saved, tmp_path):
    tz.save_pretrained(_model(), tmp_path / "m", metrics={"top1": 50.0}, extra={"dataset": "pets"})
    on_disk = json.loads((tmp_path / "m" / "config.json").read_text())
    config = read_model_config(tmp_path / "m")
    assert isinstance(config, ModelConfig) and config.label_names == tuple(LABELS) and config.in_chans == 3
    assert config.extra == {"dataset": "pets"} and config.metrics == {"top1": 50.0}
    assert config.to_dict() == on_disk and config.pretrained_cfg() == on_disk["pretrained_cfg"]


def test_first_format_fixture_reads_into_the_same_config():
    config = read_model_config(FIXTURES / "format1_twist")
    assert config.twist == tz.Twist(0.3, 0.1, 0.1, 32, rules="efficientnet") and config.name == "twist"
    assert config.label_names == ("cat", "dog", "fox") and config.data.resolution == 32
    assert config.metrics == {"val_top1": 50.0} and config.extra == {}


@pytest.mark.parametrize("hidden, names", [
    (".mymodel.backup-2024", ("README.md", "config.json")),
    (".mymodel.old.1", ("README.md", "config.json", "model.safetensors")),
    (".mymodel.keep", ()),
])
def test_saving_leaves_the_users_hidden_folders_beside_it_alone(tmp_path, hidden, names):
    user = tmp_path / hidden
    user.mkdir()
    for name in names:
        (user / name).write_text(f"mine: {name}")
    tz.save_pretrained(_model(), tmp_path / "mymodel")
    tz.save_pretrained(_model(), tmp_path / "mymodel")  # replaces our own folder
    assert sorted(p.name for p in user.iterdir()) == sorted(names)
    assert all((user / name).read_text() == f"mine: {name}" for name in names)


def test_an_interrupted_swap_is_still_undone(saved, tmp_path):
    aside = Path(shutil.copytree(saved, tmp_path / ".m.old.123"))
    (aside / MARKER).write_text("")
    staging = tmp_path / ".m.abc"
    staging.mkdir()
    (staging / MARKER).write_text("")
    (staging / "model.safetensors").write_bytes(b"half")
    recover(tmp_path / "m")
    assert sorted(os.listdir(tmp_path)) == [".m.lock", "m"]
    assert sorted(os.listdir(tmp_path / "m")) == ["README.md", "config.json", "model.safetensors"]
    assert tz.create(tmp_path / "m").pretrained_cfg["label_names"] == LABELS


SAVER = """
import sys, torch, tinynet_zoo as tz
torch.set_num_threads(1)
torch.manual_seed(int(sys.argv[2]))
model = tz.create(tz.Twist(r=0.3, d=0.4, w=0.35, resolution=32), num_classes=3)
for i in range(3):
    tz.save_pretrained(model, sys.argv[1], metrics={"writer": int(sys.argv[2]), "save": i})
"""


@pytest.mark.slow
def test_saves_from_several_processes_into_one_folder_all_succeed(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path / "shared"), str(k)],
                              stderr=subprocess.PIPE, text=True) for k in range(3)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert sorted(os.listdir(tmp_path)) == [".shared.lock", "shared"]
    config = read_model_config(tmp_path / "shared")
    assert config.metrics["save"] == 2 and config.num_classes == 3
    assert tz.create(tmp_path / "shared").num_classes == 3


def _save_in_progress(folder, marker=None):
    """A hidden working folder of a save into another target, as a running save leaves it."""
    folder.mkdir()
    (folder / MARKER).write_text(marker if marker is not None else json.dumps({"tinynet_zoo_save": "model.v2"}))
    (folder / "model.safetensors").write_bytes(b"being written")
    return folder


@pytest.mark.parametrize("hidden", [".model.v2.ab12cd34", ".model.v2.old.4242"])
@pytest.mark.parametrize("marker", [None, ""], ids=["marked", "marked-by-an-earlier-release"])
def test_a_save_never_touches_the_working_folders_of_a_save_into_another_folder(saved, tmp_path, hidden, marker):
    other = _save_in_progress(tmp_path / hidden, marker)
    recover(tmp_path / "model")
    tz.save_pretrained(_model(), tmp_path / "model")
    tz.save_pretrained(_model(), tmp_path / "model")  # replaces our own folder
    assert sorted(p.name for p in other.iterdir()) == [MARKER, "model.safetensors"]
    assert (other / "model.safetensors").read_bytes() == b"being written"


def test_a_path_with_a_tilde_is_saved_in_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    assert tz.save_pretrained(_model(), "~/m") == tmp_path / "home" / "m"
    assert sorted(os.listdir(tmp_path)) == ["home"]
    assert sorted(os.listdir(tmp_path / "home" / "m")) == ["README.md", "config.json", "model.safetensors"]
    recover("~/m")
    assert sorted(os.listdir(tmp_path / "home")) == [".m.lock", "m"]


def test_saving_into_the_current_folder_writes_there_and_keeps_it(tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for _ in range(2):  # into the empty folder, then over our own model folder
        assert tz.save_pretrained(_model(), ".") == here
        assert os.getcwd() == str(here) and os.path.samefile(".", here)  # the working folder itself stays
        assert sorted(os.listdir(here)) == ["README.md", "config.json", "model.safetensors"]
    assert sorted(os.listdir(tmp_path)) == [".here.lock", "here"]
    assert tz.create(".").pretrained_cfg["label_names"] == LABELS
