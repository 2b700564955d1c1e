"""torch itself: the eager module and torch.compile (inductor), both from a module only (no file format)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from ...errors import BackendNotInstalledError
from ..fold import fold_batchnorm
from .base import EngineSpec, PlainRecipe, register
from .builds import ModuleBuilds

if TYPE_CHECKING:
    import numpy as np
    import torch.nn as nn

RECOMPILE_LIMIT = 256  # torch.compile: compiles of one code object per process (dynamo's default: 8)


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


def _plain(compiled: bool) -> Callable[..., Callable[[Any], Any]]:
    """eager: torch.inference_mode on timm's module as built; compile-plain: torch.compile(model) likewise."""

    def build(builds: ModuleBuilds, batch: int) -> Callable[[Any], Any]:
        import torch

        network = torch.compile(builds.module) if compiled else builds.module

        def run(x: Any) -> Any:
            with torch.inference_mode():
                return network(torch.from_numpy(x)).numpy()
        return run
    return build


register(EngineSpec("torch", "torch", None, False,
                    open_module=lambda source, threads, batch: TorchEngine(source.module, source.resolution)),
         EngineSpec("torch-compile", "torch", None, False,
                    open_module=lambda source, threads, batch: CompiledTorchEngine(source.module, source.resolution)),
         PlainRecipe("eager", _plain(False), label="timm eager"),
         PlainRecipe("compile-plain", _plain(True), "torch-compile"))
