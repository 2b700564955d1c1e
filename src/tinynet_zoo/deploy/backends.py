"""Inference engines, one per backend, each configured for low CPU latency: onnxruntime, OpenVINO (from the torch
module or from an exported file), ExecuTorch with XNNPACK, torch eager and torch.compile.

An engine takes a float32 NCHW numpy batch and returns numpy logits; checking inputs is the Predictor's job.
Reading an exported file never lets a library's own error through: it becomes UnreadableModelError with the
path and what was expected.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..checks import choice
from ..errors import BackendNotInstalledError, InvalidArgumentError, TinyNetZooError, UnreadableModelError
from ..system import is_installed as package_installed
from .fold import fold_batchnorm
from .pte import lower

if TYPE_CHECKING:
    import numpy as np
    import torch.nn as nn


@dataclass(frozen=True)
class EngineSpec:
    """One CPU engine as `runtime` offers it: the package (and extra) it needs, whether it takes a thread count,
    and which exported files it reads. Declared once in ENGINES; every other table here is derived from it."""

    name: str
    package: str
    extra: "str | None"
    threaded: bool
    reads: tuple[str, ...] = ()  # exported-file suffixes it runs


# openvino: converted from the torch module (ov.convert_model), or read from a .onnx/.xml file;
# openvino-onnx: always through the verified ONNX export (the route the OpenVINO IR files took before)
ENGINES = (EngineSpec("onnxruntime", "onnxruntime", "deploy", True, (".onnx",)),
           EngineSpec("openvino", "openvino", "deploy", True, (".onnx", ".xml")),
           EngineSpec("openvino-onnx", "openvino", "deploy", True, (".onnx",)),
           EngineSpec("executorch", "executorch", "mobile", False, (".pte",)),
           EngineSpec("torch", "torch", None, False),
           EngineSpec("torch-compile", "torch", None, False))
BACKENDS = tuple(e.name for e in ENGINES)
PLAIN = ("eager", "compile-plain", "onnxruntime-plain", "openvino-plain", "executorch-plain")  # bench's plain recipes
BENCH_ROWS = PLAIN + BACKENDS + ("auto",)  # every row `bench` can measure
_PACKAGES = {e.name: (e.package, e.extra) for e in ENGINES}
THREADED = tuple(e.name for e in ENGINES if e.threaded)  # the backends whose engines take a thread count
FILE_KINDS = {".onnx": "an ONNX model (tz.export or torch.onnx.export)",
              ".xml": "OpenVINO IR (the .xml with its .bin beside it)",
              ".pte": "an ExecuTorch program (tz.export(..., 'model.pte'))"}
FILE_BACKENDS = {suffix: tuple(e.name for e in ENGINES if suffix in e.reads) for suffix in FILE_KINDS}
_ET_FLOAT32 = 6  # ExecuTorch's (c10's) ScalarType code of float32
RECOMPILE_LIMIT = 256  # torch.compile: compiles of one code object per process (dynamo's default: 8)
MAX_SHAPES = 4  # engines with static shapes keep one compiled model per batch size: the latest few


def is_installed(backend: str) -> bool:
    """Whether the package a backend needs can be imported."""
    return package_installed(_PACKAGES[backend][0])


def installed_backends() -> list[str]:
    """The backends whose packages are installed."""
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


def file_kind(path: "str | Path") -> str:
    """The lower-case suffix of an exported model file, refused unless an engine reads it."""
    suffix = Path(path).suffix.lower()
    if suffix not in FILE_KINDS:
        raise InvalidArgumentError(f"{Path(path).name}: not a model file this package runs; accepted: "
                                   + ", ".join(f"{s} ({k})" for s, k in FILE_KINDS.items()))
    return suffix


@contextmanager
def reading(path: "str | Path") -> Iterator[None]:
    """Turn any error a library raises while loading `path` into UnreadableModelError (path, expected format)."""
    path = Path(path)
    expected = FILE_KINDS[file_kind(path)]
    if not path.is_file():
        raise InvalidArgumentError(f"no exported model at {path} (expected {expected})")
    if path.stat().st_size == 0:
        raise UnreadableModelError(f"{path} is empty (0 bytes); expected {expected}")
    try:
        yield
    except TinyNetZooError:
        raise
    except Exception as exc:  # onnxruntime, OpenVINO, protobuf and ExecuTorch each raise their own classes
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:200]
        raise UnreadableModelError(f"cannot read {path} as {expected}: {detail}") from exc


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
        with reading(path):
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name

    def input_shape(self) -> tuple:
        """(batch or None, channels, height, width)."""
        return tuple(d if isinstance(d, int) else None for d in self.session.get_inputs()[0].shape)

    def run(self, x: "np.ndarray") -> "np.ndarray":
        """Logits for one batch."""
        return self.session.run(None, {self.input_name: x})[0]


def openvino_model(module: "nn.Module", resolution: int, batch: "int | None") -> Any:
    """OpenVINO's PyTorch frontend on the BatchNorm-folded module (`ov.convert_model` with an example input)."""
    import openvino as ov
    import torch

    example = torch.zeros(batch or 1, 3, resolution, resolution)
    with warnings.catch_warnings():  # the frontend traces with torch.jit, whose deprecation notices are not ours
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return ov.convert_model(fold_batchnorm(module), example_input=example,
                                input=[batch or -1, 3, resolution, resolution])


class OpenVinoEngine:
    """OpenVINO CPU: LATENCY hint, one stream, fp32 precision, a static-shape compiled model per batch size."""

    name = "openvino"

    def __init__(self, model: Any, threads: "int | None") -> None:
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        self.core, self.model = ov.Core(), model
        self.config: dict[Any, Any] = {hints.performance_mode: hints.PerformanceMode.LATENCY, props.num_streams: 1,
                                       hints.inference_precision: ov.Type.f32}
        if threads:
            self.config[props.inference_num_threads] = threads
        self.requests: dict[int, Any] = {}

    @classmethod
    def from_file(cls, path: "str | Path", threads: "int | None") -> "OpenVinoEngine":
        """Read an OpenVINO IR (.xml + .bin) or ONNX file; compiled once here so a bad file fails now."""
        import openvino as ov

        with reading(path):
            engine = cls(ov.Core().read_model(str(path)), threads)
            engine._request(engine.input_shape()[0] or 1)
        return engine

    @classmethod
    def from_module(cls, module: "nn.Module", resolution: int, threads: "int | None",
                    model: Any = None) -> "OpenVinoEngine":
        """Convert the torch module directly (no ONNX step); `model` reuses an earlier conversion."""
        return cls(model if model is not None else openvino_model(module, resolution, None), threads)

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


class PteForward:
    """The `forward` method of an ExecuTorch program (file or bytes) on ExecuTorch's Python runtime, as a callable
    on numpy batches; it holds the program, which the method's memory belongs to."""

    def __init__(self, data: "bytes | Path") -> None:
        from executorch.runtime import Runtime

        self.program = Runtime.get().load_program(data)
        self.method = self.program.load_method("forward")

    def __call__(self, x: "np.ndarray") -> "np.ndarray":
        import torch

        return self.method.execute([torch.from_numpy(x)])[0].numpy()


class ExecuTorchEngine:
    """ExecuTorch's Python runtime on XNNPACK-lowered programs: one fixed-batch program per batch size."""

    name = "executorch"

    def __init__(self, methods: dict[int, Any], shape: tuple, module: "nn.Module | None" = None) -> None:
        self.methods, self.shape, self.module = methods, shape, module

    @classmethod
    def from_file(cls, path: "str | Path") -> "ExecuTorchEngine":
        """Load a .pte file; its batch size is fixed."""
        with reading(path):
            method = PteForward(Path(path))
            info = method.method.metadata.input_tensor_meta(0)
            shape, dtype = tuple(info.sizes()), info.dtype()
        if len(shape) != 4 or dtype != _ET_FLOAT32:
            raise UnreadableModelError(f"{path} takes a tensor of shape {shape} and ExecuTorch dtype code {dtype}; "
                                       f"expected a float32 (code {_ET_FLOAT32}) (batch, 3, height, width) batch")
        return cls({shape[0]: method}, shape)

    @classmethod
    def from_module(cls, module: "nn.Module", resolution: int, batch: int = 1) -> "ExecuTorchEngine":
        """Lower the BatchNorm-folded module now for `batch`, and later for each new batch size (slow: seconds)."""
        engine = cls({}, (None, 3, resolution, resolution), fold_batchnorm(module))
        engine._method(batch)
        return engine

    def input_shape(self) -> tuple:
        """(batch or None, channels, height, width)."""
        return self.shape

    def _method(self, batch: int) -> Any:
        if batch not in self.methods:
            if len(self.methods) >= MAX_SHAPES:
                self.methods.pop(next(iter(self.methods)))
            self.methods[batch] = PteForward(lower(self.module, batch, self.shape[-1])[0])
        return self.methods[batch]

    def run(self, x: "np.ndarray") -> "np.ndarray":
        """Logits for one batch."""
        return self._method(x.shape[0])(x)


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


class CompiledTorchEngine(TorchEngine):
    """torch.compile (inductor) of the BatchNorm-folded module, compiled here at batch 1 (a new batch size
    compiles again on its first call)."""

    name = "torch-compile"

    def __init__(self, module: "nn.Module", resolution: int) -> None:
        import numpy as np
        import torch

        super().__init__(module, resolution)
        # every model shares timm's forward code, and dynamo compiles that code at most `recompile_limit` (8) times
        # per process before it silently runs it eager: allow one compile per model and batch size for many more
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT)
        self.module = torch.compile(self.module)
        try:
            self.run(np.zeros((1, 3, resolution, resolution), np.float32))
        except Exception as exc:  # inductor needs a working C++ toolchain; say so instead of its stack
            raise BackendNotInstalledError(f"torch.compile cannot compile this model here ({type(exc).__name__}: "
                                           f"{str(exc)[:160]}); inductor needs a C++ compiler, or use another "
                                           "backend") from exc


def file_engine(path: "str | Path", backend: "str | None" = None, threads: "int | None" = None) -> Any:
    """The engine for an exported file (.onnx, .xml or .pte) on `backend` (default: the first that reads it)."""
    suffix = file_kind(path)
    backend = backend or FILE_BACKENDS[suffix][0]
    require(backend)
    if backend not in FILE_BACKENDS[suffix]:
        raise InvalidArgumentError(f"backend {backend!r} does not read {suffix} files; for {Path(path).name} use "
                                   + " or ".join(repr(b) for b in FILE_BACKENDS[suffix]))
    if backend == "executorch":
        if threads is not None:
            raise InvalidArgumentError("ExecuTorch runs on one process-wide thread pool; leave threads=None")
        return ExecuTorchEngine.from_file(path)
    if backend == "onnxruntime":
        return OnnxRuntimeEngine(path, threads)
    return OpenVinoEngine.from_file(path, threads)
