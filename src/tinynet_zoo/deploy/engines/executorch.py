"""ExecuTorch with XNNPACK: runs and writes ExecuTorch programs (.pte), lowered by deploy/pte.py, with a fixed
batch size."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...errors import InvalidArgumentError, UnreadableModelError
from ...files import temporary_beside
from ..fold import fold_batchnorm
from ..pte import RELATIVE_TOLERANCE, check_variant, lower
from .base import MAX_SHAPES, EngineSpec, FormatSpec, PlainRecipe, reading, register, require
from .builds import ModuleBuilds
from .verify import place, verify

if TYPE_CHECKING:
    import numpy as np
    import torch.nn as nn

_ET_FLOAT32 = 6  # ExecuTorch's (c10's) ScalarType code of float32


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


def program(builds: ModuleBuilds, batch: int, variant: str = "fp32") -> bytes:
    """The module as it is, lowered to an XNNPACK ExecuTorch program for `batch` (made once per builds, batch and
    variant; XNNPACK folds each BatchNorm into the conv before it itself)."""
    return builds.once(("pte", batch, variant), lambda: lower(builds.module, batch, builds.resolution, variant)[0])


class ExecuTorchEngine:
    """ExecuTorch's Python runtime on XNNPACK-lowered programs: one fixed-batch program per batch size."""

    name = "executorch"

    def __init__(self, methods: dict[int, Any], shape: tuple, builds: "ModuleBuilds | None" = None) -> None:
        self.methods, self.shape, self.builds = methods, shape, builds

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
    def from_module(cls, builds: ModuleBuilds, batch: int = 1) -> "ExecuTorchEngine":
        """Lower the module now for `batch`, and later for each new batch size (slow: seconds; shared through
        `builds` with every other engine made from it)."""
        engine = cls({}, (None, 3, builds.resolution, builds.resolution), builds)
        engine._method(batch)
        return engine

    def input_shape(self) -> tuple:
        """(batch or None, channels, height, width)."""
        return self.shape

    def _method(self, batch: int) -> Any:
        if batch not in self.methods:
            if len(self.methods) >= MAX_SHAPES:
                oldest = next(iter(self.methods))
                del self.methods[oldest]
                self.builds.drop(("pte", oldest, "fp32"))
            self.methods[batch] = PteForward(program(self.builds, batch))
        return self.methods[batch]

    def run(self, x: "np.ndarray") -> "np.ndarray":
        """Logits for one batch."""
        return self._method(x.shape[0])(x)


def _open_file(path: "str | Path", threads: "int | None") -> ExecuTorchEngine:
    if threads is not None:
        raise InvalidArgumentError("ExecuTorch runs on one process-wide thread pool; leave threads=None")
    return ExecuTorchEngine.from_file(path)


def write_pte(model: "nn.Module", path: Path, resolution: int, batch: int, variant: str, tolerance: float,
              overwrite: bool) -> dict[str, Any]:
    """An XNNPACK-lowered ExecuTorch program, run by ExecuTorch's runtime against the eager model."""
    buffer, batchnorm = lower(fold_batchnorm(model), batch, resolution, variant)
    with temporary_beside(path, ".pte") as tmp:
        tmp.write_bytes(buffer)
        fields = verify(model, tmp, "executorch", resolution, batch, tolerance, RELATIVE_TOLERANCE.get(variant, 0.0))
        place([(tmp, path)], overwrite)
    return {**fields, "opset": None, "batchnorm_nodes": batchnorm}


def plain(builds: ModuleBuilds, batch: int) -> Callable[[Any], Any]:
    """torch.export + XNNPACK lowering + ExecuTorch's runtime."""
    return PteForward(program(builds, batch))


register(EngineSpec("executorch", "executorch", "mobile", False, (".pte",), _open_file,
                    lambda source, threads, batch: ExecuTorchEngine.from_module(source.builds, batch)),
         FormatSpec("pte", ".pte", "an ExecuTorch program (tz.export(..., 'model.pte'))", write_pte,
                    lambda: require("executorch"), check_variant=check_variant, engine="executorch",
                    fixed_batch="an ExecuTorch program has a fixed batch size here: pass batch=N (the CLI's "
                                "--batch 0 is ONNX/OpenVINO only)"),
         PlainRecipe("executorch-plain", plain, "executorch"))
