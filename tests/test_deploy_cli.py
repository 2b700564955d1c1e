"""`tinynet-zoo export`: every spelled model spec through the one resolver, verified files, --overwrite, --json."""
import json

import numpy as np
import pytest

import tinynet_zoo as tz
from conftest import require_extra, saved_folder_and_hub
from tinynet_zoo.cli import main

require_extra("deploy")

SMALL = tz.Twist(0.3, 0.4, 0.35, 48)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    saved_folder_and_hub(root, SMALL)
    return root


@pytest.mark.parametrize("spec, args, shape, classes", [  # OpenVINO IR: the quickest verified export
    ("tinynet_e.in1k", ["--pretrained", "False", "--format", "openvino"], [1, 3, 106, 106], 1000),
    ("10M", ["--pretrained", "False", "--batch", "0"], ["N", 3, tz.for_flops("10M").resolution], 1000),
    ("FOLDER", [], [1, 3, 48, 48], 3),
    ("hf-hub:me/small", ["--batch", "2"], [2, 3, 48, 48], 3),
])
def test_export_cli_takes_every_spelled_spec(spec, args, shape, classes, saved, tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(saved / "hub"))
    out = tmp_path / "m.xml"
    spec = str(saved / "folder") if spec == "FOLDER" else spec
    assert main(["export", spec, "--out", str(out), *args, "--json"]) == 0, capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    assert data["path"] == str(out) and out.is_file() and data["max_abs_diff"] <= 1e-4
    assert data["input_shape"][:2] == shape[:2] and data["input_shape"][-1] == shape[-1]
    assert data["pretrained"] is (spec.startswith(("hf-hub:", str(saved))))  # folders bring their weights
    predictor = tz.runtime(out)
    assert predictor(np.zeros((shape[0] if shape[0] != "N" else 3, 3, shape[-1], shape[-1]), np.float32)).shape[1] \
        == classes


def test_export_cli_real_weights_and_text(tmp_path, capsys):
    out = tmp_path / "lite0.xml"
    assert main(["export", "efficientnet_lite0", "--out", str(out)]) == 0  # names default to their checkpoint
    text = capsys.readouterr().out
    assert text.startswith(f"wrote {out} (openvino, input 1x3x224x224") and "with lite0.bin" in text
    assert float(text.split("max |logit difference| to the eager model ")[1].split()[0]) <= 1e-4


def test_export_cli_never_replaces_a_file_unless_asked(tmp_path, capsys):
    out = tmp_path / "m.xml"
    out.write_text("my notes")
    assert main(["export", "10M", "--pretrained", "False", "--out", str(out)]) == 2
    assert "m.xml already exists; pass --overwrite" in capsys.readouterr().err  # the CLI names its flag
    out.unlink()
    out.with_suffix(".bin").write_text("my weights")  # the IR's other half counts too
    assert main(["export", "10M", "--pretrained", "False", "--out", str(out)]) == 2
    assert "m.bin already exists" in capsys.readouterr().err and not out.exists()
    assert main(["export", "10M", "--pretrained", "False", "--out", str(out), "--overwrite"]) == 0
    assert out.read_text().startswith("<?xml") and out.with_suffix(".bin").stat().st_size > 1000


@pytest.mark.parametrize("argv, message", [
    (["--out", "m.tflite"], "cannot tell the export format from 'm.tflite'"),
    (["--out", "m.onnx", "--format", "pte"], "format 'pte' writes .pte files"),
    (["--out", "m.pte", "--batch", "0"], "fixed batch size"),
    (["--out", "m.pte", "--variant", "int8"], "variant 'int8' is not offered: int8 files are calibrated and "
                                              "accuracy-checked: pass --int8 and --calibration DIR, or no "
                                              "calibration for sample photos; accepted"),
    (["--out", "m.pte", "--int8", "--calibration", "nowhere"], "calibration folder nowhere does not exist"),
    (["--out", "m.onnx", "--batch", "-1"], "--batch must be a batch size >= 1, or 0"),
    (["--out", "m.onnx", "--pretrained", "maybe"], "pretrained must be False, True, 'inherit'"),
])
def test_export_cli_bad_arguments_are_one_line_errors(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "10M", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not list(tmp_path.iterdir())
