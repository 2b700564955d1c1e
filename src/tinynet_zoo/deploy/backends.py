"""The deploy engines as `runtime`, `export` and `bench` see them, all derived from the one table that the
engine modules in deploy/engines/ register into (onnxruntime, OpenVINO, ExecuTorch with XNNPACK, torch)."""
from __future__ import annotations

from .engines import FORMATS, RECIPES, SPECS
from .engines.base import (MAX_SHAPES, EngineSpec, file_engine, file_kind, is_installed, reading,  # noqa: F401
                           require)
from .engines.executorch import ExecuTorchEngine, PteForward  # noqa: F401
from .engines.onnxruntime import OnnxRuntimeEngine, require_exporter  # noqa: F401
from .engines.openvino import OpenVinoEngine, openvino_model  # noqa: F401
from .engines.torch import RECOMPILE_LIMIT, CompiledTorchEngine, TorchEngine  # noqa: F401

ENGINES = tuple(SPECS.values())
BACKENDS = tuple(SPECS)
# bench's plain recipes, torch's own first (eager is the reference)
PLAIN = tuple(sorted(RECIPES, key=lambda r: bool(RECIPES[r].needs) and SPECS[RECIPES[r].needs].package != "torch"))
BENCH_ROWS = PLAIN + BACKENDS + ("auto",)  # every row `bench` can measure
THREADED = tuple(e.name for e in ENGINES if e.threaded)  # the backends whose engines take a thread count
FILE_KINDS = {f.suffix: f.kind for f in FORMATS.values()}
FILE_BACKENDS = {suffix: tuple(e.name for e in ENGINES if suffix in e.reads) for suffix in FILE_KINDS}


def installed_backends() -> list[str]:
    """The backends whose packages are installed."""
    return [b for b in BACKENDS if is_installed(b)]
