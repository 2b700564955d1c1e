"""`runtime`: a callable predictor on the fastest installed CPU engine (raced and cached), or on the one named."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..checks import choice, integer, name_list, positive
from ..errors import BackendNotInstalledError, InvalidArgumentError
from ..system import usable_cores
from .autoselect import cached_choice, choice_key, graph_key, measure_candidates, store_choice
from .backends import (BACKENDS, ENGINES, FILE_BACKENDS, FILE_KINDS, THREADED, file_engine, file_kind,
                       installed_backends, require)
from .engines.builds import ModuleBuilds
from .export import export, prepare

FLOAT_DTYPES = ("float16", "float32", "float64")  # numpy input dtypes accepted (converted to float32)
MAX_THREADS_PER_CORE = 4
_SPECS = {e.name: e for e in ENGINES}


def _as_array(batch: Any, expected: str) -> tuple[Any, bool]:
    """(numpy array, whether the input was a torch tensor); anything but a float array or tensor is refused."""
    import numpy as np

    is_torch = type(batch).__module__.split(".")[0] == "torch"
    dtype = batch.dtype if is_torch or isinstance(batch, np.ndarray) else None
    if dtype is None:
        raise InvalidArgumentError(f"expected a numpy array or torch tensor of shape {expected}, got "
                                   f"{type(batch).__name__}")
    if not (batch.is_floating_point() if is_torch else dtype.name in FLOAT_DTYPES):
        accepted = "torch float dtypes" if is_torch else ", ".join(FLOAT_DTYPES)
        raise InvalidArgumentError(f"input dtype {dtype} is not accepted: expected float32 ({accepted} are "
                                   f"converted) holding pixels normalised with the model's mean and std, e.g. by "
                                   f"tz.transforms(model), of shape {expected}")
    return (batch.detach().cpu().float().numpy() if is_torch else batch), is_torch


@dataclass
class Predictor:
    """Logits for NCHW float batches (numpy in, numpy out; torch in, torch out) on one backend."""

    engine: Any
    backend: str
    threads: "int | None"
    input_shape: tuple  # (batch or None for any, channels, height, width)
    choice: "dict[str, Any] | None" = field(default=None, repr=False)  # auto: the race behind it

    def expected_shape(self) -> str:
        """The accepted input shape as text, N standing for any batch size."""
        return "(" + ", ".join("N" if d is None else str(d) for d in self.input_shape) + ")"

    def __call__(self, batch: Any) -> Any:
        """Logits of a batch (numpy array or torch tensor, float, NCHW)."""
        import numpy as np

        array, is_torch = _as_array(batch, self.expected_shape())
        if array.ndim != len(self.input_shape) or any(
                want is not None and want != got for want, got in zip(self.input_shape, array.shape)):
            channels = (f"; it has {array.shape[1]} channels where {self.input_shape[1]} (RGB) are expected"
                        if array.ndim == 4 and array.shape[1] != self.input_shape[1] else "")
            raise InvalidArgumentError(f"input of shape {tuple(array.shape)} does not match the expected shape "
                                       f"{self.expected_shape()} (float32, NCHW){channels}")
        logits = self.engine.run(np.ascontiguousarray(array, dtype=np.float32))
        if is_torch:
            import torch
            return torch.from_numpy(logits)
        return logits


class _Source:
    """What engines are built from: an exported file, or a module's shared conversions (`builds`), whose verified
    ONNX export is made once, on demand, in their folder."""

    def __init__(self, file: "Path | None", builds: "ModuleBuilds | None") -> None:
        self.file, self.builds = file, builds
        self.module = builds.module if builds is not None else None
        self.resolution = builds.resolution if builds is not None else None

    def backends(self) -> tuple[str, ...]:
        """The backends that can run this source."""
        return FILE_BACKENDS[file_kind(self.file)] if self.file is not None else BACKENDS

    def key(self) -> str:
        """The architecture key of the cached choice."""
        return graph_key(self.file, self.module, self.resolution)

    def onnx(self) -> Path:
        """The verified dynamic-batch ONNX export of the module."""
        return self.builds.once(("onnx", "verified"), lambda: export(
            self.module, self.builds.folder / "model.onnx", batch=None, resolution=self.resolution).path)

    def engine(self, backend: str, threads: "int | None", batch: int = 1) -> Any:
        """A ready engine on `backend`."""
        spec = _SPECS[backend]
        if self.file is not None:
            if not spec.reads:
                raise InvalidArgumentError(f"backend {backend!r} runs a model or a model name, not an exported file; "
                                           f"use {' or '.join(map(repr, self.backends()))} for it")
            return file_engine(self.file, backend, threads)
        if not spec.threaded and threads is not None:
            raise InvalidArgumentError(f"backend {backend!r} uses its process-wide thread setting; leave threads=None")
        if spec.open_module is None:  # built from the module's verified ONNX export
            return spec.open_file(self.onnx(), threads)
        return spec.open_module(self, threads, batch)


def _source(value: Any, resolution: "int | None", pretrained: "bool | str") -> tuple["Path | None", Any, "int | None"]:
    """(exported file or None, module or None, resolution) for what the caller passed."""
    suffix = Path(value).suffix.lower() if isinstance(value, (str, Path)) else ""
    if suffix in FILE_KINDS or (suffix and Path(value).is_file()):
        file_kind(value)  # a file of another kind is refused with the accepted extensions
        if Path(value).is_dir():
            raise InvalidArgumentError(f"{value} is a folder, not an exported model file (expected "
                                       f"{FILE_KINDS[file_kind(value)]})")
        if not Path(value).is_file():
            raise InvalidArgumentError(f"no exported model at {value} (expected {FILE_KINDS[file_kind(value)]})")
        return Path(value), None, resolution
    module, resolution = prepare(value, resolution, pretrained)
    return None, module, resolution


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _candidates(source: _Source, allowed: list[str], threads: "int | None",
                batch: int) -> dict[str, Callable[[], Any]]:
    """label -> engine builder for every configuration auto races: each threaded backend at 1 thread and at all
    usable cores (or at `threads`), the others at their own thread setting (left out when `threads` differs)."""
    counts = [threads] if threads else sorted({1, usable_cores()})
    out: dict[str, Callable[[], Any]] = {}
    for backend in allowed:
        if backend in THREADED:
            out.update({f"{backend}:{t}": (lambda b=backend, t=t: source.engine(b, t, batch)) for t in counts})
        elif threads is None or (_SPECS[backend].package == "torch" and _torch_threads() == threads):
            out[backend] = lambda b=backend: source.engine(b, None, batch)
    return out


def _candidate_list(candidates: Any) -> "list[str] | None":
    """None, one backend name, or a non-empty list of names, as a list (a single string is one candidate)."""
    return name_list("candidates", candidates, f"name at least one backend to race, e.g. {installed_backends()} "
                     "(installed), or leave candidates=None for all of them", what="backend names")


def _allowed(source: _Source, candidates: "list[str] | None") -> list[str]:
    runnable = [b for b in source.backends() if source.file is None or _SPECS[b].races_files]
    if candidates is None:
        return [b for b in runnable if b in installed_backends()]
    for name in candidates:
        if source.file is not None and name in BACKENDS and name not in runnable:
            raise InvalidArgumentError(f"candidate {name!r} does not run {source.file.suffix} files; for "
                                       f"{source.file.name} race {' or '.join(map(repr, runnable))}")
        choice("auto candidate", name, runnable)
        require(name)
    return list(dict.fromkeys(candidates))


def _none_left(allowed: list[str], threads: "int | None") -> BackendNotInstalledError:
    """Why no configuration is left to race: nothing installed, or the thread setting rules every candidate out."""
    if not allowed:
        extras: dict[str, list[str]] = {}
        for spec in ENGINES:
            if spec.extra and spec.package not in extras.setdefault(spec.extra, []):
                extras[spec.extra].append(spec.package)
        return BackendNotInstalledError("no installed engine runs this model: pip install " + " or ".join(
            f"'tinynet-zoo[{extra}]' ({', '.join(packages)})" for extra, packages in extras.items()))
    return BackendNotInstalledError(
        f"no candidate runs at threads={threads}: {', '.join(allowed)} "
        f"{'uses its' if len(allowed) == 1 else 'use their'} process-wide thread setting "
        f"(torch's is {_torch_threads()}); leave threads=None, or add one of {', '.join(THREADED)} to candidates")


def _auto(source: _Source, threads: "int | None", batch: int, candidates: "list[str] | None", cache_dir: Any,
          remeasure: bool, time_cap_s: "float | None" = None) -> tuple[Any, str, "int | None", dict[str, Any]]:
    allowed = _allowed(source, candidates)
    builders = _candidates(source, allowed, threads, batch)
    if not builders:
        raise _none_left(allowed, threads)
    key = choice_key(source.key(), batch, threads, list(builders))
    entry = None if remeasure else cached_choice(key, cache_dir)
    if entry is not None and entry.get("choice") in builders:
        label, engine, record = entry["choice"], builders[entry["choice"]](), {**entry, "cached": True}
    else:
        label, engine, record = measure_candidates(builders, batch, time_cap_s)
        record.update(threads=threads, candidates=list(builders))
        store_choice(key, record, cache_dir)
        record = {**record, "cached": False}
    backend, _, count = label.partition(":")
    return engine, backend, int(count) if count else None, record


def runtime(model_or_name_or_path: Any, backend: str = "auto", threads: "int | None" = None,
            resolution: "int | None" = None, pretrained: "bool | str" = False,
            cache_dir: "str | Path | None" = None, remeasure: bool = False, batch: int = 1,
            candidates: "list[str] | str | None" = None, time_cap_s: "float | None" = None) -> Predictor:
    """A predictor for a model spec or an exported .onnx/.xml/.pte file on a CPU backend.

    backend: 'auto' races every installed engine (each threaded one at 1 thread and at all cores) on
    `batch`-image inputs until the winner is clear, and caches the choice per machine, architecture, batch,
    threads and candidates (`candidates` limits the race); or one of onnxruntime, openvino (from the torch
    module), openvino-onnx, executorch, torch, torch-compile. threads: intra-op threads for onnxruntime and
    OpenVINO (1 to 4 per usable core; default: the engine's own). candidates: a list of backends, or one.
    time_cap_s: the race's time limit in seconds (default 30).
    """
    if backend != "auto":
        require(backend)  # an unknown backend gets a close-match suggestion; a missing one names the extra
    if threads is not None:
        integer("threads", threads, 1, usable_cores() * MAX_THREADS_PER_CORE)
    integer("batch", batch, 1)
    candidates = _candidate_list(candidates)
    if time_cap_s is not None:
        positive("time_cap_s", time_cap_s)
    file, module, resolution = _source(model_or_name_or_path, resolution, pretrained)
    with tempfile.TemporaryDirectory(prefix="tinynet_zoo_") as tmp:
        builds = None if file is not None else ModuleBuilds(module, resolution, Path(tmp))
        return _predictor(_Source(file, builds), backend, threads, batch, candidates, cache_dir, remeasure,
                          time_cap_s)


def module_predictor(builds: ModuleBuilds, backend: str = "auto", batch: int = 1,
                     candidates: "list[str] | None" = None, cache_dir: "str | Path | None" = None,
                     time_cap_s: "float | None" = None) -> Predictor:
    """`runtime` on a module's shared conversions (bench: auto's race reuses the plain rows' builds); backend and
    candidates are the caller's, already checked."""
    return _predictor(_Source(None, builds), backend, None, batch, candidates, cache_dir, False, time_cap_s)


def _predictor(source: _Source, backend: str, threads: "int | None", batch: int, candidates: "list[str] | None",
               cache_dir: Any, remeasure: bool, time_cap_s: "float | None") -> Predictor:
    if backend == "auto":
        engine, backend, threads, record = _auto(source, threads, batch, candidates, cache_dir, remeasure, time_cap_s)
    else:
        engine, record = source.engine(backend, threads, batch), None
    return Predictor(engine, backend, threads, engine.input_shape(), record)
