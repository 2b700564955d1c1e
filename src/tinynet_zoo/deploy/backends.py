"""Inference engines, one per backend (onnxruntime, OpenVINO, torch), each configured for low CPU latency.

An engine takes a float32 NCHW numpy batch and returns numpy logits; checking shapes is the Predictor's job.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import choice
from ..errors import BackendNotInstalledError
from ..system import is_installed as package_installed
from .fold import fold_batchnorm

if TYPE_CHECKING:
    import numpy as np
    import torch.nn as nn

BACKENDS = ("onnxruntime", "openvino", "torch")
_PACKAGES = {"onnxruntime": ("onnxruntime", "deploy"), "openvino": ("openvino", "deploy"), "torch": ("torch", None)}
MAX_SHAPES = 4  # OpenVINO compiles one static-shape model per batch size; keep the latest few


def is_installed(backend: str) -> bool:
    """Whether the package a backend needs can be imported."""
    return package_installed(_PACKAGES[backend][0])


def installed_backends() -> list[str]:
    """The backends whose packages are installed, fastest-to-load first."""
    return [b for b in BACKENDS if is_installed(b)]


def require(backend: str) -> None:
    """Raise BackendNotInstalledError (naming the extra to install) unless `backend` can be used."""
    if backend not in _PACKAGES:
        choice("backend", backend, ["auto", *BACKENDS])
    package, extra = _PACKAGES[backend]
    if not is_installed(backend):
        how = f"pip install 'tinynet-zoo[{extra}]'" if extra else f"pip install {package}"
        raise BackendNotInstalledError(f"backend {backend!r} needs the {package!r} package, which is not installed: "
                                       f"{how}")


def require_exporter() -> None:
    """Raise BackendNotInstalledError unless torch's ONNX exporter can run (it needs onnx and onnxscript)."""
    missing = [pkg for pkg in ("onnx", "onnxscript") if not package_installed(pkg)]
    if missing:
        raise BackendNotInstalledError(f"exporting to ONNX needs {' and '.join(map(repr, missing))}, not installed: "
                                       "pip install 'tinynet-zoo[deploy]'")


class OnnxRuntimeEngine:
    """onnxruntime CPU session: all graph optimisations, `threads` intra-op threads, sequential execution."""

    name = "onnxruntime"

    def __init__(self, path: "str | Path", threads: "int | None") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3  # initializer clean-up notices are not the user's concern
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def input_shape(self) -> tuple:
        """(batch or None, channels, height, width)."""
        return tuple(d if isinstance(d, int) else None for d in self.session.get_inputs()[0].shape)

    def run(self, x: "np.ndarray") -> "np.ndarray":
        """Logits for one batch."""
        return self.session.run(None, {self.input_name: x})[0]


class OpenVinoEngine:
    """OpenVINO CPU: LATENCY hint, one stream, fp32 precision, a static-shape compiled model per batch size."""

    name = "openvino"

    def __init__(self, path: "str | Path", threads: "int | None") -> None:
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        self.core = ov.Core()
        self.model = self.core.read_model(str(path))
        self.config: dict[Any, Any] = {hints.performance_mode: hints.PerformanceMode.LATENCY, props.num_streams: 1,
                                       hints.inference_precision: ov.Type.f32}
        if threads:
            self.config[props.inference_num_threads] = threads
        self.requests: dict[int, Any] = {}

    def input_shape(self) -> tuple:
        """(batch or None, channels, height, width)."""
        shape = self.model.input(0).get_partial_shape()
        return tuple(d.get_length() if d.is_static else None for d in shape)

    def _request(self, batch: int) -> Any:
        if batch not in self.requests:
            model = self.model.clone()
            model.reshape([batch, *self.input_shape()[1:]])
            if len(self.requests) >= MAX_SHAPES:
                self.requests.pop(next(iter(self.requests)))
            self.requests[batch] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        return self.requests[batch]

    def run(self, x: "np.ndarray") -> "np.ndarray":
        """Logits for one batch (a copy: the request's buffer is reused by the next call)."""
        return self._request(x.shape[0]).infer({0: x})[0].copy()


class TorchEngine:
    """The eager module with BatchNorm folded, run under torch.inference_mode (torch's own thread settings)."""

    name = "torch"

    def __init__(self, module: "nn.Module", resolution: int) -> None:
        self.module = fold_batchnorm(module)
        self.resolution = resolution

    def input_shape(self) -> tuple:
        """(batch or None, channels, height, width)."""
        return (None, 3, self.resolution, self.resolution)

    def run(self, x: "np.ndarray") -> "np.ndarray":
        """Logits for one batch."""
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(x)).numpy()


def load_engine(backend: str, path: "str | Path", threads: "int | None") -> Any:
    """An onnxruntime or OpenVINO engine for an exported file."""
    require(backend)
    if backend == "onnxruntime":
        return OnnxRuntimeEngine(path, threads)
    return OpenVinoEngine(path, threads)
