"""Export a model to ONNX, OpenVINO IR or an ExecuTorch program (.pte): BatchNorm folded, verified against the
eager model, written atomically (a temporary file beside the target, renamed once verified), never over an
existing file unless asked."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import boolean, choice, integer, positive
from ..core.twist import check_resolution
from ..errors import InvalidArgumentError
from ..factory import create
from ..files import ensure_parent_dir, refuse_existing
from .engines import FORMATS as FORMAT_SPECS
from .engines import onnxruntime as onnx_engine
from .engines.verify import VERIFY_BATCHES, place  # noqa: F401
from .int8_gate import MAX_DROP, MIN_AGREEMENT
from .quantize import PRECISIONS, check_int8, write_int8

if TYPE_CHECKING:
    import torch.nn as nn

FORMATS = tuple(FORMAT_SPECS)  # declared by the engine modules (deploy/engines/)
SUFFIXES = {name: f.suffix for name, f in FORMAT_SPECS.items()}
TOLERANCE = 1e-4  # max |logit difference| accepted (times the largest |logit| where that is below 1)


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
                                   + FORMAT_SPECS[format].suffix_hint)
    return format


def _outputs(path: Path, format: str) -> list[Path]:
    return [*(path.with_suffix(s) for s in FORMAT_SPECS[format].companions), path]


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
    spec = FORMAT_SPECS[format]
    if batch is not None:
        integer("batch (None for a dynamic batch axis)", batch, 1)
    if opset is not None and not spec.opset:
        raise InvalidArgumentError(f"opset applies to ONNX files only, not to format {format!r}")
    _check_opset(opset)
    if spec.check_variant is None and variant != "fp32":
        takes = " and ".join(f"{f.name} ({f.suffix})" for f in FORMAT_SPECS.values() if f.check_variant is not None)
        raise InvalidArgumentError(f"variant {variant!r} applies to {takes} files; {format} is fp32")
    if spec.check_variant is not None:
        spec.check_variant(variant)
    if spec.fixed_batch and batch is None:
        raise InvalidArgumentError(spec.fixed_batch)
    spec.need()


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
            lambda m, target: onnx_engine.export_onnx(m, resolution, batch, target, opset),
            lambda moves: place(moves, overwrite))
        fields.update(opset=opset if FORMAT_SPECS[format].opset else None, batchnorm_nodes=0)
    else:
        fields = FORMAT_SPECS[format].write(model, path, resolution, batch,
                                            opset if FORMAT_SPECS[format].opset else variant, tolerance, overwrite)
    shape = ("N" if batch is None else batch, 3, resolution, resolution)
    size = sum(p.stat().st_size for p in _outputs(path, format))
    return ExportReport(path, format, shape, variant=variant, file_bytes=size, **fields)
