"""The one table of deploy engines: each engine module declares its engines (EngineSpec), the file formats it
writes (FormatSpec) and its plain recipes (PlainRecipe) with `register`; everything else is looked up here.

An engine takes a float32 NCHW numpy batch and returns numpy logits; checking inputs is the Predictor's job.
Reading an exported file never lets a library's own error through: it becomes UnreadableModelError with the
path and what was expected.
"""
from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ...checks import choice
from ...errors import BackendNotInstalledError, InvalidArgumentError, TinyNetZooError, UnreadableModelError
from ...system import is_installed as package_installed

MAX_SHAPES = 4  # engines with static shapes keep one compiled model per batch size: the latest few


@dataclass(frozen=True)
class EngineSpec:
    """One CPU engine as `runtime` offers it: the package (and extra) it needs, whether it takes a thread count,
    which exported-file suffixes it reads and how it opens one (`open_file(path, threads)`), and how it is built
    from a torch module (`open_module(source, threads, batch)`, or through the verified ONNX export)."""

    name: str
    package: str
    extra: "str | None"
    threaded: bool
    reads: tuple[str, ...] = ()  # exported-file suffixes it runs
    open_file: "Callable[..., Any] | None" = None
    open_module: "Callable[..., Any] | None" = None  # None: open_file on the module's verified ONNX export
    races_files: bool = True  # auto races it on exported files (False: another engine runs files the same way)


@dataclass(frozen=True)
class FormatSpec:
    """One export format: its file suffix (and companion files), what the file is, the engine that verifies it,
    which options apply, and its writer `write(model, path, resolution, batch, opset_or_variant, tolerance,
    overwrite) -> report fields`."""

    name: str
    suffix: str
    kind: str  # what such a file is, for messages
    write: Callable[..., dict[str, Any]]
    need: Callable[[], None]  # raises BackendNotInstalledError unless it can be written and verified
    companions: tuple[str, ...] = ()  # suffixes of files written beside it
    suffix_hint: str = ""  # added to the error for a path with another suffix
    opset: bool = False  # takes an ONNX opset
    check_variant: "Callable[[str], Any] | None" = None  # None: fp32 only
    fixed_batch: str = ""  # non-empty: refuses batch=None with this message
    graph_key: "Callable[[Path], str] | None" = None  # the architecture's digest (None: the file's bytes)
    engine: str = ""  # the engine (EngineSpec name) that runs and verifies such a file


@dataclass(frozen=True)
class PlainRecipe:
    """A bench row with a library's own defaults: `build(builds, batch)` -> a callable on numpy batches, from the
    module in `builds` (engines/builds.py: conversions shared with auto's race); `needs`: the backend whose package
    it uses (None: torch alone)."""

    name: str
    build: Callable[..., Callable[[Any], Any]]
    needs: "str | None" = None
    label: str = "defaults"


def digest(data: Any) -> str:
    """A short stable hash of JSON-able data."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """A short hash of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


SPECS: dict[str, EngineSpec] = {}
FORMATS: dict[str, FormatSpec] = {}
RECIPES: dict[str, PlainRecipe] = {}


def register(*items: "EngineSpec | FormatSpec | PlainRecipe") -> None:
    """Add engines, formats and plain recipes to the table (an engine module calls this once)."""
    for item in items:
        table = SPECS if isinstance(item, EngineSpec) else FORMATS if isinstance(item, FormatSpec) else RECIPES
        table[item.name] = item


def file_kinds() -> dict[str, str]:
    """suffix -> what such a file is, for every format written."""
    return {f.suffix: f.kind for f in FORMATS.values()}


def is_installed(backend: str) -> bool:
    """Whether the package a backend needs can be imported."""
    return package_installed(SPECS[backend].package)


def require(backend: str) -> None:
    """Raise BackendNotInstalledError (naming the extra to install) unless `backend` can be used."""
    if backend not in SPECS:
        choice("backend", backend, ["auto", *SPECS])
    package, extra = SPECS[backend].package, SPECS[backend].extra
    if not is_installed(backend):
        how = f"pip install 'tinynet-zoo[{extra}]'" if extra else f"pip install {package}"
        raise BackendNotInstalledError(f"backend {backend!r} needs the {package!r} package, which is not installed: "
                                       f"{how}")


def file_kind(path: "str | Path") -> str:
    """The lower-case suffix of an exported model file, refused unless an engine reads it."""
    suffix, kinds = Path(path).suffix.lower(), file_kinds()
    if suffix not in kinds:
        raise InvalidArgumentError(f"{Path(path).name}: not a model file this package runs; accepted: "
                                   + ", ".join(f"{s} ({k})" for s, k in kinds.items()))
    return suffix


@contextmanager
def reading(path: "str | Path") -> Iterator[None]:
    """Turn any error a library raises while loading `path` into UnreadableModelError (path, expected format)."""
    path = Path(path)
    expected = file_kinds()[file_kind(path)]
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


def file_backends(suffix: str) -> tuple[str, ...]:
    """The backends that read files with this suffix, the default first."""
    return tuple(e.name for e in SPECS.values() if suffix in e.reads)


def file_engine(path: "str | Path", backend: "str | None" = None, threads: "int | None" = None) -> Any:
    """The engine for an exported file (.onnx, .xml or .pte) on `backend` (default: the first that reads it)."""
    suffix = file_kind(path)
    readers = file_backends(suffix)
    backend = backend or readers[0]
    require(backend)
    if backend not in readers:
        raise InvalidArgumentError(f"backend {backend!r} does not read {suffix} files; for {Path(path).name} use "
                                   + " or ".join(repr(b) for b in readers))
    return SPECS[backend].open_file(path, threads)
