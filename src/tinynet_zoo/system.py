"""Facts about this machine and environment: the cache folder, usable cores, CPU model and flags, optional
packages (matplotlib for plots)."""
from __future__ import annotations

import importlib.util
import os
import platform
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import ExtraNotInstalledError

CACHE_ENV = "TINYNET_ZOO_CACHE"


def cache_root(cache_dir: "str | Path | None" = None) -> Path:
    """The tinynet_zoo cache folder: `cache_dir`, else $TINYNET_ZOO_CACHE, else ~/.cache/tinynet_zoo."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tinynet_zoo").expanduser()


def usable_cores() -> int:
    """CPU cores this process may run on (CPU affinity respected, e.g. under taskset or a container limit)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (e.g. 'avx2', 'amx_bf16'); empty where /proc/cpuinfo is not available."""
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """CPUs with AMX or AVX512-BF16 run bf16 convolutions faster than fp32; others emulate it slowly."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def is_installed(package: str) -> bool:
    """Whether a top-level package can be imported (without importing it)."""
    return importlib.util.find_spec(package) is not None


def pyplot(purpose: str, extra: str = "plot") -> Any:
    """matplotlib.pyplot on the file-only Agg backend, or ExtraNotInstalledError naming the extra."""
    if not is_installed("matplotlib"):
        raise ExtraNotInstalledError(f"{purpose} needs matplotlib, which is not installed: "
                                     f"pip install 'tinynet-zoo[{extra}]'")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
