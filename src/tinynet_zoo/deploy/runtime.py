"""`runtime`: a callable predictor on the fastest installed CPU backend (onnxruntime, OpenVINO or torch)."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import BackendNotInstalledError, InvalidArgumentError
from ..system import usable_cores
from .autoselect import cached_choice, choice_entry, graph_key, measure_candidates, store_choice
from .backends import OnnxRuntimeEngine, OpenVinoEngine, TorchEngine, installed_backends, require
from .export import export, prepare

EXPORTED_SUFFIXES = (".onnx", ".xml")


@dataclass
class Predictor:
    """Logits for NCHW float batches (numpy in, numpy out; torch in, torch out) on one backend."""

    engine: Any
    backend: str
    threads: "int | None"
    input_shape: tuple  # (batch or None for any, channels, height, width)
    choice: "dict[str, Any] | None" = field(default=None, repr=False)  # auto: the measurements behind it

    def expected_shape(self) -> str:
        """The accepted input shape as text, N standing for any batch size."""
        return "(" + ", ".join("N" if d is None else str(d) for d in self.input_shape) + ")"

    def __call__(self, batch: Any) -> Any:
        """Logits of a batch (numpy array or torch tensor, float, NCHW)."""
        import numpy as np

        is_torch = type(batch).__module__.split(".")[0] == "torch"
        array = batch.detach().cpu().numpy() if is_torch else batch
        if not isinstance(array, np.ndarray):
            raise InvalidArgumentError(f"expected a numpy array or torch tensor of shape {self.expected_shape()}, "
                                       f"got {type(batch).__name__}")
        if array.ndim != len(self.input_shape) or any(
                want is not None and want != got for want, got in zip(self.input_shape, array.shape)):
            raise InvalidArgumentError(f"input of shape {tuple(array.shape)} does not match the expected shape "
                                       f"{self.expected_shape()} (float32, NCHW)")
        logits = self.engine.run(np.ascontiguousarray(array, dtype=np.float32))
        if is_torch:
            import torch
            return torch.from_numpy(logits)
        return logits


def _candidates(file: "Path | None", module: Any, resolution: "int | None",
                threads: "int | None") -> dict[str, Callable[[], Any]]:
    """backend:threads configurations worth timing on this machine (1 and all usable cores), by label."""
    thread_counts = [threads] if threads else sorted({1, usable_cores()})
    out: dict[str, Callable[[], Any]] = {}
    for backend in installed_backends():
        if backend == "torch" and module is not None:
            out["torch"] = lambda: TorchEngine(module, resolution)
        elif backend == "onnxruntime" and file is not None and file.suffix == ".onnx":
            out.update({f"onnxruntime:{t}": (lambda t=t: OnnxRuntimeEngine(file, t)) for t in thread_counts})
        elif backend == "openvino" and file is not None:
            out.update({f"openvino:{t}": (lambda t=t: OpenVinoEngine(file, t)) for t in thread_counts})
    return out


def _source(model_or_name_or_path: Any, resolution: "int | None", pretrained: "bool | str",
            ) -> tuple["Path | None", Any, "int | None"]:
    """(exported file or None, module or None, resolution) for what the caller passed."""
    value = model_or_name_or_path
    if isinstance(value, (str, Path)) and Path(value).suffix.lower() in EXPORTED_SUFFIXES:
        if not Path(value).is_file():
            raise InvalidArgumentError(f"no exported model at {value} (expected an .onnx file or OpenVINO .xml)")
        return Path(value), None, resolution
    module, resolution = prepare(value, resolution, pretrained)
    return None, module, resolution


def _select(candidates: dict[str, Callable[[], Any]], key: str, cache_dir: Any,
            remeasure: bool) -> tuple[str, Any, dict[str, Any]]:
    entry = None if remeasure else cached_choice(key, cache_dir)
    if entry is not None and entry.get("choice") in candidates:
        return entry["choice"], candidates[entry["choice"]](), {**entry, "cached": True}
    label, engine, medians = measure_candidates(candidates)
    entry = choice_entry(label, medians)
    store_choice(key, entry, cache_dir)
    return label, engine, {**entry, "cached": False}


def runtime(model_or_name_or_path: Any, backend: str = "auto", threads: "int | None" = None,
            resolution: "int | None" = None, pretrained: "bool | str" = False,
            cache_dir: "str | Path | None" = None, remeasure: bool = False) -> Predictor:
    """A predictor for a model name, Twist, module or exported .onnx/.xml file on a CPU backend.

    backend: 'auto' (time every installed backend and thread count briefly at batch 1, keep the fastest;
    cached per machine and architecture), 'onnxruntime', 'openvino' or 'torch'. threads: intra-op threads
    for onnxruntime/OpenVINO (default: the backend's own; with 'auto', 1 and all cores are tried). Models
    are exported with a dynamic batch axis.
    """
    if backend != "auto":
        require(backend)  # an unknown backend gets a close-match suggestion; a missing one names the extra
    file, module, resolution = _source(model_or_name_or_path, resolution, pretrained)
    if backend == "torch" and module is None:
        raise InvalidArgumentError("backend 'torch' runs a model or a model name, not an exported file; "
                                   "use 'onnxruntime' or 'openvino' for it")
    with tempfile.TemporaryDirectory(prefix="tinynet_zoo_") as tmp:
        if file is None and backend != "torch" and set(installed_backends()) - {"torch"}:
            file = export(module, Path(tmp) / "model.onnx", batch=None, resolution=resolution).path
        if backend == "auto":
            candidates = _candidates(file, module, resolution, threads)
            if not candidates:
                raise BackendNotInstalledError("no installed engine runs exported files: pip install "
                                               "'tinynet-zoo[deploy]' (onnxruntime, openvino)")
            label, engine, choice = _select(candidates, graph_key(file, module, resolution), cache_dir, remeasure)
            backend, _, count = label.partition(":")
            threads = int(count) if count else None
        else:
            engine, choice = _engine(backend, file, module, resolution, threads), None
        shape = engine.input_shape()
    return Predictor(engine, backend, threads, shape, choice)


def _engine(backend: str, file: "Path | None", module: Any, resolution: "int | None", threads: "int | None") -> Any:
    if backend == "torch":
        return TorchEngine(module, resolution)
    if backend == "onnxruntime" and file is not None and file.suffix != ".onnx":
        raise InvalidArgumentError(f"onnxruntime reads .onnx files, not {file.name}; use backend='openvino'")
    return OnnxRuntimeEngine(file, threads) if backend == "onnxruntime" else OpenVinoEngine(file, threads)
