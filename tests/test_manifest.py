"""weights_manifest.json: validated on load, shipped inside the wheel, no invented values."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tinynet_zoo as tz
from tinynet_zoo.weights.manifest import checkpoints, validate

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_loads_and_matches_registry():
    found = checkpoints()
    for name in tz.list_models():
        tag = tz.model_info(name).checkpoint
        assert tag is None or found[tag].model == name
    assert found["tinynet_a.in1k"].sha256 == "5d9911de836222b28e99095dff561a6600f354c05b61ea179aaa848a830bc3ca"


@pytest.mark.parametrize("tag", sorted(checkpoints()))
def test_every_manifest_record_belongs_to_a_model_and_carries_its_measured_metrics(tag):
    record = checkpoints()[tag]
    info = tz.model_info(tag)  # the tag resolves to its model, and model_info reports that checkpoint
    assert info.name == record.model and info.checkpoint == tag
    assert info.measured.top1 == record.metrics.get("imagenet_top1")
    assert info.measured.top5 == record.metrics.get("imagenet_top5")
    assert set(record.metrics) <= {"imagenet_top1", "imagenet_top5", "source"}
    assert info.paper == tz.model_info(record.model).paper  # the paper's numbers come from the registry alone


def test_measured_metrics_follow_the_checkpoint_not_the_model():
    # Lite0's default checkpoint is the PyPI file (no published evaluation); ra_in1k is timm's evaluated one
    assert tz.model_info("efficientnet_lite0").checkpoint == "efficientnet_lite0.pypi_in1k"
    assert tz.model_info("efficientnet_lite0").measured.top1 is None
    assert tz.model_info("efficientnet_lite0.ra_in1k").measured.top1 == 75.48
    assert tz.model_info("tinynet_a").measured.top1 == 77.666 and tz.model_info("tinynet_a").paper.top1 == 76.8


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update({"$schema_version": 9}), "schema_version"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"].update(sha256="abc"), "sha256 must be 64"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"].update(revision="30f4b62"), "full 40-hex"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"].update(colour="red"), "unknown fields"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"].pop("filename"), "missing fields"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"].update(key_layout="caffe"), "key_layout"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"]["metrics"].update(paper_top1=76.8), "unknown metrics"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"]["metrics"].update(imagenet_top1=177.0), "percentage"),
])
def test_schema_rejects_bad_manifests(mutate, match):
    data = json.loads((ROOT / "weights_manifest.json").read_text())
    mutate(data)
    with pytest.raises(tz.InvalidArgumentError, match=match):
        validate(data)


def test_wheel_ships_the_manifest(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True)
    wheel = next(tmp_path.glob("*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        shipped = json.loads(zf.read("tinynet_zoo/weights_manifest.json"))
        assert "tinynet_zoo/core/formulas/tiny_b0.json" in zf.namelist()
    assert shipped == json.loads((ROOT / "weights_manifest.json").read_text())
