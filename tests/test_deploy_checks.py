"""Every input of the deploy path checked before work starts: output paths (folders, existing files), opsets,
candidates, callbacks' values, counts and tolerances; verification that catches a wrong file even for an untrained
model's tiny logits; one name given as a string means that one name."""
import copy
import math
import warnings

import numpy as np
import pytest
import torch

import tinynet_zoo as tz
from conftest import needs_extra
from tinynet_zoo.cli import main
from tinynet_zoo.deploy import bench as bench_module
from tinynet_zoo.deploy import export as export_module
from tinynet_zoo.deploy.engines import onnxruntime as onnx_engine
from tinynet_zoo.deploy import latency as latency_module

SMALL = tz.Twist(0.4, 0.4, 0.4, 64)


def untrained(seed=0, **kwargs):
    torch.manual_seed(seed)
    return tz.create(SMALL, **kwargs).eval()


def fake_ms(twist):
    return twist.macs / 1e7  # 1 ms per 10M MACs


# ---------------------------------------------------------------- export: paths and options, before any work
@pytest.mark.parametrize("target, folder", [("m.onnx", "m.onnx"), ("m.xml", "m.bin")])
def test_export_onto_a_folder_is_refused_and_the_folder_kept(tmp_path, target, folder):
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "keep.txt").write_text("mine")
    with pytest.raises(tz.InvalidArgumentError,
                       match=rf"{folder} is a folder, not a file: the export is written as one file; choose a file"):
        tz.export(untrained(), tmp_path / target, overwrite=True)
    assert (tmp_path / folder / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder]  # no temporary file left either


@pytest.mark.parametrize("opset", [30, 7, 17, "18", True])
def test_export_opset_outside_the_exporters_range_is_refused(tmp_path, opset):
    lowest, highest = export_module.opset_range()
    assert lowest == 18 and highest >= 20
    with pytest.raises(tz.InvalidArgumentError,
                       match=rf"opset \(torch .*'s ONNX exporter writes 18 to {highest}\) must be an integer in "
                             rf"\[18, {highest}\], got {opset!r}"):
        tz.export(untrained(), tmp_path / "m.onnx", opset=opset)
    assert list(tmp_path.iterdir()) == []


def test_features_only_backbone_is_refused_by_export_and_runtime(tmp_path):
    backbone = untrained(features_only=True)
    with pytest.raises(tz.InvalidArgumentError, match=r"features_only=True: .*not a single logits output.*"
                                                      r"tz\.create\(name\)"):
        tz.export(backbone, tmp_path / "m.onnx", resolution=64)
    with pytest.raises(tz.InvalidArgumentError, match="features_only=True"):
        tz.runtime(backbone, backend="torch", resolution=64)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- export: verification at the logits' scale
def _export_as(monkeypatch, tmp_path, model, written):
    """Export `model` while the exporter writes `written`'s graph instead."""
    original = onnx_engine.export_onnx
    monkeypatch.setattr(onnx_engine, "export_onnx", lambda _m, *args: original(written, *args))
    return tz.export(model, tmp_path / "m.onnx")


def test_untrained_logits_are_tiny_so_an_absolute_bound_would_pass_any_file():
    a, b = untrained(0), untrained(1)
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        largest, apart = a(x).abs().max().item(), (a(x) - b(x)).abs().max().item()
    assert largest < 1e-4 and apart < 1e-4  # what made the old check pass another model's file


@pytest.mark.parametrize("kind", ["another model", "corrupted weights"])
def test_export_catches_a_wrong_file_of_an_untrained_model(monkeypatch, tmp_path, kind):
    model = untrained(0)
    if kind == "another model":
        written = untrained(1)
    else:
        written = copy.deepcopy(model)
        with torch.no_grad():
            written.classifier.weight.mul_(1.01)
    with pytest.raises(tz.TinyNetZooError, match=r"differs from the eager model by .* \(tolerance .*, largest "
                                                 r"\|logit\| .*\); nothing was written"):
        _export_as(monkeypatch, tmp_path, model, written)
    assert not (tmp_path / "m.onnx").exists()


def test_export_of_an_untrained_model_still_passes_and_scales_its_tolerance(tmp_path):
    report = tz.export(untrained(0), tmp_path / "m.onnx")
    assert report.tolerance < 1e-8 and report.max_abs_diff <= report.tolerance  # 1e-4 x max|logit| (about 1e-5)


def loud(seed=0):
    """An untrained model whose BatchNorms each amplify (running_var 0.4): random inputs give logits in the
    hundreds, like a model trained from scratch on grey digits does on colour noise."""
    model = untrained(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_var.fill_(0.4)
    return model


def test_float32_rounding_alone_moves_large_logits_by_more_than_the_absolute_tolerance():
    from tinynet_zoo.deploy.engines.verify import float32_rounding
    model = loud()
    with torch.inference_mode():
        largest = model(torch.randn(2, 3, 64, 64)).abs().max().item()
    assert largest > 50 and float32_rounding(model, 64) > 1e-4  # eager float32 against eager float64
    assert float32_rounding(untrained(0), 64) < 1e-6


def test_export_of_a_model_with_large_logits_passes_at_its_own_float32_rounding(tmp_path):
    report = tz.export(loud(), tmp_path / "m.onnx")  # the old absolute 1e-4 refused it (off by about 3e-4)
    assert report.max_abs_diff > 1e-4 and report.max_abs_diff <= report.tolerance < 0.1



def test_an_engine_off_by_several_times_eager_rounding_passes(monkeypatch, tmp_path):
    from tinynet_zoo.deploy.engines.verify import float32_rounding
    model = loud()
    written = copy.deepcopy(model)
    with torch.no_grad():  # every logit moved by 8x eager's own float32 rounding, as an engine's own kernels can
        written.classifier.bias.add_(8 * float32_rounding(model, 64))
    report = _export_as(monkeypatch, tmp_path, model, written)
    assert report.max_abs_diff > 4 * float32_rounding(model, 64) and (tmp_path / "m.onnx").is_file()

def test_export_of_a_model_with_large_logits_still_catches_a_wrong_file(monkeypatch, tmp_path):
    model = loud()
    written = copy.deepcopy(model)
    with torch.no_grad():
        written.classifier.weight.mul_(1.01)
    with pytest.raises(tz.TinyNetZooError, match=r"differs from the eager model by .* \(tolerance .*, largest "
                                                 r"\|logit\| .*, float32 rounding alone moves the eager logits by up "
                                                 r"to .* against float64\); nothing was written"):
        _export_as(monkeypatch, tmp_path, model, written)
    assert not (tmp_path / "m.onnx").exists()


def test_export_refuses_non_finite_logits(tmp_path):
    model = untrained(0)
    with torch.no_grad():
        model.classifier.bias.fill_(float("nan"))
    with pytest.raises(tz.TinyNetZooError, match=r"logits are not finite .*; nothing was written"):
        tz.export(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- runtime: candidates say what was wrong
def test_runtime_candidates_empty_string_and_thread_conflicts(tmp_path):
    model = untrained()
    with pytest.raises(tz.InvalidArgumentError, match=r"candidates is empty: name at least one backend to race, "
                                                      r"e\.g\. \[.*'onnxruntime'"):
        tz.runtime(model, candidates=[], cache_dir=tmp_path)
    with pytest.raises(tz.InvalidArgumentError, match=r"candidates must be a list of backend names .*got 5"):
        tz.runtime(model, candidates=5, cache_dir=tmp_path)
    with pytest.raises(tz.BackendNotInstalledError, match=r"no candidate runs at threads=2: executorch uses its "
                                                          r"process-wide thread setting"):
        tz.runtime(model, candidates=["executorch"], threads=2, cache_dir=tmp_path)
    predictor = tz.runtime(model, candidates="torch", cache_dir=tmp_path)  # one name, not its letters
    assert predictor.backend == "torch" and predictor.choice["candidates"] == ["torch"]


def test_runtime_candidate_that_cannot_read_the_file_and_a_folder_path(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"not read before the candidates are checked")
    with pytest.raises(tz.InvalidArgumentError, match=r"candidate 'torch' does not run \.onnx files; for m\.onnx "
                                                      r"race 'onnxruntime' or 'openvino'"):
        tz.runtime(tmp_path / "m.onnx", candidates=["torch"], cache_dir=tmp_path)
    (tmp_path / "d.onnx").mkdir()
    with pytest.raises(tz.InvalidArgumentError, match=r"d\.onnx is a folder, not an exported model file"):
        tz.runtime(tmp_path / "d.onnx", backend="onnxruntime")


# ---------------------------------------------------------------- bench
QUICK = dict(backends="eager", runs=1, warmup=0, batch_runs=0, progress=False)


def test_bench_takes_one_model_name_as_a_string():
    rows = tz.bench("tinynet_e", **QUICK)
    assert [(r["model"], r["backend"]) for r in rows] == [("tinynet_e", "eager")]


@pytest.mark.parametrize("models, backends, message", [
    ([], None, r"models is empty: name at least one model"),
    (["tinynet_e"], [], r"backends is empty: name at least one; leave backends=None"),
    (["tinynet_e"], 3, r"backends must be a list of names \(or one name\), got 3"),
])
def test_bench_refuses_empty_lists(models, backends, message):
    with pytest.raises(tz.InvalidArgumentError, match=message):
        tz.bench(models, backends=backends, runs=1, progress=False)


def test_bench_progress_must_be_a_bool():
    with pytest.raises(tz.InvalidArgumentError, match="progress must be True or False, got 'yes'"):
        tz.bench(["tinynet_e"], backends=["eager"], progress="yes")


def test_bench_default_rows_hold_the_plain_recipes_and_quick_drops_compile():
    rows = bench_module.default_backends()
    assert rows[:5] == ["eager", "compile-plain", "onnxruntime-plain", "openvino-plain", "executorch-plain"]
    assert rows[-1] == "auto" and "onnxruntime" in rows
    assert bench_module.default_backends(quick=True) == ["eager", "onnxruntime-plain", "openvino-plain",
                                                         "executorch-plain", "auto"]


def test_bench_reports_each_round():
    said = []
    timings = bench_module._interleaved({"a": lambda x: x, "b": lambda x: x}, 0, 0, 4, 2, said.append)
    assert said == ["warm-up a", "warm-up b", "round 1/2", "round 2/2"] and set(timings) == {"a", "b"}


def test_executorch_plain_row_and_the_executorch_engine_share_one_lowering(monkeypatch, tmp_path):
    from tinynet_zoo.deploy.engines import RECIPES, SPECS
    from tinynet_zoo.deploy.engines import executorch as executorch_engine
    from tinynet_zoo.deploy.engines.builds import ModuleBuilds
    from tinynet_zoo.deploy.runtime import _Source
    lowered = []
    monkeypatch.setattr(executorch_engine, "lower", lambda module, batch, resolution, variant="fp32":
                        (lowered.append((batch, resolution, variant)) or b"program %d" % batch, 0))
    monkeypatch.setattr(executorch_engine, "PteForward", lambda data: (lambda x: data))
    builds = ModuleBuilds(untrained(), 64, tmp_path)
    plain = RECIPES["executorch-plain"].build(builds, 1)
    engine = SPECS["executorch"].open_module(_Source(None, builds), None, 1)
    assert plain(None) == engine.run(np.zeros((1, 3, 64, 64), np.float32)) == b"program 1"
    assert lowered == [(1, 64, "fp32")]  # one lowering for the plain row and auto's candidate
    engine.run(np.zeros((2, 3, 64, 64), np.float32))
    assert lowered == [(1, 64, "fp32"), (2, 64, "fp32")]


@pytest.mark.slow
@needs_extra("mobile")
@needs_extra("deploy")
def test_bench_builds_each_engine_once_per_model_for_the_plain_rows_and_auto(monkeypatch, tmp_path):
    """The plain rows and auto's race share one ExecuTorch lowering and one OpenVINO conversion per model; ONNX
    has two settings (the exporter's defaults at batch 1, and auto's verified dynamic-batch export), each once."""
    from collections import Counter

    import openvino
    from tinynet_zoo.deploy.engines import executorch as executorch_engine
    made = Counter()

    def spy(owner, name, label):
        real = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *args, **kwargs: made.update([label]) or real(*args, **kwargs))

    spy(executorch_engine, "lower", "executorch lowering")
    spy(openvino, "convert_model", "openvino conversion")
    spy(torch.onnx, "export", "onnx export")
    spy(onnx_engine, "export_onnx", "verified onnx export")
    rows = tz.bench(["10M", "12M"], backends=["onnxruntime-plain", "openvino-plain", "executorch-plain", "auto"],
                    quick=True, progress=False, cache_dir=tmp_path)
    assert [r["backend"] for r in rows[:5]] == ["eager", "onnxruntime-plain", "openvino-plain", "executorch-plain",
                                                "auto"]
    assert made == {"executorch lowering": 2, "openvino conversion": 2, "onnx export": 4, "verified onnx export": 2}


def _no_bench(*args, **kwargs):
    raise AssertionError("measured although the plot path is refused")


def test_bench_cli_refuses_an_existing_plot_before_measuring(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench_module, "bench", _no_bench)
    import tinynet_zoo.cli.deploy as cli_deploy
    monkeypatch.setattr(cli_deploy, "bench", _no_bench)
    plot = tmp_path / "latency.png"
    plot.write_text("my old plot")
    assert main(["bench", "tinynet_e", "--plot", str(plot)]) == 2
    assert capsys.readouterr().err.strip() == f"tinynet-zoo: error: {plot} already exists; pass --overwrite to replace it"
    assert plot.read_text() == "my old plot"
    (tmp_path / "plots").mkdir()
    assert main(["bench", "tinynet_e", "--plot", str(tmp_path / "plots")]) == 2
    assert "plots is a folder, not a file: the plot is written as one file" in capsys.readouterr().err
    assert main(["bench", "tinynet_e", "--plot", str(tmp_path / "latency.pdf")]) == 2
    assert "the plot is written as PNG: end 'latency.pdf' in .png" in capsys.readouterr().err


def test_plot_replaces_only_with_overwrite(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"backend": "eager", "macs": 24e6, "median_ms": 5.0}, {"backend": "eager", "macs": 80e6, "median_ms": 9.0}]
    plot = tmp_path / "latency.png"
    plot.write_text("my old plot")
    with pytest.raises(tz.InvalidArgumentError, match="already exists"):
        bench_module.plot(rows, plot)
    assert plot.read_text() == "my old plot"
    bench_module.plot(rows, plot, overwrite=True)
    assert plot.read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------- for_latency: callbacks, counts, tolerance
@pytest.mark.parametrize("value", [float("nan"), 0.0, -1.0, True, None, "3 ms", math.inf])
def test_for_latency_checks_every_value_measure_returns(value):
    with pytest.raises(tz.InvalidArgumentError, match=rf"measure returned {value!r} for the twist at 9\.98M MACs .*"
                                                      r"finite, positive number of milliseconds"):
        tz.for_latency(5.0, measure=lambda twist: value)


def test_for_latency_accepts_numpy_floats():
    result = tz.for_latency(5.0, measure=lambda twist: np.float32(fake_ms(twist)))
    assert result.median_ms == pytest.approx(fake_ms(result.twist), rel=1e-6)


def test_numpy_numbers_are_taken_like_python_numbers():  # numbers read from arrays or configs are numpy scalars
    plain = tz.for_latency(5.0, measure=fake_ms, tolerance=0.05)
    numpy = tz.for_latency(np.float32(5.0), measure=fake_ms, tolerance=np.float32(0.05), max_macs=np.int64(10 ** 9))
    assert numpy.twist == plain.twist
    with pytest.raises(tz.InvalidArgumentError, match=r"tolerance must be a finite number in \[0\.005, 1\), got np\.True_"):
        tz.for_latency(5.0, measure=fake_ms, tolerance=np.bool_(True))


@pytest.mark.parametrize("kwargs, message", [
    (dict(runs=0), r"runs must be an integer >= 1, got 0"),
    (dict(warmup=-1), r"warmup must be an integer >= 0, got -1"),
    (dict(runs=2.5), r"runs must be an integer >= 1, got 2\.5"),
])
def test_for_latency_checks_counts_before_building(kwargs, message):
    with pytest.raises(tz.InvalidArgumentError, match=message):
        tz.for_latency(5.0, backend="torch", **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(tolerance=1e-300), r"tolerance must be a finite number in \[0\.005, 1\), got 1e-300"),
    (dict(tolerance=True), r"tolerance must be a finite number in \[0\.005, 1\), got True"),
    (dict(measure=5), r"measure must be a callable twist -> milliseconds .*got 5"),
    (dict(max_macs=float("nan")), r"max_macs must be a finite number, got nan"),
])
def test_for_latency_checks_its_numbers(kwargs, message):
    with pytest.raises(tz.InvalidArgumentError, match=message):
        tz.for_latency(5.0, **{"measure": fake_ms, **kwargs})


def test_for_latency_bisection_is_bounded_and_says_where_it_stopped(monkeypatch):
    monkeypatch.setattr(latency_module, "MAX_BISECTIONS", 1)
    with pytest.warns(tz.BudgetWarning, match=r"stopped after 1 bisection steps with the bracket at .*M MACs"):
        result = tz.for_latency(5.0, measure=fake_ms, tolerance=0.005)
    assert result.median_ms <= 5.0 and len(result.measurements) == 1 + 3 + 1  # 10M, doubling to 80M, one step


@pytest.mark.parametrize("resolution", [32, 64])
def test_for_latency_at_small_resolutions_starts_at_the_smallest_buildable_twist(resolution):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no BudgetWarning from the bracket's own budgets either
        result = tz.for_latency(1.0, resolution=resolution, measure=lambda t: t.macs / 2e6)
    from tinynet_zoo.core.formula import budget_range
    low = budget_range("efficientnet_b0", resolution, "tiny")[0]
    assert result.median_ms <= 1.0 and 1.9e6 <= result.twist.macs <= 2e6
    assert 0.99 * low <= result.measurements[0][0] <= low


def test_for_flops_lands_the_lowest_budget_of_its_own_range():
    from tinynet_zoo.core.formula import budget_range
    for resolution in (32, 48):
        low = budget_range("efficientnet_b0", resolution, "tiny")[0]
        assert low * 0.99 <= tz.for_flops(low, resolution=resolution).macs <= low


def test_bench_cli_quick_reaches_bench_and_its_help_says_how_long(capsys, monkeypatch):
    import tinynet_zoo.cli.deploy as cli_deploy
    seen = {}
    row = {"model": "tinynet_e", "macs": 24e6, "resolution": 106, "backend": "eager", "config": "timm eager",
           "median_ms": 2.0, "p90_ms": 3.0, "runs": 20, "images_per_s": None, "speedup": 1.0, "vs_best_plain": 1.0,
           "throughput_speedup": None}
    monkeypatch.setattr(cli_deploy, "bench", lambda models, backends, **kw: seen.update(kw, models=models) or [row])
    assert main(["bench", "tinynet_e", "tinynet_a", "--quick", "--no-progress"]) == 0
    assert seen["quick"] is True and seen["models"] == ["tinynet_e", "tinynet_a"] and seen["progress"] is False
    table = capsys.readouterr().out
    assert "batch-1 median and p90 over 20 timed calls per row; throughput not measured" in table
    assert ("quick: 20 timed batch-1 calls per row instead of 100, no throughput (instead of 5 calls at the batch "
            "size), auto raced for at most 3 s") in table
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--quick takes under 2 minutes on `bench tinynet_e tinynet_a`" in help_text


# ---------------------------------------------------------------- the one table of engines
def test_every_engine_format_and_plain_recipe_is_declared_whole_in_the_table():
    from tinynet_zoo.deploy import backends
    from tinynet_zoo.deploy.engines import FORMATS, RECIPES, SPECS

    assert backends.BACKENDS == ("onnxruntime", "openvino", "openvino-onnx", "executorch", "torch", "torch-compile")
    assert export_module.SUFFIXES == {"onnx": ".onnx", "openvino": ".xml", "pte": ".pte"}
    assert backends.PLAIN == ("eager", "compile-plain", "onnxruntime-plain", "openvino-plain", "executorch-plain")
    assert backends.FILE_BACKENDS == {".onnx": ("onnxruntime", "openvino", "openvino-onnx"), ".xml": ("openvino",),
                                      ".pte": ("executorch",)}
    for spec in SPECS.values():  # a loader for files it reads, and a way to build it from a module
        assert callable(spec.open_file) if spec.reads else spec.open_file is None, spec.name
        assert callable(spec.open_module) or ".onnx" in spec.reads, spec.name
        assert set(spec.reads) <= set(backends.FILE_KINDS), spec.name
    for fmt in FORMATS.values():  # a writer, and an engine that reads (and so verifies) what it writes
        assert callable(fmt.write) and callable(fmt.need) and backends.FILE_BACKENDS[fmt.suffix], fmt.name
    for recipe in RECIPES.values():
        assert callable(recipe.build) and (recipe.needs is None or recipe.needs in SPECS), recipe.name


def test_a_backend_that_reads_no_files_refuses_one_and_names_those_that_do(tmp_path):
    path = tmp_path / "m.pte"
    path.write_bytes(b"x")
    with pytest.raises(tz.InvalidArgumentError,
                       match=r"backend 'torch' runs a model or a model name, not an exported file; use 'executorch'"):
        tz.runtime(path, backend="torch")
