"""Deploy path: verified ONNX/OpenVINO export, runtimes equal to eager, auto-backend cache, bench, for_latency."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import tinynet_zoo as tz
from tinynet_zoo.cli import main
from tinynet_zoo.deploy import autoselect
from tinynet_zoo.deploy.fold import fold_batchnorm

from deploy_helpers import RES, TWIST, batch_of as _batch, eager as _eager, shared_export, small_model
from conftest import require_extra

require_extra("deploy")


@pytest.fixture(scope="session")
def model():
    return small_model()


@pytest.fixture(scope="session")
def exported(model, tmp_path_factory):
    """One fixed-batch and one dynamic-batch ONNX export (seconds each), shared by the xdist workers."""
    return {kind: shared_export(tmp_path_factory, model, f"{kind}.onnx", batch=batch)
            for kind, batch in (("fixed", 1), ("dynamic", None))}


def test_logits_are_large_enough_for_the_tolerance_to_mean_something(model):
    assert _eager(model, _batch(2)).std() > 0.1


def test_fold_batchnorm_matches_eager_and_removes_every_batchnorm(model):
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    x = _batch(3)
    assert np.abs(_eager(folded, x) - _eager(model, x)).max() < 1e-4


def _onnxruntime(path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def test_fixed_batch_export_is_verified_and_folded(model, exported):
    report = exported["fixed"]
    assert report["path"].is_file() and report["input_shape"] == [1, 3, RES, RES]
    assert report["verified_batches"] == [1] and report["max_abs_diff"] < 1e-4 and report["batchnorm_nodes"] == 0
    x = _batch(1, seed=7)
    assert np.abs(_onnxruntime(report["path"], x) - _eager(model, x)).max() < 1e-4  # checked independently too
    from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

    with pytest.raises(InvalidArgument, match=r"(?s)invalid dimensions for input.*index: 0 Got: 3 Expected: 1"):
        _onnxruntime(report["path"], _batch(3))  # the batch axis is fixed


def test_dynamic_batch_export_runs_batches_1_and_3(model, exported):
    report = exported["dynamic"]
    assert report["input_shape"] == ["N", 3, RES, RES] and report["verified_batches"] == [1, 3]
    assert report["max_abs_diff"] < 1e-4 and report["batchnorm_nodes"] == 0
    for n in (1, 3):
        x = _batch(n, seed=10 + n)
        assert np.abs(_onnxruntime(report["path"], x) - _eager(model, x)).max() < 1e-4


def _reuse(exported, kind, monkeypatch):
    """Make export() reuse an existing export of the same model instead of re-tracing it (seconds saved)."""
    from tinynet_zoo.deploy.engines import onnxruntime as onnx_engine

    monkeypatch.setattr(onnx_engine, "export_onnx", lambda *args: shutil.copyfile(exported[kind]["path"], args[3]))


def test_openvino_ir_export_comes_from_the_module_not_onnx(model, tmp_path, monkeypatch):
    from tinynet_zoo.deploy.engines import onnxruntime as onnx_engine

    def no_onnx(*args):
        raise AssertionError("the OpenVINO IR went through ONNX")

    monkeypatch.setattr(onnx_engine, "export_onnx", no_onnx)
    report = tz.export(model, tmp_path / "model.xml", batch=None)  # the format follows the extension
    assert report.format == "openvino" and report.max_abs_diff < 1e-4 and report.batchnorm_nodes == 0
    assert report.verified_batches == (1, 3) and report.input_shape == ("N", 3, RES, RES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.xml"]  # no temporary files left
    assert report.file_bytes == sum(p.stat().st_size for p in tmp_path.iterdir())
    x = _batch(2)
    assert np.abs(tz.runtime(report.path, backend="openvino")(x.numpy()) - _eager(model, x)).max() < 1e-4


@pytest.mark.parametrize("backend, source", [("onnxruntime", "file"), ("openvino", "file"), ("openvino-onnx", "file"),
                                             ("openvino", "module"), ("torch", "module")])
def test_runtime_equals_eager_for_numpy_and_torch_input(model, exported, backend, source):
    predictor = tz.runtime(model if source == "module" else exported["dynamic"]["path"], backend=backend)
    assert predictor.backend == backend and predictor.input_shape == (None, 3, RES, RES)
    x = _batch(3, seed=3)
    from_numpy, from_torch = predictor(x.numpy()), predictor(x)
    assert isinstance(from_numpy, np.ndarray) and isinstance(from_torch, torch.Tensor)
    assert np.abs(from_numpy - _eager(model, x)).max() < 1e-4
    assert np.abs(from_torch.numpy() - from_numpy).max() == 0
    assert predictor(x[:1]).shape == (1, 1000)


def test_wrong_shape_names_the_expected_shape(exported):
    dynamic = tz.runtime(exported["dynamic"]["path"], backend="onnxruntime")
    with pytest.raises(tz.InvalidArgumentError, match=r"\(2, 3, 32, 32\) does not match the expected shape "
                                                       r"\(N, 3, 64, 64\)"):
        dynamic(np.zeros((2, 3, 32, 32), np.float32))
    fixed = tz.runtime(exported["fixed"]["path"], backend="openvino")
    with pytest.raises(tz.InvalidArgumentError, match=r"expected shape \(1, 3, 64, 64\)"):
        fixed(np.zeros((4, 3, RES, RES), np.float32))
    with pytest.raises(tz.InvalidArgumentError, match="numpy array or torch tensor"):
        fixed([[0.0]])


def test_missing_backend_names_the_extra(monkeypatch, exported):
    monkeypatch.setitem(sys.modules, "openvino", None)  # find_spec() then reports it as not installed
    with pytest.raises(tz.BackendNotInstalledError, match=r"'openvino' package.*pip install 'tinynet-zoo\[deploy\]'"):
        tz.runtime(exported["dynamic"]["path"], backend="openvino")
    assert issubclass(tz.BackendNotInstalledError, ImportError)
    from tinynet_zoo.deploy.backends import installed_backends
    assert not {"openvino", "openvino-onnx"} & set(installed_backends())


def test_unwritable_or_failed_export_leaves_nothing_behind(model, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(tz.InvalidArgumentError, match="does not exist"):
        tz.export(model, blocker / "model.onnx")
    from tinynet_zoo.deploy.engines import onnxruntime as onnx_engine

    def half_written(module, resolution, batch, target, opset):
        target.write_bytes(b"partial")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(onnx_engine, "export_onnx", half_written)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        tz.export(model, tmp_path / "model.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_verification_failure_writes_nothing(model, exported, tmp_path, monkeypatch):
    _reuse(exported, "dynamic", monkeypatch)  # a valid graph, but of another model than `other`
    torch.manual_seed(1)
    other = tz.create(TWIST)
    with pytest.raises(tz.TinyNetZooError, match="differs from the eager model by"):
        tz.export(other, tmp_path / "model.onnx", batch=None)
    assert list(tmp_path.iterdir()) == []


def test_auto_records_why_and_caches_per_batch_and_threads(exported, tmp_path, monkeypatch):
    from tinynet_zoo.deploy import runtime as runtime_module
    from tinynet_zoo.system import usable_cores

    races = []

    def counted(builders, batch=1, time_cap_s=None):
        races.append((sorted(builders), batch))
        return autoselect.measure_candidates(builders, batch, time_cap_s)

    monkeypatch.setattr(autoselect, "TIME_CAP_S", 3.0)
    monkeypatch.setattr(runtime_module, "measure_candidates", counted)
    path = exported["dynamic"]["path"]
    predictor = tz.runtime(path, cache_dir=tmp_path)
    record = predictor.choice
    assert record["cached"] is False and predictor.backend in ("onnxruntime", "openvino")
    assert set(record["candidates"]) == {f"{b}:{t}" for b in ("onnxruntime", "openvino") for t in {1, usable_cores()}}
    assert record["choice"] == f"{predictor.backend}:{predictor.threads}"
    assert record["reason"].startswith(record["choice"])
    assert record["median_ms"][record["choice"]] == min(record["median_ms"].values()) and record["rounds"] >= 1
    assert set(record["ratios"]) == set(record["candidates"]) - {record["choice"]}
    assert all(r["ci95"][0] <= r["ratio"] <= r["ci95"][1] for r in record["ratios"].values())
    (slot,) = json.loads((tmp_path / "deploy" / "backend_choice.json").read_text()).values()
    (entry,) = slot["models"].values()
    assert (entry["batch"], entry["threads"], entry["reason"]) == (1, None, record["reason"])
    assert slot["machine"]["cores"] >= 1 and slot["machine"]["onnxruntime"]

    again = tz.runtime(path, cache_dir=tmp_path)
    assert again.choice["cached"] is True and (again.backend, again.threads) == (predictor.backend, predictor.threads)
    assert tz.runtime(path, cache_dir=tmp_path, batch=3).choice["cached"] is False  # another batch: another race
    single = tz.runtime(path, cache_dir=tmp_path, threads=1)  # another thread setting: another race
    assert single.choice["cached"] is False and single.threads == 1
    assert set(single.choice["candidates"]) == {"onnxruntime:1", "openvino:1"}
    assert tz.runtime(path, cache_dir=tmp_path, batch=3).choice["cached"] is True
    assert [batch for _, batch in races] == [1, 3, 1]
    (slot,) = json.loads((tmp_path / "deploy" / "backend_choice.json").read_text()).values()
    assert {(e["batch"], e["threads"]) for e in slot["models"].values()} == {(1, None), (1, 1), (3, None)}
    assert [p.name for p in (tmp_path / "deploy").iterdir() if p.name.endswith(".tmp")] == []


def test_cache_key_ignores_weights_but_not_architecture(model, exported):
    torch.manual_seed(5)
    assert autoselect.graph_key(None, model, RES) == autoselect.graph_key(None, tz.create(TWIST), RES)
    assert autoselect.graph_key(None, model, RES) != autoselect.graph_key(None, model, RES + 32)
    fixed, dynamic = (autoselect.graph_key(exported[k]["path"]) for k in ("fixed", "dynamic"))
    assert fixed != dynamic


def test_bench_json_on_a_tiny_model(capsys, tmp_path):
    code = main(["bench", "tinynet_e", "--backends", "eager,onnxruntime,torch", "--runs", "3", "--warmup", "1",
                 "--batch", "2", "--batch-runs", "1", "--no-progress", "--json", "--plot", str(tmp_path / "p.png"),
                 "--cache-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert code == 0 and [r["backend"] for r in rows] == ["eager", "onnxruntime", "torch"]
    assert rows[0]["speedup"] == 1.0 and rows[0]["macs"] == tz.model_info("tinynet_e").macs
    for row in rows:
        assert row["median_ms"] > 0 and row["p90_ms"] >= row["median_ms"] and row["images_per_s"] > 0
        assert row["speedup"] == pytest.approx(rows[0]["median_ms"] / row["median_ms"])
        assert row["vs_best_plain"] == pytest.approx(rows[0]["median_ms"] / row["median_ms"])  # eager: the only plain
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_bench_rejects_unknown_backend(capsys):
    code = main(["bench", "tinynet_e", "--backends", "eager,onnxruntim"])
    assert code == 2 and "did you mean 'onnxruntime'" in capsys.readouterr().err


def _latency(twist):
    return twist.macs / 1e7  # a deterministic stand-in: 1 ms per 10M MACs


def test_for_latency_is_monotone_and_lands_near_the_budget():
    previous = 0
    for budget_ms in (2.0, 3.0, 5.0, 8.0, 13.0, 40.0):
        result = tz.for_latency(budget_ms, measure=_latency)
        from tinynet_zoo.deploy.latency import measurement_bound
        assert result.median_ms <= budget_ms and result.median_ms == _latency(result.twist)
        assert result.twist.macs >= 0.93 * budget_ms * 1e7  # bracket 5% + for_flops's 1%
        assert result.twist.macs >= previous and len(result.measurements) <= measurement_bound(budget_ms * 1e7, 0.05)
        previous = result.twist.macs


def test_for_latency_bad_budgets():
    with pytest.raises(tz.BudgetError, match="even the smallest twist"):
        tz.for_latency(0.5, measure=_latency)
    with pytest.raises(tz.BudgetError, match="positive number of milliseconds"):
        tz.for_latency(-1, measure=_latency)
    with pytest.raises(tz.UnknownNameError, match="did you mean 'torch'"):
        tz.for_latency(5, backend="torchh")


def test_for_latency_real_measurement_on_torch():
    result = tz.for_latency(1e5, backend="torch", max_macs=20e6, runs=2, warmup=1)
    assert [round(m / 1e6) for m, _ in result.measurements] in ([10, 20], [10, 19], [9, 20], [9, 19])
    assert result.backend == "torch" and 19e6 <= result.twist.macs <= 20e6 and result.median_ms > 0


def test_deploy_modules_import_without_torch():
    code = ("import sys; import tinynet_zoo as tz; import tinynet_zoo.deploy.bench, tinynet_zoo.deploy.runtime, "
            "tinynet_zoo.deploy.latency, tinynet_zoo.deploy.export; tz.export; tz.runtime; tz.for_latency; "
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == ["False"], proc.stderr


def test_deploy_refuses_non_rgb_models(tmp_path):
    with pytest.raises(tz.InvalidArgumentError, match="3-channel"):
        tz.export(tz.create(tz.Twist(r=0.3, d=0.5, w=0.5, resolution=32), in_chans=1), tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_auto_runtime_without_engines_names_the_extra(tmp_path, monkeypatch):
    from tinynet_zoo.deploy import runtime as rt
    (tmp_path / "m.onnx").write_bytes(b"")
    monkeypatch.setattr(rt, "installed_backends", lambda: ["torch"])
    with pytest.raises(tz.BackendNotInstalledError, match=r"tinynet-zoo\[deploy\]"):
        tz.runtime(tmp_path / "m.onnx", backend="auto")
