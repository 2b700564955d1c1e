"""Useful weights at any size: inheritance by channel importance, batch-norm recalibration with its guard,
distillation, fine-tuning defaults (head warm start), and `shrink` end to end (resumable, with its bad inputs)."""
import json
import shutil

import pytest
import torch

import tinynet_zoo as tz
from tinynet_zoo.cli import main
from tinynet_zoo.core.flops import count_macs
from tinynet_zoo.shrinking import run as shrink_run
from sample_data import export_digits
from tinynet_zoo.weights.channels import group_sizes, key_groups
from tinynet_zoo.weights.inherit import inherit, leading_importance, select, weight_importance

TEACHER = tz.Twist(1.0, 0.5, 0.5, 64, base="efficientnet_lite0", rules="lite")
WIDE = tz.Twist(0.6, 1.0, 1.0, 64)  # B0 (squeeze-excite, swish) at 64 px


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return export_digits(tmp_path_factory.mktemp("digits64"), size=64, limit=120)


@pytest.fixture(scope="module")
def teacher(digits, tmp_path_factory):
    """A small teacher fine-tuned on the digits (its best/ folder)."""
    root = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(0)
    tz.save_pretrained(tz.create(TEACHER), root / "init")
    tz.finetune(root / "init", digits, root / "run", epochs=2, progress=False)
    return root / "run" / "best"


MNV3_WIDE = tz.Twist(0.6, 1.0, 1.0, 64, base="mobilenetv3_large_100", rules="mobilenetv3")


@pytest.mark.parametrize("wide, twist", [
    (WIDE, tz.Twist(0.6, 0.7, 0.6, 64)), (WIDE, tz.Twist(0.6, 1.0, 0.75, 64, rules="efficientnet")),
    (MNV3_WIDE, tz.Twist(0.6, 0.6, 0.8, 64, base="mobilenetv3_large_100", rules="mobilenetv3"))])
def test_every_tensor_that_shares_channels_keeps_the_same_ones(wide, twist):
    torch.manual_seed(0)
    big, small = tz.create(wide), tz.create(twist)
    for module in big.modules():  # distinct statistics, so a wrong pick shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.1, 2.0)
            module.running_mean.data.normal_()
    importance = weight_importance(big.state_dict(), wide.arch)
    state = inherit(big.state_dict(), wide.arch, small.state_dict(), twist.arch, importance)
    kept = select(importance, wide.arch, twist.arch, 1000)
    for key, dims in key_groups(twist.arch).items():
        source = big.state_dict().get(key)
        if source is None:
            continue
        for dim, group in enumerate(dims):
            if group is not None and kept[group].numel() < source.shape[dim]:
                source = source.index_select(dim, kept[group])
        overlap = tuple(slice(0, n) for n in state[key].shape)
        assert torch.equal(state[key], source[overlap]), key
    sizes = group_sizes(twist.arch)
    assert all(kept[g].numel() == min(n, group_sizes(wide.arch)[g]) for g, n in sizes.items() if g != "classes")
    small.load_state_dict(state)  # every shape fits


def test_a_same_size_student_is_the_teacher():
    torch.manual_seed(0)
    teacher = tz.create(TEACHER)
    state = inherit(teacher.state_dict(), TEACHER.arch, tz.create(TEACHER).state_dict(), TEACHER.arch,
                    weight_importance(teacher.state_dict(), TEACHER.arch))
    assert all(torch.equal(state[k], v) for k, v in teacher.state_dict().items())
    leading = inherit(teacher.state_dict(), TEACHER.arch, tz.create(TEACHER).state_dict(), TEACHER.arch,
                      leading_importance(TEACHER.arch))
    assert all(torch.equal(leading[k], v) for k, v in teacher.state_dict().items())


def test_inherit_from_a_fine_tuned_folder_with_calibration(teacher, digits, tmp_path):
    student_twist = tz.Twist(0.8, 0.5, 0.4, 52, base="efficientnet_lite0", rules="lite")
    student = tz.create(student_twist, pretrained="inherit", inherit_from=teacher, calibration=digits)
    assert student.num_classes == 10  # the teacher's classes
    few = tmp_path / "few"
    few.mkdir()
    for image in sorted((digits / "0").iterdir())[:5]:
        shutil.copy(image, few / image.name)
    with pytest.raises(tz.DataError, match=r"has 5 readable image\(s\); at least 32 are needed"):
        tz.create(student_twist, pretrained="inherit", inherit_from=teacher, calibration=few)
    with pytest.raises(tz.DataError, match="does not exist"):
        tz.create(student_twist, pretrained="inherit", inherit_from=teacher, calibration=tmp_path / "missing")
    with pytest.raises(tz.InvalidArgumentError, match="cannot pass weights to a student on efficientnet_b0"):
        tz.create(tz.Twist(0.5, 0.5, 0.5, 64), pretrained="inherit", inherit_from=teacher)
    with pytest.raises(tz.InvalidArgumentError, match="inherit_from and calibration choose what"):
        tz.create(student_twist, calibration=digits)


def test_recalibration_is_kept_only_when_it_helps(teacher, digits):
    student = tz.create(tz.Twist(0.8, 0.5, 0.4, 52, base="efficientnet_lite0", rules="lite"), pretrained="inherit",
                        inherit_from=teacher, calibration=digits)
    reference = tz.create(teacher)
    skipped = tz.recalibrate_bn(student, digits, reference=reference)  # 120 images: below the rule's 500
    assert not skipped.applied and "at least 500 are needed" in skipped.reason
    before = {k: v.clone() for k, v in student.state_dict().items()}
    report = tz.recalibrate_bn(student, digits, reference=reference, min_images=50)
    assert report.images == 120 and report.before is not None and report.after is not None
    if report.applied:
        assert report.after < report.before
    else:  # kept the old statistics exactly
        assert all(torch.equal(before[k], v) for k, v in student.state_dict().items())
    with pytest.raises(tz.InvalidArgumentError, match="needs a reference model .* or labelled batches"):
        tz.recalibrate_bn(student, digits)


@pytest.mark.slow
def test_distillation_uses_the_teacher_and_caches_it_without_augmentation(teacher, digits, monkeypatch):
    calls = []
    real = tz.create

    def counting_create(spec, *args, **kwargs):
        model = real(spec, *args, **kwargs)
        if spec == teacher:
            model.register_forward_hook(lambda module, inputs, output: calls.append(len(inputs[0])))
        return model
    monkeypatch.setattr("tinynet_zoo.training.finetune.create", counting_create)
    student = tz.Twist(0.8, 0.5, 0.4, 52, base="efficientnet_lite0", rules="lite")
    counts = {}
    for epochs, augment in ((1, "none"), (2, "none"), (2, "light")):
        calls.clear()
        result = tz.finetune(student, digits, teacher=teacher, pretrained=False, epochs=epochs, augment=augment,
                             batch_size=16, progress=False)
        counts[epochs, augment] = sum(calls)  # images through the teacher
    assert counts[1, "none"] % 16 == 0  # full batches of 16 (a last, partial batch is dropped)
    # the second epoch sends only the images the first one dropped, at most one batch's worth
    assert counts[1, "none"] <= counts[2, "none"] < counts[1, "none"] + 16
    assert counts[2, "light"] == 2 * counts[1, "none"]  # augmented views are new images: no cache
    assert len(result.history) == 2
    with pytest.raises(tz.InvalidArgumentError, match="teacher predicts 1000 classes but the data has 10"):
        tz.finetune(student, digits, teacher="efficientnet_lite0", pretrained=False, epochs=1, progress=False)


def test_defaults_warm_start_a_new_head_on_pretrained_weights(teacher, digits):
    result = tz.finetune(teacher, digits, epochs=1, progress=False)  # 10 classes: the head is kept
    assert result.head_warm_start == {}
    folder = teacher.parent.parent / "five"
    (folder / "a").mkdir(parents=True)
    (folder / "b").mkdir()
    for i, image in enumerate(sorted((digits / "1").iterdir())[:12]):
        (folder / "ab"[i % 2] / image.name).write_bytes(image.read_bytes())
    result = tz.finetune(teacher, folder, epochs=1, progress=False)  # 2 classes: a new head, fitted first
    assert result.head_warm_start["probe_images"] > 0


@pytest.mark.slow
def test_shrink_end_to_end_resumes_per_step(teacher, digits, tmp_path, monkeypatch):
    budget = TEACHER.macs / 4
    calls = []
    real = shrink_run._train

    def interrupted(spec, data, run, **kwargs):
        calls.append(run.name)
        if run.name == "plain":
            raise KeyboardInterrupt
        return real(spec, data, run, **kwargs)
    monkeypatch.setattr(shrink_run, "_train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tz.shrink(digits, tmp_path / "s", budget=budget, teacher=teacher, epochs=1, backend="onnxruntime")
    monkeypatch.setattr(shrink_run, "_train", lambda *a, **k: calls.append(a[2].name) or real(*a, **k))
    report = tz.shrink(digits, tmp_path / "s", budget=budget, teacher=teacher, epochs=1, backend="onnxruntime")
    assert calls == ["student", "plain", "plain", "scratch"]  # the finished steps were not run again
    # MACs with the data's 10-class head (the budget counts ImageNet's 1000, as the catalogue does)
    assert report.teacher_macs == count_macs(TEACHER.arch, 64, 10) < TEACHER.macs
    assert report.student_macs == count_macs(tz.Twist.from_dict(report.twist).arch, report.twist["resolution"], 10)
    assert report.student_macs <= budget
    saved = json.loads((tmp_path / "s" / "report.json").read_text())
    for key in ("teacher_top1", "student_top1", "scratch_top1", "student_macs", "student_latency_ms", "files"):
        assert saved[key] is not None
    assert (tmp_path / "s" / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert saved["backend"] == "onnxruntime" and set(saved["step_seconds"]) >= {"student", "scratch", "deploy"}
    assert saved["teacher_params"] > saved["student_params"] > 0
    assert tz.create(saved["files"]["student"]).pretrained_cfg["twist"] == saved["twist"]


@pytest.mark.parametrize("argv, match", [
    (["--budget", "40M"], "not smaller than the teacher"),
    (["--budget", "lots"], "cannot parse budget 'lots'"),
    (["--latency", "fast"], "cannot parse latency 'fast'"),
    (["--budget", "2M", "--teacher", "tinynet_zz"], "unknown model 'tinynet_zz'"),
])
def test_shrink_bad_input(teacher, digits, tmp_path, capsys, argv, match):
    assert main(["shrink", "--data", str(digits), "--out", str(tmp_path / "s"), "--teacher", str(teacher),
                 "--epochs", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and match in err, err


def test_shrink_refuses_no_images_and_other_settings(teacher, digits, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(tz.InvalidArgumentError, match="no readable images"):
        tz.shrink(tmp_path / "empty", tmp_path / "s", budget="2M", teacher=teacher)
    with pytest.raises(tz.InvalidArgumentError, match="give the student's budget"):
        tz.shrink(digits, tmp_path / "s2", teacher=teacher, epochs=1)
    with pytest.raises(tz.InvalidArgumentError, match="cannot pass weights"):
        tz.shrink(digits, tmp_path / "s3", budget="2M", teacher=teacher, base="efficientnet_b0", epochs=1)


def test_shrink_to_a_latency_searches_at_the_data_resolution(teacher, digits, tmp_path, monkeypatch):
    real = shrink_run.for_latency
    seen = []

    def modelled(ms, **kwargs):  # a latency model in place of timing: 1 ms per million MACs
        return real(ms, measure=lambda twist: seen.append(twist) or twist.macs / 1e6, **kwargs)
    monkeypatch.setattr(shrink_run, "for_latency", modelled)
    twist = shrink_run._twist(TEACHER, None, "3ms", 64, "onnxruntime")
    # r is relative to the data's 64 px (the students see those images resized to r * 64)
    assert all(t.resolution <= 64 and abs(t.resolution - t.r * 64) <= 4 for t in seen) and len(seen) >= 3
    assert twist.macs <= 3e6 and max(t.macs for t in seen if t.macs <= 3e6) == twist.macs
    assert shrink_run._twist(TEACHER, None, "1s", 64, "onnxruntime").macs < TEACHER.macs  # capped by the teacher
