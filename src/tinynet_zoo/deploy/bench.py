"""`bench` and `tinynet-zoo bench`: batch-1 latency and batch-32 throughput per backend, against timm eager.

Every backend of a model is measured in the same run, one at a time (an engine is released before the next
is built, so thread pools do not compete), eager first. Ratios are eager median / backend median.
"""
from __future__ import annotations

import gc
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..checks import choice, integer
from ..files import ensure_parent_dir, write_atomic
from ..info import model_info
from ..system import pyplot
from .backends import installed_backends, require
from .export import export, prepare
from .runtime import runtime
from .timing import time_calls

# eager: timm's module as built (torch's default threads); torch: ours (BatchNorm folded); auto: runtime(auto);
# *-plain: torch.onnx.export defaults + a default onnxruntime session / default OpenVINO compile_model(model, "CPU")
BACKENDS = ("eager", "torch", "onnxruntime", "openvino", "auto", "onnxruntime-plain", "openvino-plain")
_NEEDS = {"onnxruntime": "onnxruntime", "onnxruntime-plain": "onnxruntime", "openvino": "openvino",
          "openvino-plain": "openvino"}


def default_backends() -> list[str]:
    """eager, every installed backend, and auto."""
    return ["eager", *installed_backends(), "auto"]


def _check_backends(backends: "list[str] | None") -> list[str]:
    chosen = list(backends or default_backends())
    for name in chosen:
        choice("bench backend", name, BACKENDS)
        if name in _NEEDS and _NEEDS[name] not in installed_backends():
            require(_NEEDS[name])
    return ["eager", *(b for b in dict.fromkeys(chosen) if b != "eager")]  # eager first: the reference


class _Plain:
    """The obvious way: default torch.onnx.export (static batch) and each runtime's default settings."""

    def __init__(self, backend: str, module: Any, resolution: int, directory: Path) -> None:
        self.backend, self.module, self.resolution, self.directory = backend, module, resolution, directory
        self.calls: dict[int, Callable[[Any], Any]] = {}

    def __call__(self, x: Any) -> Any:
        if x.shape[0] not in self.calls:
            self.calls = {x.shape[0]: self._build(x.shape[0])}  # one session alive at a time
        return self.calls[x.shape[0]](x)

    def _build(self, batch: int) -> Callable[[Any], Any]:
        import torch

        path = self.directory / f"plain_b{batch}.onnx"
        if not path.exists():
            torch.onnx.export(self.module, (torch.zeros(batch, 3, self.resolution, self.resolution),), str(path),
                              verbose=False)
        if self.backend == "onnxruntime-plain":
            import onnxruntime as ort
            session = ort.InferenceSession(str(path))
            name = session.get_inputs()[0].name
            return lambda x: session.run(None, {name: x})[0]
        import openvino as ov
        compiled = ov.compile_model(ov.convert_model(str(path)), "CPU")
        return lambda x: compiled(x)[0]


class _Eager:
    """timm's module as built, under torch.inference_mode."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def __call__(self, x: Any) -> Any:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(x)).numpy()


def _engine(backend: str, module: Any, resolution: int, onnx_path: Path, cache_dir: Any) -> tuple[Any, str]:
    """A callable on numpy batches for one bench backend, and a label of its configuration."""
    if backend == "eager":
        return _Eager(module), "timm eager"
    if backend.endswith("-plain"):
        return _Plain(backend, module, resolution, onnx_path.parent), "defaults"
    source = onnx_path if backend != "torch" and onnx_path.exists() else module
    predictor = runtime(source, backend=backend, resolution=resolution, cache_dir=cache_dir)
    label = predictor.backend + (f", {predictor.threads} threads" if predictor.threads else "")
    return predictor, label


def _measure(engine: Any, resolution: int, warmup: int, runs: int, batch: int, batch_runs: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 3, resolution, resolution), dtype=np.float32)
    many = rng.standard_normal((batch, 3, resolution, resolution), dtype=np.float32)
    latency = time_calls(lambda: engine(one), warmup, runs)
    throughput = time_calls(lambda: engine(many), min(2, warmup), batch_runs) if batch_runs else None
    return {"median_ms": latency.median_ms, "p90_ms": latency.p90_ms, "runs": runs,
            "images_per_s": batch * 1e3 / throughput.median_ms if throughput else None}


def bench(models: "list[str]", backends: "list[str] | None" = None, runs: int = 100, warmup: int = 20,
          batch: int = 32, batch_runs: int = 5, progress: bool = True,
          cache_dir: "str | Path | None" = None) -> list[dict[str, Any]]:
    """Batch-1 latency (median, p90) and throughput (images/s at `batch`) per model and backend, vs eager."""
    from tqdm import tqdm

    integer("runs", runs, 1), integer("warmup", warmup, 0), integer("batch", batch, 1)
    integer("batch_runs", batch_runs, 0)
    chosen = _check_backends(backends)
    infos = {name: model_info(name) for name in models}  # unknown names fail before anything is measured
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(models) * len(chosen), disable=not progress, desc="bench", unit="run", leave=False)
    for name, info in infos.items():
        module, resolution = prepare(name)
        with tempfile.TemporaryDirectory(prefix="tinynet_zoo_bench_") as tmp:
            onnx_path = Path(tmp) / "model.onnx"
            if set(chosen) & {"onnxruntime", "openvino", "auto"} and set(installed_backends()) - {"torch"}:
                export(module, onnx_path, batch=None, resolution=resolution)
            for backend in chosen:
                bar.set_postfix_str(f"{name} {backend}")
                engine, label = _engine(backend, module, resolution, onnx_path, cache_dir)
                rows.append({"model": name, "macs": info.macs, "resolution": resolution, "backend": backend,
                             "config": label, **_measure(engine, resolution, warmup, runs, batch, batch_runs)})
                del engine
                gc.collect()
                bar.update()
        _add_ratios([r for r in rows if r["model"] == name])
    bar.close()
    return rows


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    eager = next(r for r in rows if r["backend"] == "eager")
    for row in rows:
        row["speedup"] = eager["median_ms"] / row["median_ms"]
        row["throughput_speedup"] = (row["images_per_s"] / eager["images_per_s"]
                                     if row["images_per_s"] and eager["images_per_s"] else None)


def format_rows(rows: list[dict[str, Any]]) -> str:
    """Bench rows as a Markdown table."""
    lines = ["| model | MACs | backend | config | median ms | p90 ms | x eager | img/s (batch) | x eager |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ips = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        tput = "-" if r["throughput_speedup"] is None else f"{r['throughput_speedup']:.2f}"
        lines.append(f"| {r['model']} | {r['macs'] / 1e6:.1f}M | {r['backend']} | {r['config']} | "
                     f"{r['median_ms']:.2f} | {r['p90_ms']:.2f} | {r['speedup']:.2f} | {ips} | {tput} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: "str | Path") -> Path:
    """Latency (batch 1 median) against MACs, one line per backend, saved as a PNG."""
    plt = pyplot("the latency plot")
    fig, ax = plt.subplots(figsize=(6, 4))
    for backend in dict.fromkeys(r["backend"] for r in rows):
        points = sorted((r["macs"] / 1e6, r["median_ms"]) for r in rows if r["backend"] == backend)
        ax.plot(*zip(*points), marker="o", label=backend)
    ax.set(xscale="log", yscale="log", xlabel="MACs (millions)", ylabel="batch-1 latency, median (ms)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    write_atomic(ensure_parent_dir(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)
