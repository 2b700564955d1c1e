"""Export a model to ONNX (or OpenVINO IR): BatchNorm folded, written atomically, verified against eager."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import choice, integer
from ..core.twist import check_resolution
from ..errors import InvalidArgumentError, TinyNetZooError
from ..factory import create
from ..files import ensure_parent_dir, temporary_beside
from .backends import is_installed, load_engine, require, require_exporter
from .fold import fold_batchnorm

if TYPE_CHECKING:
    import torch.nn as nn

FORMATS = ("onnx", "openvino")
TOLERANCE = 1e-4  # max |logit difference| accepted between the exported graph and the eager model
VERIFY_BATCHES = (1, 3)  # batch sizes checked for a dynamic batch axis


@dataclass(frozen=True)
class ExportReport:
    """What was written and how closely it matches the eager model."""

    path: Path
    format: str
    input_shape: tuple  # (batch or "N", channels, height, width)
    opset: int
    max_abs_diff: float  # worst |logit difference| over the verified batches
    verified_batches: tuple[int, ...]
    batchnorm_nodes: int  # BatchNormalization nodes left in the graph (0: all folded)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {**asdict(self), "path": str(self.path)}


def prepare(spec: Any, resolution: "int | None" = None, pretrained: "bool | str" = False,
            ) -> tuple["nn.Module", int]:
    """An eval-mode module and its input resolution from any model spec (name, budget, Twist, folder, module)."""
    model = create(spec, pretrained=pretrained) if pretrained else create(spec)
    if resolution is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        if "input_size" not in cfg:
            raise InvalidArgumentError("this module has no pretrained_cfg['input_size']; pass resolution=")
        resolution = int(cfg["input_size"][-1])
    check_resolution(resolution)
    stem = getattr(model, "conv_stem", None)
    if stem is not None and stem.in_channels != 3:
        raise InvalidArgumentError(f"the deploy path takes 3-channel (RGB) models; this one has in_chans="
                                   f"{stem.in_channels}")
    return model.eval(), resolution


def _export_onnx(model: "nn.Module", resolution: int, batch: "int | None", target: Path, opset: "int | None") -> None:
    import torch

    example = torch.randn(2 if batch is None else batch, 3, resolution, resolution)
    dynamic = ({0: torch.export.Dim("batch", min=1)},) if batch is None else None
    program = torch.onnx.export(model, (example,), dynamo=True, verbose=False, input_names=["input"],
                                output_names=["logits"], dynamic_shapes=dynamic, opset_version=opset,
                                external_data=False)
    program.save(str(target))


def _verify(model: "nn.Module", path: Path, backend: str, resolution: int, batch: "int | None",
            tolerance: float) -> tuple[float, tuple[int, ...]]:
    """Worst |logit difference| between the written graph and the eager model over the checked batch sizes."""
    import numpy as np
    import torch

    batches = VERIFY_BATCHES if batch is None else (batch,)
    engine, worst = load_engine(backend, path, threads=None), 0.0
    for size in batches:
        x = torch.randn(size, 3, resolution, resolution, generator=torch.Generator().manual_seed(size))
        with torch.inference_mode():
            expected = model(x).numpy()
        worst = max(worst, float(np.abs(engine.run(x.numpy()) - expected).max()))
    if not worst <= tolerance:
        raise TinyNetZooError(f"the exported graph differs from the eager model by {worst:.3g} on the logits "
                              f"(tolerance {tolerance:g}); nothing was written")
    return worst, batches


def _count_batchnorm(path: Path) -> int:
    import onnx

    return sum(node.op_type == "BatchNormalization" for node in onnx.load(str(path)).graph.node)


def export(model_or_name: Any, path: "str | Path", format: str = "onnx", batch: "int | None" = 1,
           resolution: "int | None" = None, pretrained: "bool | str" = False, opset: "int | None" = None,
           tolerance: float = TOLERANCE) -> ExportReport:
    """Export a model (name, Twist or module) to ONNX or OpenVINO IR, BatchNorm folded, verified against eager.

    batch: a fixed batch size, or None for a dynamic batch axis (then batches 1 and 3 are verified). The
    file appears only after it passed verification (temporary file in the same directory, then os.replace).
    """
    choice("export format", format, FORMATS)
    if batch is not None:
        integer("batch (None for a dynamic batch axis)", batch, 1)
    verifier = "onnxruntime" if format == "onnx" and is_installed("onnxruntime") else "openvino"
    require(verifier)
    require_exporter()
    path = Path(path)
    model, resolution = prepare(model_or_name, resolution, pretrained)
    with temporary_beside(ensure_parent_dir(path), ".onnx") as tmp_onnx:
        _export_onnx(fold_batchnorm(model), resolution, batch, tmp_onnx, opset)
        import onnx
        used_opset = next(o.version for o in onnx.load(str(tmp_onnx)).opset_import if o.domain in ("", "ai.onnx"))
        batchnorm_nodes = _count_batchnorm(tmp_onnx)
        if format == "onnx":
            diff, batches = _verify(model, tmp_onnx, verifier, resolution, batch, tolerance)
            os.replace(tmp_onnx, path)
        else:
            diff, batches = _save_openvino(model, tmp_onnx, path, resolution, batch, tolerance)
    shape = ("N" if batch is None else batch, 3, resolution, resolution)
    return ExportReport(path, format, shape, used_opset, diff, batches, batchnorm_nodes)


def _save_openvino(model: "nn.Module", onnx_path: Path, path: Path, resolution: int, batch: "int | None",
                   tolerance: float) -> tuple[float, tuple[int, ...]]:
    """Convert a verified ONNX file to OpenVINO IR (path.xml + path.bin), verify it, then move both into place."""
    import openvino as ov

    if path.suffix != ".xml":
        raise InvalidArgumentError(f"an OpenVINO IR path ends in .xml (weights go next to it in .bin), got {path}")
    with temporary_beside(path, ".xml") as tmp_xml:
        tmp_bin = tmp_xml.with_suffix(".bin")
        try:
            ov.save_model(ov.convert_model(str(onnx_path)), str(tmp_xml), compress_to_fp16=False)
            result = _verify(model, tmp_xml, "openvino", resolution, batch, tolerance)
            os.replace(tmp_bin, path.with_suffix(".bin"))
            os.replace(tmp_xml, path)
        finally:
            tmp_bin.unlink(missing_ok=True)
    return result
