"""Export a model to ONNX, OpenVINO IR or an ExecuTorch program (.pte): BatchNorm folded, verified against the
eager model, written atomically (a temporary file beside the target, renamed once verified), never over an
existing file unless asked."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import boolean, choice, integer, positive
from ..core.twist import check_resolution
from ..errors import InvalidArgumentError, TinyNetZooError
from ..factory import create
from ..files import ensure_parent_dir, refuse_existing, temporary_beside
from .backends import file_engine, is_installed, openvino_model, require, require_exporter
from .fold import fold_batchnorm
from .int8_gate import MAX_DROP, MIN_AGREEMENT
from .pte import RELATIVE_TOLERANCE, check_variant, lower
from .quantize import PRECISIONS, check_int8, write_int8

if TYPE_CHECKING:
    import torch.nn as nn

FORMATS = ("onnx", "openvino", "pte")
SUFFIXES = {"onnx": ".onnx", "openvino": ".xml", "pte": ".pte"}
TOLERANCE = 1e-4  # max |logit difference| accepted (times the largest |logit| where that is below 1)
VERIFY_BATCHES = (1, 3)  # batch sizes checked for a dynamic batch axis


@dataclass(frozen=True)
class ExportReport:
    """What was written and how closely it matches the eager model."""

    path: Path
    format: str
    input_shape: tuple  # (batch or "N", channels, height, width)
    opset: "int | None"  # ONNX only
    max_abs_diff: float  # worst |logit difference| over the verified batches
    verified_batches: tuple[int, ...]
    batchnorm_nodes: int  # batch-norm operations left in the graph (0: all folded)
    variant: str = "fp32"
    tolerance: float = TOLERANCE  # the bound max_abs_diff was held to
    file_bytes: int = 0  # the file's size (OpenVINO: .xml + .bin)
    int8: "dict[str, Any] | None" = None  # precision="int8": the accuracy gate's numbers (deploy/int8_gate.py)

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
    _check_exportable(model)
    stem = getattr(model, "conv_stem", None)
    if stem is not None and stem.in_channels != 3:
        raise InvalidArgumentError(f"the deploy path takes 3-channel (RGB) models; this one has in_chans="
                                   f"{stem.in_channels}")
    return model.eval(), resolution


def export_format(path: "str | Path", format: "str | None") -> str:
    """The format to write: `format`, or the one `path`'s extension names; the two must agree."""
    suffix = Path(path).suffix.lower()
    by_suffix = {s: f for f, s in SUFFIXES.items()}
    if format is None:
        if suffix not in by_suffix:
            raise InvalidArgumentError(f"cannot tell the export format from {Path(path).name!r}: end it in "
                                       + ", ".join(f"{s} ({f})" for f, s in SUFFIXES.items()) + " or pass format=")
        return by_suffix[suffix]
    choice("export format", format, FORMATS)
    if suffix != SUFFIXES[format]:
        raise InvalidArgumentError(f"format {format!r} writes {SUFFIXES[format]} files, got {Path(path).name!r}"
                                   + (" (OpenVINO IR: the .xml, its weights go beside it in .bin)"
                                      if format == "openvino" else ""))
    return format


def _outputs(path: Path, format: str) -> list[Path]:
    return [path.with_suffix(".bin"), path] if format == "openvino" else [path]


def opset_range() -> tuple[int, int]:
    """The ONNX opsets the installed torch.onnx exporter writes: from its own implementations' opset (below it
    converts after the fact, and may silently keep its own) to the newest it knows."""
    import torch.onnx._constants as constants

    try:
        from torch.onnx._internal.exporter._constants import TORCHLIB_OPSET as lowest
    except ImportError:  # an older layout of torch's exporter
        lowest = 18
    return int(lowest), int(constants.ONNX_MAX_OPSET)


def _check_opset(opset: "int | None") -> None:
    if opset is not None:
        import torch

        lowest, highest = opset_range()
        integer(f"opset (torch {torch.__version__.split('+')[0]}'s ONNX exporter writes {lowest} to {highest})",
                opset, lowest, highest)


def _check_exportable(model: "nn.Module") -> None:
    """Refuse a timm backbone built with features_only=True: it has no single logits output."""
    if getattr(model, "feature_info", None) is not None and not hasattr(model, "forward_head"):
        raise InvalidArgumentError("this model was built with features_only=True: a backbone returns one feature "
                                   "map per stage (a list), not a single logits output, so it cannot be exported or "
                                   "run as a classifier; pass the classifier instead (tz.create(name), or "
                                   "tz.create(name, num_classes=0) for pooled features)")


def _check_options(format: str, batch: "int | None", opset: "int | None", variant: str) -> None:
    if batch is not None:
        integer("batch (None for a dynamic batch axis)", batch, 1)
    if opset is not None and format != "onnx":
        raise InvalidArgumentError(f"opset applies to ONNX files only, not to format {format!r}")
    _check_opset(opset)
    if format != "pte" and variant != "fp32":
        raise InvalidArgumentError(f"variant {variant!r} applies to ExecuTorch (.pte) files; {format} is fp32")
    if format == "pte":
        check_variant(variant)
        if batch is None:
            raise InvalidArgumentError("an ExecuTorch program has a fixed batch size here: pass batch=N (the CLI's "
                                       "--batch 0 is ONNX/OpenVINO only)")
    if format == "onnx":
        require("onnxruntime" if is_installed("onnxruntime") else "openvino")
        require_exporter()
    else:
        require("openvino" if format == "openvino" else "executorch")


def export(model_or_name: Any, path: "str | Path", format: "str | None" = None, batch: "int | None" = 1,
           resolution: "int | None" = None, pretrained: "bool | str" = False, opset: "int | None" = None,
           tolerance: float = TOLERANCE, variant: str = "fp32", overwrite: bool = False, precision: str = "fp32",
           calibration: Any = None, max_drop: float = MAX_DROP, min_agreement: float = MIN_AGREEMENT) -> ExportReport:
    """Export a model spec to ONNX (.onnx), OpenVINO IR (.xml + .bin) or ExecuTorch (.pte), verified against eager.

    format: onnx, openvino or pte (default: from the extension). batch: a fixed batch size, or None for a
    dynamic batch axis (ONNX, OpenVINO; batches 1 and 3 are then verified). variant (pte): fp32 or fp16 (fp16
    may also differ by 1% of the largest |logit|). The file appears only once verified; an existing file is refused
    unless overwrite=True. precision="int8" calibrates on `calibration` (a folder of images or image batches) and
    writes the file only if it keeps accuracy on held-out images (deploy/int8_gate.py: top-1 drop <= max_drop
    points with labels, else agreement with float >= min_agreement), or raises AccuracyLossError with the numbers.
    """
    path = Path(path)
    format = export_format(path, format)
    _check_options(format, batch, opset, variant)
    if choice("precision", precision, PRECISIONS) == "int8":
        check_int8(format, variant, calibration, max_drop, min_agreement)
    positive("tolerance", tolerance)
    boolean("overwrite", overwrite)
    refuse_existing(_outputs(path, format), overwrite, "export")
    ensure_parent_dir(path)
    model, resolution = prepare(model_or_name, resolution, pretrained)
    if precision == "int8":
        variant, fields = "int8", write_int8(
            model, path, format, resolution, batch, calibration, max_drop, min_agreement,
            lambda m, target: _export_onnx(m, resolution, batch, target, opset), lambda moves: _place(moves, overwrite))
        fields.update(opset=opset if format == "onnx" else None, batchnorm_nodes=0)
    else:
        writer = {"onnx": _write_onnx, "openvino": _write_openvino, "pte": _write_pte}[format]
        fields = writer(model, path, resolution, batch, opset if format == "onnx" else variant, tolerance, overwrite)
    shape = ("N" if batch is None else batch, 3, resolution, resolution)
    size = sum(p.stat().st_size for p in _outputs(path, format))
    return ExportReport(path, format, shape, variant=variant, file_bytes=size, **fields)


def _verify(model: "nn.Module", path: Path, backend: str, resolution: int, batch: "int | None",
            tolerance: float, relative: float = 0.0) -> dict[str, Any]:
    """Worst |logit difference| between the written file and the eager model over the checked batch sizes, held
    to `tolerance` times the largest |logit| where that is below 1 (so an untrained model's tiny logits are
    compared at their own scale), or to `relative` times the largest |logit| where that is larger; non-finite
    logits fail."""
    import numpy as np
    import torch

    batches = VERIFY_BATCHES if batch is None else (batch,)
    engine, worst, largest = file_engine(path, backend), 0.0, 0.0
    for size in batches:
        x = torch.randn(size, 3, resolution, resolution, generator=torch.Generator().manual_seed(size))
        with torch.inference_mode():
            expected = model(x).numpy()
        got = engine.run(x.numpy())
        if not np.isfinite(expected).all():
            raise TinyNetZooError("the model's own logits are not finite (NaN or infinity) on a random input; "
                                  "check its weights and BatchNorm statistics; nothing was written")
        if got.shape != expected.shape or not np.isfinite(got).all():
            what = "are not all finite" if got.shape == expected.shape else f"have shape {got.shape}"
            raise TinyNetZooError(f"the exported graph's logits {what} (eager: {expected.shape}, finite); nothing "
                                  "was written")
        worst = max(worst, float(np.abs(got - expected).max()))
        largest = max(largest, float(np.abs(expected).max()))
    tolerance = max(tolerance * min(1.0, largest), relative * largest)
    if not worst <= tolerance:
        raise TinyNetZooError(f"the exported graph differs from the eager model by {worst:.3g} on the logits "
                              f"(tolerance {tolerance:.3g}, largest |logit| {largest:.3g}); nothing was written")
    return {"max_abs_diff": worst, "verified_batches": batches, "tolerance": tolerance}


def _place(moves: list[tuple[Path, Path]], overwrite: bool) -> None:
    """Rename verified temporary files onto their targets, re-checking that none appeared there meanwhile."""
    refuse_existing([target for _, target in moves], overwrite, "export")
    for tmp, target in moves:
        os.replace(tmp, target)


def _export_onnx(model: "nn.Module", resolution: int, batch: "int | None", target: Path, opset: "int | None") -> None:
    import torch

    example = torch.randn(2 if batch is None else batch, 3, resolution, resolution)
    dynamic = ({0: torch.export.Dim("batch", min=1)},) if batch is None else None
    program = torch.onnx.export(model, (example,), dynamo=True, verbose=False, input_names=["input"],
                                output_names=["logits"], dynamic_shapes=dynamic, opset_version=opset,
                                external_data=False)
    program.save(str(target))


def _write_onnx(model: "nn.Module", path: Path, resolution: int, batch: "int | None", opset: "int | None",
                tolerance: float, overwrite: bool) -> dict[str, Any]:
    import onnx

    verifier = "onnxruntime" if is_installed("onnxruntime") else "openvino"
    with temporary_beside(path, ".onnx") as tmp:
        _export_onnx(fold_batchnorm(model), resolution, batch, tmp, opset)
        graph = onnx.load(str(tmp))
        used = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
        if opset is not None and used != opset:
            raise TinyNetZooError(f"torch.onnx wrote opset {used}, not the opset {opset} asked for; nothing was "
                                  "written")
        batchnorm = sum(node.op_type == "BatchNormalization" for node in graph.graph.node)
        fields = _verify(model, tmp, verifier, resolution, batch, tolerance)
        _place([(tmp, path)], overwrite)
    return {**fields, "opset": used, "batchnorm_nodes": batchnorm}


def _write_openvino(model: "nn.Module", path: Path, resolution: int, batch: "int | None", variant: str,
                    tolerance: float, overwrite: bool) -> dict[str, Any]:
    """OpenVINO IR straight from the torch module (ov.convert_model), saved as path.xml + path.bin."""
    import openvino as ov

    converted = openvino_model(model, resolution, batch)
    batchnorm = sum("BatchNorm" in op.get_type_name() for op in converted.get_ops())
    with temporary_beside(path, ".xml") as tmp_xml:
        tmp_bin = tmp_xml.with_suffix(".bin")
        try:
            ov.save_model(converted, str(tmp_xml), compress_to_fp16=False)
            fields = _verify(model, tmp_xml, "openvino", resolution, batch, tolerance)
            _place([(tmp_bin, path.with_suffix(".bin")), (tmp_xml, path)], overwrite)
        finally:
            tmp_bin.unlink(missing_ok=True)
    return {**fields, "opset": None, "batchnorm_nodes": batchnorm}


def _write_pte(model: "nn.Module", path: Path, resolution: int, batch: int, variant: str, tolerance: float,
               overwrite: bool) -> dict[str, Any]:
    """An XNNPACK-lowered ExecuTorch program, run by ExecuTorch's runtime against the eager model."""
    buffer, batchnorm = lower(fold_batchnorm(model), batch, resolution, variant)
    with temporary_beside(path, ".pte") as tmp:
        tmp.write_bytes(buffer)
        fields = _verify(model, tmp, "executorch", resolution, batch, tolerance, RELATIVE_TOLERANCE.get(variant, 0.0))
        _place([(tmp, path)], overwrite)
    return {**fields, "opset": None, "batchnorm_nodes": batchnorm}
