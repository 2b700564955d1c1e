"""Bad input to the deploy path: export, runtime, bench and for_latency, as a user would misuse them.

Models are small (a 6M-MAC twist at 64 px, untrained unless said) so the pass stays quick; `measure=` callbacks
stand in for real timing in for_latency.
"""
from __future__ import annotations

import math
from pathlib import Path

import probe
from probe import Kept, cli, judge_cli

# the heavy libraries are imported once here, outside any case's time limit: an import cut short by a case's
# alarm leaves a half-initialised module behind for every later case; on a loaded 2-core machine a case that
# builds and exports gets 300 s
import torch  # noqa: E402,F401
import torch.onnx  # noqa: E402,F401

import tinynet_zoo  # noqa: E402,F401

for _package in ("onnx", "onnxscript", "onnxruntime", "openvino", "matplotlib.pyplot"):
    try:
        __import__(_package)
    except ImportError:  # an engine that is not installed: its cases say so themselves
        pass


def case(area: str, name: str, expect: str = "error", needles: "tuple[str, ...]" = (), timeout: float = 300.0):
    """probe.case with a longer default time limit."""
    return probe.case(area, name, expect, needles, timeout)



def _model(seed: int = 0, **kwargs):
    import torch

    import tinynet_zoo as tz

    torch.manual_seed(seed)
    return tz.create(tz.Twist(0.4, 0.4, 0.4, 64), **kwargs).eval()


def _user_file(tmp: Path, name: str, text: str = "the user's own file\n") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _result(check):
    """Run `check()` (which returns a verdict); a refusal of valid input is WRONG, not a clear error."""
    from tinynet_zoo.errors import TinyNetZooError
    try:
        return check()
    except TinyNetZooError as exc:
        return "WRONG", f"valid input refused: {type(exc).__name__}: {exc}"


def _fake_ms(per_million: float = 0.1):
    return lambda twist: twist.macs / 1e6 * per_million


# ---------------------------------------------------------------- export
@case("export", "existing file without overwrite", needles=("already exists", "overwrite"))
def export_existing(tmp):
    import tinynet_zoo as tz
    tz.export(_model(), _user_file(tmp, "m.onnx"))


@case("export", "overwrite onto a folder named like the file", needles=("m.onnx", "folder"))
def export_onto_folder(tmp):
    import tinynet_zoo as tz
    (tmp / "m.onnx").mkdir()
    tz.export(_model(), tmp / "m.onnx", overwrite=True)


@case("export", "OpenVINO IR whose .bin is a folder", needles=("m.bin", "folder"))
def export_bin_folder(tmp):
    import tinynet_zoo as tz
    (tmp / "m.bin").mkdir()
    tz.export(_model(), tmp / "m.xml", overwrite=True)


@case("export", "opset above the exporter's range", needles=("opset", "30", "18", "23"))
def export_opset_high(tmp):
    import tinynet_zoo as tz
    tz.export(_model(), tmp / "m.onnx", opset=30)


@case("export", "opset below the exporter's range", needles=("opset", "7", "18"))
def export_opset_low(tmp):
    import tinynet_zoo as tz
    tz.export(_model(), tmp / "m.onnx", opset=7)


@case("export", "opset as a string", needles=("opset", "'18'", "integer"))
def export_opset_text(tmp):
    import tinynet_zoo as tz
    tz.export(_model(), tmp / "m.onnx", opset="18")


@case("export", "opset True", needles=("opset", "True"))
def export_opset_bool(tmp):
    import tinynet_zoo as tz
    tz.export(_model(), tmp / "m.onnx", opset=True)


@case("export", "NaN tolerance", needles=("tolerance", "nan"))
def export_nan_tolerance(tmp):
    import tinynet_zoo as tz
    tz.export(_model(), tmp / "m.onnx", tolerance=float("nan"))


@case("export", "features_only backbone", needles=("features_only", "logits", "tz.create"))
def export_features_only(tmp):
    import tinynet_zoo as tz
    tz.export(_model(features_only=True), tmp / "m.onnx", resolution=64)


@case("export", "features_only backbone to .pte", needles=("features_only", "logits"))
def export_features_only_pte(tmp):
    import tinynet_zoo as tz
    tz.export(_model(features_only=True), tmp / "m.pte", resolution=64)


@case("export", "model whose logits are NaN", needles=("not finite", "nothing was written"))
def export_nan_model(tmp):
    import torch

    import tinynet_zoo as tz
    model = _model()
    with torch.no_grad():
        model.classifier.bias.fill_(float("nan"))
    tz.export(model, tmp / "m.onnx")


def _swapped_export(tmp: Path, make_other) -> "tuple[str, str] | None":
    """Export an untrained model while the exporter writes another model's graph: verification must catch it."""
    import tinynet_zoo as tz
    from tinynet_zoo.deploy.engines import onnxruntime as onnx_engine
    from tinynet_zoo.errors import TinyNetZooError

    original = onnx_engine.export_onnx
    model = _model(seed=0)
    other = make_other(model)
    onnx_engine.export_onnx = lambda _model_, *args, **kw: original(other, *args, **kw)
    try:
        tz.export(model, tmp / "m.onnx")
    except TinyNetZooError as exc:
        ok = "differs" in str(exc) and not (tmp / "m.onnx").exists()
        return ("OK" if ok else "UNCLEAR"), str(exc)
    finally:
        onnx_engine.export_onnx = original
    return "WRONG", "a file of another model passed verification and was written"


@case("export", "file of a different untrained model of the same shape", expect="result")
def export_other_model(tmp):
    return _swapped_export(tmp, lambda model: _model(seed=1))


@case("export", "file with 1% corrupted weights (untrained model)", expect="result")
def export_corrupted_weights(tmp):
    import copy

    import torch

    def corrupt(model):
        bad = copy.deepcopy(model)
        with torch.no_grad():
            bad.classifier.weight.mul_(1.01)
        return bad
    return _swapped_export(tmp, corrupt)


@case("export", "folder that does not exist", needles=("does not exist",))
def export_missing_folder(tmp):
    import tinynet_zoo as tz
    tz.export(_model(), tmp / "nope" / "m.onnx")


@case("export", "batch True", needles=("batch", "True"))
def export_batch_bool(tmp):
    import tinynet_zoo as tz
    tz.export(_model(), tmp / "m.onnx", batch=True)


@case("export", "cli: --overwrite onto a folder", expect="result", timeout=400)
def export_cli_folder(tmp):
    (tmp / "m.onnx").mkdir()
    (tmp / "m.onnx" / "keep.txt").write_text("mine")
    kept = Kept(tmp)
    verdict = judge_cli(cli("export", "tinynet_e", "--out", tmp / "m.onnx", "--pretrained", "False",
                            "--overwrite"), ("m.onnx", "folder"))
    return ("LOST", kept.lost()) if kept.lost() else verdict


@case("export", "cli: existing file without --overwrite", expect="result", timeout=400)
def export_cli_existing(tmp):
    kept = Kept(_user_file(tmp, "m.onnx"))
    verdict = judge_cli(cli("export", "tinynet_e", "--out", tmp / "m.onnx", "--pretrained", "False"),
                        ("already exists", "--overwrite"))
    return ("LOST", kept.lost()) if kept.lost() else verdict


# ---------------------------------------------------------------- runtime
@case("runtime", "empty candidate list", needles=("candidates", "empty", "onnxruntime"))
def runtime_no_candidates(tmp):
    import tinynet_zoo as tz
    tz.runtime(_model(), candidates=[], cache_dir=tmp)


@case("runtime", "one candidate as a string", expect="result")
def runtime_candidate_string(tmp):
    import tinynet_zoo as tz

    def check():
        predictor = tz.runtime(_model(), candidates="torch", cache_dir=tmp)
        return ("OK", "torch") if predictor.backend == "torch" else ("WRONG", predictor.backend)
    return _result(check)


@case("runtime", "candidate typo", needles=("onxruntime", "did you mean", "onnxruntime"))
def runtime_candidate_typo(tmp):
    import tinynet_zoo as tz
    tz.runtime(_model(), candidates=["onxruntime"], cache_dir=tmp)


@case("runtime", "only candidate left out by threads", needles=("executorch", "threads"))
def runtime_candidates_threads(tmp):
    import tinynet_zoo as tz
    tz.runtime(_model(), candidates=["executorch"], threads=2, cache_dir=tmp)


@case("runtime", "torch candidate with other thread count", needles=("torch", "threads", "3"))
def runtime_torch_threads(tmp):
    import torch

    import tinynet_zoo as tz
    tz.runtime(_model(), candidates=["torch"], threads=3 if torch.get_num_threads() != 3 else 4, cache_dir=tmp)


@case("runtime", "candidates that do not read the file", needles=("torch", ".onnx", "onnxruntime"))
def runtime_candidates_file(tmp):
    import tinynet_zoo as tz
    path = tmp / "m.onnx"
    tz.export(_model(), path)
    tz.runtime(path, candidates=["torch"], cache_dir=tmp)


@case("runtime", "candidates not a list", needles=("candidates", "5"))
def runtime_candidates_number(tmp):
    import tinynet_zoo as tz
    tz.runtime(_model(), candidates=5, cache_dir=tmp)


@case("runtime", "backend typo", needles=("onnx", "did you mean", "onnxruntime"))
def runtime_backend_typo(tmp):
    import tinynet_zoo as tz
    tz.runtime(_model(), backend="onnx")


@case("runtime", "backend upper case", needles=("ONNXRuntime", "onnxruntime"))
def runtime_backend_case(tmp):
    import tinynet_zoo as tz
    tz.runtime(_model(), backend="ONNXRuntime")


@case("runtime", "features_only backbone", needles=("features_only", "logits"))
def runtime_features_only(tmp):
    import tinynet_zoo as tz
    tz.runtime(_model(features_only=True), backend="torch", resolution=64)


@case("runtime", "threads 0", needles=("threads", "0"))
def runtime_threads_zero(tmp):
    import tinynet_zoo as tz
    tz.runtime(_model(), backend="onnxruntime", threads=0)


@case("runtime", "batch 0", needles=("batch", "0"))
def runtime_batch_zero(tmp):
    import tinynet_zoo as tz
    tz.runtime(_model(), batch=0)


@case("runtime", "folder named like a model file", needles=("m.onnx", "folder"))
def runtime_folder_file(tmp):
    import tinynet_zoo as tz
    (tmp / "m.onnx").mkdir()
    tz.runtime(tmp / "m.onnx", backend="onnxruntime")


# ---------------------------------------------------------------- bench
_QUICK = dict(backends=["eager"], runs=1, warmup=0, batch_runs=0, progress=False)


@case("bench", "one model name as a string", expect="result")
def bench_string(tmp):
    import tinynet_zoo as tz

    def check():
        models = sorted({row["model"] for row in tz.bench("tinynet_e", **_QUICK)})
        return ("OK", models) if models == ["tinynet_e"] else ("WRONG", models)
    return _result(check)


@case("bench", "backends as a string", expect="result")
def bench_backends_string(tmp):
    import tinynet_zoo as tz

    def check():
        names = [row["backend"] for row in tz.bench(["tinynet_e"], **{**_QUICK, "backends": "eager"})]
        return ("OK", names) if names == ["eager"] else ("WRONG", names)
    return _result(check)


@case("bench", "no models", needles=("model", "empty"))
def bench_no_models(tmp):
    import tinynet_zoo as tz
    tz.bench([], **_QUICK)


@case("bench", "empty backend list", needles=("backends", "empty"))
def bench_no_backends(tmp):
    import tinynet_zoo as tz
    tz.bench(["tinynet_e"], **{**_QUICK, "backends": []})


@case("bench", "runs 0", needles=("runs", "0"))
def bench_runs_zero(tmp):
    import tinynet_zoo as tz
    tz.bench(["tinynet_e"], **{**_QUICK, "runs": 0})


@case("bench", "backend typo", needles=("onnx", "did you mean", "onnxruntime"))
def bench_backend_typo(tmp):
    import tinynet_zoo as tz
    tz.bench(["tinynet_e"], **{**_QUICK, "backends": ["onnx"]})


@case("bench", "progress not a bool", needles=("progress", "yes"))
def bench_progress_text(tmp):
    import tinynet_zoo as tz
    tz.bench(["tinynet_e"], **{**_QUICK, "progress": "yes"})


_CLI_QUICK = ("tinynet_e", "--backends", "eager", "--runs", "1", "--warmup", "0", "--batch-runs", "0", "--no-progress")


@case("bench", "cli: --plot onto an existing file", expect="result", timeout=400)
def bench_plot_existing(tmp):
    plot = _user_file(tmp, "latency.png", "my old plot")
    kept = Kept(plot)
    verdict = judge_cli(cli("bench", *_CLI_QUICK, "--plot", plot), ("already exists", "--overwrite"))
    return ("LOST", kept.lost()) if kept.lost() else verdict


@case("bench", "cli: --plot onto a folder", expect="result", timeout=400)
def bench_plot_folder(tmp):
    (tmp / "plots").mkdir()
    return judge_cli(cli("bench", *_CLI_QUICK, "--plot", tmp / "plots"), ("plots", "folder"))


@case("bench", "cli: --plot into a missing folder, refused before measuring", expect="result", timeout=400)
def bench_plot_missing_folder(tmp):
    code, out, err = cli("bench", *_CLI_QUICK, "--plot", tmp / "nope" / "p.png", "--json")
    verdict = judge_cli((code, out, err), ("does not exist",))
    return ("UNCLEAR", "refused only after measuring") if verdict[0] == "OK" and "median" in out else verdict


@case("bench", "cli: --plot with a non-PNG name", expect="result", timeout=400)
def bench_plot_suffix(tmp):
    return judge_cli(cli("bench", *_CLI_QUICK, "--plot", tmp / "latency.pdf"), ("latency.pdf", ".png"))


@case("bench", "cli: --plot --overwrite replaces the plot", expect="result", timeout=400)
def bench_plot_overwrite(tmp):
    plot = _user_file(tmp, "latency.png", "my old plot")
    verdict = judge_cli(cli("bench", *_CLI_QUICK, "--plot", plot, "--overwrite"), expect_error=False)
    return verdict if verdict[0] != "OK" or plot.read_bytes()[:4] == b"\x89PNG" else ("WRONG", "not a PNG")


@case("bench", "cli: --runs 0", expect="result")
def bench_cli_runs(tmp):
    return judge_cli(cli("bench", "tinynet_e", "--runs", "0"), ("runs", "0"))


@case("bench", "cli: backend typo", expect="result")
def bench_cli_backend(tmp):
    return judge_cli(cli("bench", "tinynet_e", "--backends", "eager,onnx"), ("onnx", "onnxruntime"))


# ---------------------------------------------------------------- for_latency
def _latency(**kwargs):
    import tinynet_zoo as tz
    return tz.for_latency(**{"ms": 5.0, "measure": _fake_ms(), **kwargs})


@case("latency", "measure returns NaN", needles=("measure", "nan"))
def latency_nan(tmp):
    _latency(measure=lambda twist: float("nan"))


@case("latency", "measure returns 0", needles=("measure", "0", "positive"))
def latency_zero(tmp):
    _latency(measure=lambda twist: 0.0)


@case("latency", "measure returns a negative time", needles=("measure", "-1"))
def latency_negative(tmp):
    _latency(measure=lambda twist: -1.0)


@case("latency", "measure returns True", needles=("measure", "True"))
def latency_bool(tmp):
    _latency(measure=lambda twist: True)


@case("latency", "measure returns text", needles=("measure", "3 ms"))
def latency_text(tmp):
    _latency(measure=lambda twist: "3 ms")


@case("latency", "measure returns None", needles=("measure", "None"))
def latency_none(tmp):
    _latency(measure=lambda twist: None)


@case("latency", "measure is not callable", needles=("measure", "callable"))
def latency_not_callable(tmp):
    _latency(measure=5)


@case("latency", "runs 0", needles=("runs", "0"))
def latency_runs(tmp):
    import tinynet_zoo as tz
    tz.for_latency(5.0, backend="torch", runs=0)


@case("latency", "warmup -1", needles=("warmup", "-1"))
def latency_warmup(tmp):
    import tinynet_zoo as tz
    tz.for_latency(5.0, backend="torch", warmup=-1)


@case("latency", "tolerance too fine to converge", needles=("tolerance", "1e-300"), timeout=60)
def latency_tiny_tolerance(tmp):
    _latency(tolerance=1e-300)


@case("latency", "tolerance NaN", needles=("tolerance", "nan"))
def latency_nan_tolerance(tmp):
    _latency(tolerance=float("nan"))


@case("latency", "tolerance True", needles=("tolerance", "True"))
def latency_bool_tolerance(tmp):
    _latency(tolerance=True)


@case("latency", "budget NaN", needles=("nan",))
def latency_nan_budget(tmp):
    _latency(ms=float("nan"))


@case("latency", "max_macs NaN", needles=("max_macs", "nan"))
def latency_nan_max(tmp):
    _latency(max_macs=float("nan"))


@case("latency", "backend typo", needles=("onnx", "did you mean"))
def latency_backend_typo(tmp):
    import tinynet_zoo as tz
    tz.for_latency(5.0, backend="onnx")


@case("latency", "32-px images with a budget that fits", expect="result")
def latency_small_resolution(tmp):
    from tinynet_zoo.errors import TinyNetZooError
    try:
        result = _latency(resolution=32, ms=1.0, measure=_fake_ms(0.5))
    except TinyNetZooError as exc:
        return "WRONG", f"refused a budget that small twists meet: {exc}"
    fits = result.median_ms <= 1.0 and result.twist.resolution <= 32
    return ("OK", f"{result.twist.macs} MACs") if fits else ("WRONG", result.to_dict())


@case("latency", "64-px images, largest twist within budget", expect="result")
def latency_64px(tmp):
    from tinynet_zoo.errors import TinyNetZooError
    try:
        result = _latency(resolution=64, ms=3.0, measure=_fake_ms(0.5))
    except TinyNetZooError as exc:
        return "WRONG", str(exc)
    return ("OK", result.twist.macs) if result.twist.macs <= 6e6 else ("WRONG", result.to_dict())


@case("latency", "budget below the smallest twist", needles=("smallest", "budget"))
def latency_too_small(tmp):
    _latency(ms=1e-6)


@case("latency", "measure that is noisy (non-monotone) still ends", expect="result", timeout=60)
def latency_noisy(tmp):
    import random
    rng = random.Random(0)
    result = _latency(measure=lambda twist: twist.macs / 1e6 * 0.05 * rng.uniform(0.5, 1.5), ms=5.0)
    ok = math.isfinite(result.median_ms) and result.median_ms <= 5.0
    return ("OK", len(result.measurements)) if ok else ("WRONG", result.to_dict())
