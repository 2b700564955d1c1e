"""`shrink` checks its whole command before the first step: the teacher's labels, the budget at the data's
resolution, the backend, the data's size; a rerun with other options (or a damaged shrink.json) says how to go on,
and --overwrite starts the run again. Training is replaced by a recorder: no test here trains a network."""
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import tinynet_zoo as tz
from tinynet_zoo.cli import main
from tinynet_zoo.shrinking import run as shrink_run
from tinynet_zoo.training.data import scan_folder

TEACHER = tz.Twist(1.0, 0.5, 0.5, 32, base="efficientnet_lite0", rules="lite")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for name in ("cat", "dog"):
        (root / name).mkdir()
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture
def steps(monkeypatch):
    """Record the steps instead of training: each returns what a finished step records."""
    calls = []

    def train(spec, data, run, restart=False, **kwargs):
        calls.append(("train", run.name, restart))
        return {"folder": str(run / "best"), "top1": 50.0, "seconds": 0.0, "epochs": 1}

    def init(twist, teacher, data, folder, plain):
        calls.append(("init", folder.name, plain))
        return {"folder": str(folder), "seconds": 0.0}
    monkeypatch.setattr(shrink_run, "_train", train)
    monkeypatch.setattr(shrink_run, "_init", init)
    def report(*args, **kwargs):
        calls.append(("report",))
        return SimpleNamespace(to_dict=dict, text=str)
    monkeypatch.setattr(shrink_run, "write_report", report)
    return calls


def teacher_folder(tmp_path, labels, classes=2):
    model = tz.create(TEACHER, num_classes=classes)
    model.pretrained_cfg["label_names"] = labels
    tz.save_pretrained(model, tmp_path / "teacher")
    return tmp_path / "teacher"


def shrink(data, out, **kwargs):
    return tz.shrink(data, out, **{"budget": "5M", "epochs": 1, "resolution": 32, **kwargs})


@pytest.mark.parametrize("kwargs, match", [
    ({"budget": "4G"}, r"budget '4G' .* outside the supported range"),
    ({"budget": "40M"}, r"budget '40M' gives a student of .* not smaller than the teacher .* at 32 px"),
    ({"backend": "onnxrutime"}, r"unknown backend 'onnxrutime'; did you mean 'onnxruntime'"),
    ({"epochs": 0}, r"epochs must be an integer >= 1, got 0"),
    ({"val_fraction": 0.99}, r"val_fraction 0.99 .* holds out all 20 images"),
    ({"budget": None, "latency": "-3ms"}, r"latency \(ms\) must be a finite number > 0"),
])
def test_bad_options_are_refused_before_any_step(data, tmp_path, steps, kwargs, match):
    with pytest.raises(tz.TinyNetZooError, match=match):
        shrink(data, tmp_path / "out", **kwargs)
    assert steps == [] and not (tmp_path / "out" / "shrink.json").exists()  # old: the teacher trained first


def test_too_few_images_for_calibration_are_refused_before_any_step(tmp_path, steps):
    for name in ("a", "b"):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (32, 32), (i * 40, 0, 0)).save(tmp_path / "d" / name / f"{i}.png")
    with pytest.raises(tz.DataError, match="has 10 readable image.*needs at least 32"):
        shrink(tmp_path / "d", tmp_path / "out")
    assert steps == []


def test_a_teacher_fine_tuned_on_other_labels_is_not_taken_as_fine_tuned(data, tmp_path, steps):
    with pytest.raises(tz.InvalidArgumentError, match=r"fine-tuned on other classes .*'fox' vs 'dog'"):
        shrink(data, tmp_path / "out", teacher=teacher_folder(tmp_path, ["cat", "fox"]))
    with pytest.raises(tz.InvalidArgumentError, match=r"records no label names.*\(cat, dog\)"):
        shrink(data, tmp_path / "out2", teacher=teacher_folder(tmp_path / "2", None))
    assert steps == []
    shrink(data, tmp_path / "out3", teacher=teacher_folder(tmp_path / "3", ["cat", "dog"]), budget="2.5M", compare=False)
    assert ("train", "teacher", False) not in steps and steps[0] == ("init", "student-init", False)


def test_a_rerun_with_other_options_names_them_and_overwrite_starts_again(data, tmp_path, steps, capsys):
    out = tmp_path / "out"
    shrink(data, out, compare=False)
    assert [s[:2] for s in steps] == [("train", "teacher"), ("init", "student-init"), ("train", "student"),
                                      ("report",)]
    argv = ["shrink", "--data", str(data), "--out", str(out), "--budget", "4M", "--epochs", "1", "--resolution",
            "32", "--no-compare"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "started with --budget 5M, not --budget 4M" in err and "--overwrite" in err and "budget=" not in err, err
    steps.clear()
    assert main([*argv, "--overwrite"]) == 0
    assert steps[0] == ("train", "teacher", True) and ("train", "student", True) in steps  # no stale resume
    recorded = json.loads((out / "shrink.json").read_text())
    assert recorded["settings"]["budget"] == "4M" and recorded["restart"] == ["plain", "scratch", "deploy"]
    steps.clear()
    shrink(data, out, budget="4M", compare=False)  # the same command again: everything is recorded
    assert steps == [("report",)]


@pytest.mark.parametrize("text", ['{"settings": {"budget": "5M"', "[1, 2]", '{"settings": {}, "steps": 3}',
                                  b"\xff\xfe\x00"])
def test_a_damaged_shrink_json_is_named_kept_and_explained(data, tmp_path, steps, text):
    (tmp_path / "out").mkdir()
    path = tmp_path / "out" / "shrink.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = path.read_bytes()
    with pytest.raises(tz.InvalidArgumentError, match=r"shrink.json is not a (readable )?shrink record.*"
                                                      r"choose a new --out, or pass overwrite=True"):
        shrink(data, tmp_path / "out")
    assert path.read_bytes() == before and steps == []


def test_numpy_settings_are_recorded_as_plain_numbers(tmp_path):
    import numpy as np
    from tinynet_zoo.shrinking.state import ShrinkState

    state = ShrinkState(tmp_path, {"budget": np.int64(8_000_000), "latency": np.float32(3.0)})
    state.step("twist", lambda: {"macs": np.int64(7)})
    recorded = json.loads((tmp_path / "shrink.json").read_text())
    assert recorded["settings"] == {"budget": 8000000, "latency": 3.0} and recorded["steps"]["twist"] == {"macs": 7}
    assert ShrinkState(tmp_path, {"budget": 8_000_000, "latency": 3.0}).done == ["twist"]  # the same run resumes


def test_int8_is_checked_before_any_step(data, tmp_path, steps, monkeypatch):
    with pytest.raises(tz.InvalidArgumentError, match=r"int8 must be True or False, got 'yes'"):
        shrink(data, tmp_path / "out", int8="yes")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # find_spec() then reports it as not installed
    with pytest.raises(tz.BackendNotInstalledError, match=r"'onnxruntime' package.*pip install 'tinynet-zoo\[deploy\]'"):
        shrink(data, tmp_path / "out", int8=True)
    assert steps == [] and not (tmp_path / "out").exists()  # old: int8 was no option of shrink


def test_int8_is_a_recorded_setting_and_calibrates_on_the_data(data, tmp_path, steps, monkeypatch, capsys):
    given = []
    monkeypatch.setattr(shrink_run, "write_report", lambda *args, **kwargs: given.append(kwargs) or SimpleNamespace(
        to_dict=dict, text=str))
    out = tmp_path / "out"
    shrink(data, out, compare=False, int8=True)
    assert given == [{"int8_split": scan_folder(data, val_fraction=0.2, seed=0)}]  # the split every step uses
    assert json.loads((out / "shrink.json").read_text())["settings"]["int8"] is True
    argv = ["shrink", "--data", str(data), "--out", str(out), "--budget", "5M", "--epochs", "1", "--resolution",
            "32", "--no-compare"]
    assert main(argv) == 2
    assert "started with --int8, not without --int8" in capsys.readouterr().err
    given.clear()
    assert main([*argv, "--int8"]) == 0 and given == [{"int8_split": scan_folder(data)}]  # the same run resumes


def test_a_record_from_before_int8_resumes_without_it(data, tmp_path, steps):
    out = tmp_path / "out"
    shrink(data, out, compare=False)
    record = json.loads((out / "shrink.json").read_text())
    del record["settings"]["int8"]  # as written before the option existed
    (out / "shrink.json").write_text(json.dumps(record))
    steps.clear()
    shrink(data, out, compare=False)
    assert steps == [("report",)]
