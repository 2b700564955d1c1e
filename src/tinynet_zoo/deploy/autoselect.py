"""backend='auto': time each installed backend configuration briefly, keep the fastest, cache the choice.

The cache is one JSON file in the tinynet_zoo cache folder (see `system.cache_root`), deploy/backend_choice.json,
keyed by a machine fingerprint (CPU model, cores, library versions) and the graph's architecture (operators
and tensor shapes, not weight values); it is rewritten atomically under a file lock.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from ..files import json_text, write_text_atomic
from ..system import cache_root, cpu_model, usable_cores
from .timing import time_calls

AUTO_WARMUP, AUTO_RUNS = 5, 15  # per candidate and round (two rounds): about 40 batch-1 calls
CACHE_FILE = "deploy/backend_choice.json"
_VERSIONED = ("onnxruntime", "openvino", "torch", "numpy")


def _version(package: str) -> "str | None":
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_fingerprint() -> dict[str, Any]:
    """What makes a latency measurement transferable: CPU model, usable cores, library versions."""
    return {"cpu": cpu_model(), "cores": usable_cores(), "machine": platform.machine(),
            "python": platform.python_version(),
            **{pkg: _version(pkg) for pkg in _VERSIONED}}


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def graph_key(onnx_path: "str | Path | None", module: Any = None, resolution: "int | None" = None) -> str:
    """Architecture key: operators and tensor shapes of an ONNX/IR graph, or a module's parameter shapes."""
    if onnx_path is not None and str(onnx_path).endswith(".onnx"):
        import onnx

        graph = onnx.load(str(onnx_path), load_external_data=False).graph
        return _digest([[n.op_type for n in graph.node], sorted(list(t.dims) for t in graph.initializer),
                        str(graph.input[0].type)])
    if onnx_path is not None:  # OpenVINO IR: the .xml holds the topology and shapes
        return _digest(Path(onnx_path).read_text())
    return _digest([[list(p.shape) for p in module.state_dict().values()], resolution])


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_choice(key: str, cache_dir: "str | Path | None" = None) -> "dict[str, Any] | None":
    """The cached choice for a graph on this machine, or None."""
    machine = _digest(machine_fingerprint())
    return _read(cache_root(cache_dir) / CACHE_FILE).get(machine, {}).get("models", {}).get(key)


def store_choice(key: str, entry: dict[str, Any], cache_dir: "str | Path | None" = None) -> Path:
    """Record a choice for a graph on this machine (locked read-modify-write, atomic replace)."""
    from filelock import FileLock

    path = cache_root(cache_dir) / CACHE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fingerprint = machine_fingerprint()
    with FileLock(str(path) + ".lock"):
        data = _read(path)
        slot = data.setdefault(_digest(fingerprint), {"machine": fingerprint, "models": {}})
        slot["models"][key] = entry
        write_text_atomic(path, json_text(data, indent=1))
    return path


def measure_candidates(candidates: dict[str, Callable[[], Any]]) -> tuple[str, Any, dict[str, float]]:
    """Time each candidate engine at batch 1; (best label, its engine, ms per label).

    Two rounds in opposite orders, one engine running at a time, each candidate scored by its better median:
    a burst of load from other processes then penalises no candidate only because of when it ran.
    """
    import numpy as np

    engines = {label: build() for label, build in candidates.items()}
    shape = [1 if d is None else d for d in next(iter(engines.values())).input_shape()]
    batch = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    medians: dict[str, float] = {}
    for order in (list(engines), list(engines)[::-1]):
        for label in order:
            ms = time_calls(lambda: engines[label].run(batch), AUTO_WARMUP, AUTO_RUNS).median_ms
            medians[label] = min(ms, medians.get(label, ms))
    best = min(medians, key=medians.__getitem__)
    return best, engines[best], medians


def choice_entry(label: str, medians: dict[str, float]) -> dict[str, Any]:
    """The cache record for one measured choice."""
    return {"choice": label, "median_ms": {k: round(v, 4) for k, v in medians.items()},
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": AUTO_RUNS}
