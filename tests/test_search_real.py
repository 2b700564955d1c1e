"""Small real searches (scikit-learn digits, the fine-tune loop) on both backends: local process pool and Ray."""
import json
from pathlib import Path

import pytest

from tinynet_zoo.search.analysis import search_report
from tinynet_zoo.search.results import RESULTS_NAME
from tinynet_zoo.search.run import run_search

pytestmark = pytest.mark.slow  # real training trials: minutes

BUDGETS = ["12M", "20M"]  # MACs at up to 48 px (EfficientNet-B0 itself is 24.0M there)
REAL = dict(base_resolution=48, epochs=1, batch_size=32)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from sample_data import export_digits
    return export_digits(tmp_path_factory.mktemp("digits"), size=32, limit=100)


def _check_real_records(out, expected):
    lines = [json.loads(line) for line in (Path(out) / RESULTS_NAME).read_text().splitlines()]
    assert lines[0]["type"] == "search" and len(lines) == expected + 1
    for record in lines[1:]:
        assert record["status"] == "ok", record
        assert 0 <= record["top1"] <= 100 and record["latency_ms"] > 0 and record["train_s"] > 0
        assert record["threads"] == 1 and 0.99 * record["budget"] <= record["macs"] <= record["budget"]
    return lines[1:]


def test_local_backend_real_search(digits, tmp_path):
    out = tmp_path / "local"
    summary = run_search(digits, BUDGETS, 4, out, workers=2, **REAL)
    assert (summary.ran, summary.failed) == (4, ())
    records = _check_real_records(out, 4)
    assert len({r["host"] for r in records}) <= 2
    assert run_search(digits, BUDGETS, 4, out, workers=2, **REAL).skipped == 4
    report = search_report(out, plot=False)
    assert report.trials == 4 and len(report.budgets) == 2


def test_ray_backend_real_search(digits, tmp_path):
    ray = pytest.importorskip("ray", reason="needs the search extra (ray not installed): pip install -e \".[search]\"")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # never a stray cluster
    try:
        out = tmp_path / "ray"
        summary = run_search(digits, BUDGETS, 4, out, backend="ray", cpus_per_trial=1, **REAL)
        assert (summary.ran, summary.failed) == (4, ())
        _check_real_records(out, 4)
        assert ray.is_initialized()  # a cluster the search joined is left running

        def broken(twist, config):
            raise RuntimeError(f"simulated failure at {twist.resolution} px")

        failing = run_search(digits, BUDGETS, 2, tmp_path / "ray-failing", backend="ray", train_fn=broken, **REAL)
        assert len(failing.failed) == 2  # recorded, not fatal
        lines = (tmp_path / "ray-failing" / RESULTS_NAME).read_text().splitlines()[1:]
        assert all(json.loads(x)["attempts"] == 2 and "simulated failure" in json.loads(x)["error"] for x in lines)
    finally:
        ray.shutdown()
