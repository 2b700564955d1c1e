"""`shrink --int8`: the student also as int8 ONNX calibrated on the shrink's training split and checked on its
validation split, recorded in report.json with its size and top-1 against float, or with the refusal's numbers (a
refusal never fails the run)."""
import json
from pathlib import Path

import pytest

import tinynet_zoo as tz
from tinynet_zoo.deploy.export import ExportReport
from tinynet_zoo.deploy.int8_gate import int8_data
from tinynet_zoo.images import list_images
from tinynet_zoo.shrinking import report as shrink_report
from tinynet_zoo.shrinking.report import ShrinkReport
from tinynet_zoo.training.data import scan_folder
from sample_data import export_digits

REFUSAL = ("int8 lost too much accuracy, nothing was written: top-1 90.0% float vs 70.0% int8, agreement 75.0% on "
           "40 labelled held-out images; the rule: top-1 drop <= 1 points")
GATE = {"images": 40, "labelled": True, "float_top1": 90.0, "int8_top1": 89.5, "agreement": 97.5, "passed": True,
        "float_layers": ("conv_stem",), "tries": [{"passed": False}], "max_drop": 1.0, "min_agreement": 0.98,
        "calibration_images": 40}


def card(int8):
    return ShrinkReport(90.0, 88.0, None, None, 10_000_000, 2_000_000, 500_000, 100_000, 2.0, 1.0, 64, {}, {}, 0.0,
                        int8=int8)


@pytest.fixture
def student_out(tmp_path):
    (tmp_path / "student.onnx").write_bytes(b"x" * 4_400_000)
    return tmp_path, {"student": {"folder": str(tmp_path / "student" / "best")}}


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    digits = export_digits(tmp_path_factory.mktemp("digits"), size=16, limit=80)
    return scan_folder(digits, val_fraction=0.25, seed=3)


def test_a_refused_int8_is_recorded_and_said_not_raised(student_out, splits, monkeypatch):
    out, steps = student_out
    asked = []

    def refuse(spec, path, **kwargs):
        asked.append((spec, path, {**kwargs, "calibration": None}))
        raise tz.AccuracyLossError(REFUSAL)
    monkeypatch.setattr(shrink_report, "export", refuse)
    record = shrink_report._int8(out, steps, splits)
    assert asked == [(out / "student" / "best", out / "student.int8.onnx",
                      {"precision": "int8", "calibration": None, "overwrite": True})]
    assert record["written"] is False and record["file"] is None and record["reason"] == REFUSAL
    assert json.loads(json.dumps(record)) == record  # strict JSON for report.json
    assert f"int8: not written ({REFUSAL})" in card(record).text()



def test_a_failing_quantizer_is_recorded_like_a_refusal(student_out, splits, monkeypatch):
    out, _ = student_out
    message = "onnxruntime's quantize_static could not quantize this model to int8 (ValueError: x); nothing was written"

    def fails(spec, path, **kwargs):
        raise tz.QuantizationError(message)
    monkeypatch.setattr(shrink_report, "export", fails)
    record = shrink_report._int8(out, {"student": {"folder": str(out / "student" / "best")}}, splits)
    assert (record["written"], record["reason"]) == (False, message)


def test_the_split_folder_can_be_made_again_in_the_same_place(splits, tmp_path):
    shrink_report.split_folder(splits, tmp_path / "s")
    links = sorted((p.relative_to(tmp_path), p.resolve()) for p in (tmp_path / "s").rglob("*.png"))
    shrink_report.split_folder(splits, tmp_path / "s")  # e.g. a benchmark run again into its work folder
    assert sorted((p.relative_to(tmp_path), p.resolve()) for p in (tmp_path / "s").rglob("*.png")) == links
    assert len(links) == len(splits.train) + len(splits.val)

def test_a_written_int8_records_its_size_and_top1_against_float(student_out, splits, monkeypatch):
    out, steps = student_out

    def write(spec, path, **kwargs):
        path.write_bytes(b"x" * 1_200_000)
        return ExportReport(path, "onnx", (1, 3, 64, 64), None, 0.5, (1,), 0, variant="int8", file_bytes=1_200_000,
                            int8=GATE)
    monkeypatch.setattr(shrink_report, "export", write)
    record = shrink_report._int8(out, steps, splits)
    assert {k: record[k] for k in ("written", "file", "bytes", "float_bytes", "float_top1", "int8_top1")} == {
        "written": True, "file": str(out / "student.int8.onnx"), "bytes": 1_200_000, "float_bytes": 4_400_000,
        "float_top1": 90.0, "int8_top1": 89.5}
    assert "tries" not in record and record["float_layers"] == ["conv_stem"]
    assert (f"int8: {out / 'student.int8.onnx'}, 1.20 MB (float 4.40 MB), top-1 90.0% float vs 89.5% int8 on 40 "
            "held-out images") in card(record).text()
    assert "int8" not in card(None).text()  # no line without int8


def test_int8_calibrates_on_the_training_split_and_holds_out_exactly_the_val_split(student_out, splits, monkeypatch):
    out, steps = student_out
    seen = {}

    def write(spec, path, calibration, **kwargs):  # what the export's accuracy gate reads from the folder it is given
        seen["train"] = {p.resolve() for p in list_images(calibration / "train")}
        seen["val"] = {p.resolve() for p in list_images(calibration / "val")}
        seen["data"] = int8_data(calibration, splits.classes, 32)
        raise tz.AccuracyLossError(REFUSAL)
    monkeypatch.setattr(shrink_report, "export", write)
    shrink_report._int8(out, steps, splits)
    assert seen["val"] == {p.resolve() for p, _ in splits.val} and len(seen["val"]) == 21
    assert seen["train"] == {p.resolve() for p, _ in splits.train}  # old: the whole data folder, training images too
    data = seen["data"]
    assert len(data.held_out) == len(splits.val) and len(data.calibration) == len(splits.train) == 59
    assert sorted(data.labels.tolist()) == sorted(label for _, label in splits.val)
    assert not list(out.glob(".*"))  # the links are gone, nothing left in the shrink folder


@pytest.mark.slow
def test_shrink_int8_end_to_end_on_digits(tmp_path):
    from sample_data import export_digits

    digits = export_digits(tmp_path / "digits", size=32, limit=120)
    teacher = tz.Twist(1.0, 0.5, 0.5, 32, base="efficientnet_lite0", rules="lite")
    report = tz.shrink(digits, tmp_path / "s", budget="2.5M", teacher=teacher, epochs=1, compare=False,
                       backend="onnxruntime", int8=True)
    saved = json.loads((tmp_path / "s" / "report.json").read_text())
    recorded = json.loads((tmp_path / "s" / "shrink.json").read_text())
    assert saved["int8"] == report.int8 == recorded["steps"]["int8"] and recorded["settings"]["int8"] is True
    path = tmp_path / "s" / "student.int8.onnx"
    if report.int8["written"]:  # kept: within a point of float on the data's labelled images, and smaller
        assert report.int8["labelled"] and report.int8["int8_top1"] >= report.int8["float_top1"] - 1.0
        assert path.stat().st_size == report.int8["bytes"] < report.int8["float_bytes"]
        assert report.files["int8_onnx"] == str(path)
    else:  # refused: nothing written, the numbers said, the rest of the run finished
        assert not path.exists() and "top-1" in report.int8["reason"] and "int8_onnx" not in report.files
    assert (tmp_path / "s" / "student.onnx").is_file() and report.student_latency_ms > 0
