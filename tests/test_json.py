"""Strict JSON: every command's --json output, and every JSON file the package writes, parses with NaN and
Infinity rejected (a non-finite number is written as null)."""
import json
import math
from pathlib import Path

import pytest
from PIL import Image

import tinynet_zoo as tz
from tinynet_zoo.cli import build_parser, main
from tinynet_zoo.files import json_text
from conftest import missing_extra
from sample_data import export_digits


def strict(text):
    """json.loads that refuses NaN, Infinity and -Infinity."""
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def planted(twist, config):
    """Every trial the same top-1: Spearman correlations are undefined (NaN) at every budget."""
    return {"top1": 50.0, "latency_ms": math.nan}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return export_digits(tmp_path_factory.mktemp("digits"), size=32, limit=60)


def _cases(digits, tmp):
    image = tmp / "cat.png"
    Image.new("RGB", (80, 60), (200, 120, 40)).save(image)
    search = ["search", "--data", str(digits), "--budgets", "12M,16M", "--trials", "4", "--base-resolution", "48",
              "--epochs", "1", "--out", str(tmp / "search"), "--workers", "0", "--no-progress"]
    tz.save_pretrained(tz.create("30M", pretrained=False), tmp / "untrained-30M")  # a teacher to fine-tune offline
    return {
        "list": [["list", "tinynet_*"]],
        "info": [["info", "tinynet_b.in1k"], ["info", "50M"]],
        "table": [["table"]],
        "formula": [["formula", "100M"]],
        "download": [["download", "efficientnet_lite0"]],
        "predict": [["predict", "efficientnet_lite0", str(image), "--top", "3"]],
        "finetune": [["finetune", "10M", "--data", str(digits), "--scratch", "--epochs", "1", "--resolution", "32",
                      "--batch-size", "16", "--out", str(tmp / "run"), "--no-progress"]],
        "search": [search, ["search", "report", str(tmp / "search"), "--no-plot"]],
        "bench": [["bench", "10M", "--backends", "eager,torch", "--runs", "2", "--warmup", "1", "--batch-runs", "0",
                   "--no-progress"]],
        "export": [["export", "10M", "--pretrained", "False", "--out", str(tmp / "m.xml")]],
        "shrink": [["shrink", "--data", str(digits), "--out", str(tmp / "shrink"), "--teacher", str(tmp / "untrained-30M"), "--budget",
                    "2.5M", "--epochs", "1", "--no-compare", "--backend", "onnxruntime"]],
    }


@pytest.mark.slow
def test_every_command_prints_strict_json(digits, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("tinynet_zoo.search.trial.proxy_train", planted)
    cases = _cases(digits, tmp_path)
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert set(cases) == commands, "a command without a --json case here"
    outputs = {}
    missing = missing_extra("deploy")  # export and shrink write ONNX / OpenVINO files
    for command, runs in cases.items():
        for argv in runs if not (missing and command in ("export", "shrink")) else ():
            assert main([*argv, "--json"]) == 0, (argv, capsys.readouterr().err)
            outputs[" ".join(argv[:2])] = strict(capsys.readouterr().out)
    report = outputs[f"search report"]
    assert all(row["spearman_r"] is None for row in report["budgets"])  # undefined, written as null
    for path in tmp_path.rglob("*.json*"):
        lines = path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]
        for line in lines:
            strict(line)
    if missing:
        pytest.skip(f"every other command checked; export and shrink {missing}")


def test_json_text_writes_non_finite_numbers_as_null():
    import numpy as np

    text = json_text({"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": np.float32(2.5), "d": Path("x")})
    assert strict(text) == {"a": None, "b": [None, None, 1.5], "c": 2.5, "d": "x"}
