"""weights_manifest.json: validated on load, shipped inside the wheel, no invented values."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tinynet_zoo as tz
from tinynet_zoo.manifest import checkpoints, validate

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_loads_and_matches_registry():
    found = checkpoints()
    for name in tz.list_models():
        tag = tz.model_info(name).checkpoint
        assert tag is None or found[tag].model == name
    assert found["tinynet_a.in1k"].sha256 == "5d9911de836222b28e99095dff561a6600f354c05b61ea179aaa848a830bc3ca"


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.update({"$schema_version": 9}), "schema_version"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"].update(sha256="abc"), "sha256 must be 64"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"].update(revision="30f4b62"), "full 40-hex"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"].update(colour="red"), "unknown fields"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"].pop("filename"), "missing fields"),
    (lambda d: d["checkpoints"]["tinynet_a.in1k"].update(key_layout="caffe"), "key_layout"),
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
        assert "tinynet_zoo/formulas/tiny_b0.json" in zf.namelist()
    assert shipped == json.loads((ROOT / "weights_manifest.json").read_text())
