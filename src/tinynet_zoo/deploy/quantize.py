"""int8 files for every engine, calibrated on the user's images and written only if they keep accuracy.

ExecuTorch (.pte): torch.export, then PT2E with `int8_scheme` (XNNPACK's quantizer: per-channel symmetric int8
weights, per-tensor int8 activations; SiLU and squeeze-excite in int8 too), lowered to XNNPACK. ONNX:
onnxruntime's static quantization (QDQ, per-channel int8 weights, uint8 activations, moving-average min/max
calibration). OpenVINO IR: NNCF's post-training quantization of the float OpenVINO model (engines/openvino.py).
Each try is run by its engine on held-out images and judged by `int8_gate`; layers the gate's sensitivity search
keeps float are left out of quantization.
"""
from __future__ import annotations

import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from .. import int8_scheme
from ..errors import InvalidArgumentError, QuantizationError, TinyNetZooError, summary
from ..weights.model_config import config_or_none
from .backends import file_engine, require, require_exporter
from .engines import FORMATS
from .engines.openvino import openvino_int8, openvino_model, require_nncf
from .fold import fold_batchnorm
from .int8_gate import Int8Data, check_thresholds, int8_data, logits, search
from .sample_photos import require_sample_photos, sample_photos

if TYPE_CHECKING:
    import numpy as np
    import torch
    import torch.nn as nn

PRECISIONS = ("fp32", "int8")
CALIBRATION_BATCH = 32  # images per calibration forward pass of the .pte quantizer
# onnxruntime's activation ranges: the moving average of each calibration batch's min and max, as the .pte scheme's;
# its default global min/max left TinyNet-A trained on digits at 17.6% all-int8 top-1 (95.3% so, 95.8% float)
ONNX_CALIBRATION = {"CalibMovingAverage": True, "CalibMovingAverageConstant": 0.01}


def check_int8(format: str, variant: str, calibration: Any, max_drop: Any, min_agreement: Any) -> None:
    """Refuse an int8 request that cannot run, before any work starts (calibration=None: the sample photos)."""
    if variant != "fp32":
        raise InvalidArgumentError(f"precision='int8' replaces variant={variant!r}; leave variant at 'fp32'")
    if calibration is None:
        require_sample_photos()
    elif isinstance(calibration, (str, Path)) and not Path(calibration).is_dir():
        raise InvalidArgumentError(f"calibration folder {calibration} does not exist or is not a folder")
    check_thresholds(max_drop, min_agreement)
    require(FORMATS[format].engine)
    if format == "onnx":
        require("onnxruntime")  # its static quantizer writes the QDQ graph
        require_exporter()
    if format == "openvino":
        require_nncf()


def _chunks(images: "torch.Tensor", batch: int) -> list["torch.Tensor"]:
    """`images` in batches of exactly `batch` (the last one padded by repeating its first image)."""
    import torch

    out = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        out.append(torch.cat([chunk, chunk[:1].expand(batch - len(chunk), *chunk.shape[1:])]) if len(chunk) < batch
                   else chunk)
    return out


def file_logits(path: Path, format: str, images: "torch.Tensor", batch: "int | None") -> "np.ndarray":
    """Logits of `images` from the written file, run by its engine."""
    import numpy as np

    engine = file_engine(path, FORMATS[format].engine)
    size = batch or 32
    logits = [engine.run(chunk.numpy()) for chunk in _chunks(images, size)]
    return np.concatenate(logits)[:len(images)]


def pte_int8(folded: "nn.Module", calibration: "torch.Tensor", batch: int, float_modules: tuple[str, ...]) -> bytes:
    """An XNNPACK-lowered int8 ExecuTorch program (PT2E, per-channel symmetric weights) for batches of `batch`;
    `float_modules` stay float. Calibration sees every image exactly once (a batch-size-free export)."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    example = (calibration[:1].expand(batch, *calibration.shape[1:]).contiguous(),)
    any_batch = ({0: torch.export.Dim("batch", min=1)},)
    with torch.no_grad():
        traced = torch.export.export(folded, (calibration[:2].contiguous(),), dynamic_shapes=any_batch)
        prepared = prepare_pt2e(traced.module(), int8_scheme.quantizer(float_modules))
        for chunk in calibration.split(CALIBRATION_BATCH):
            prepared(chunk)
        program = torch.export.export(convert_pt2e(prepared), example)
    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


def onnx_excluded(graph: Any, float_modules: tuple[str, ...]) -> list[str]:
    """Names of the ONNX nodes the exporter recorded as coming from `float_modules` (or their children)."""
    names = []
    for node in graph.graph.node:
        scopes = " ".join(p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes")
        if any(f"'{m}'" in scopes for m in float_modules):  # the scopes list every enclosing module
            names.append(node.name)
    return names


def onnx_int8(float_onnx: Path, target: Path, calibration: "torch.Tensor", batch: "int | None",
              float_modules: tuple[str, ...]) -> None:
    """onnxruntime's static QDQ quantization of a float ONNX file (per-channel int8 weights, uint8 activations with
    moving-average min/max ranges)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    chunks = iter(chunk.numpy() for chunk in _chunks(calibration, batch or 1))

    class Reader(CalibrationDataReader):
        def get_next(self) -> "dict | None":
            chunk = next(chunks, None)
            return None if chunk is None else {"input": chunk}

    excluded = onnx_excluded(onnx.load(str(float_onnx)), float_modules) if float_modules else None
    previous = logging.root.manager.disable  # the user's own logging.disable level, restored below
    logging.disable(max(previous, logging.WARNING))  # its advice to pre-process the graph is not the user's concern
    try:
        quantize_static(str(float_onnx), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                        extra_options=ONNX_CALIBRATION)
    finally:
        logging.disable(previous)


QUANTIZERS = {"pte": "torch.export + XNNPACK's PT2E quantizer", "onnx": "onnxruntime's quantize_static",
              "openvino": "NNCF's quantize"}


@contextmanager
def quantizing(format: str) -> Iterator[None]:
    """Turn an error the format's quantizer raises into QuantizationError (which quantizer, its message)."""
    try:
        yield
    except TinyNetZooError:
        raise
    except Exception as exc:  # torch.export, PT2E, onnxruntime and NNCF each raise their own classes
        raise QuantizationError(f"{QUANTIZERS[format]} could not quantize this model to int8 ({summary(exc)}); "
                                "nothing was written. Export it in fp32 (without --int8), or try another format") \
            from exc


def _builder(model: "nn.Module", format: str, data: Int8Data, batch: "int | None", workdir: Path,
             export_onnx: Callable[["nn.Module", Path], None]) -> tuple[Callable[[tuple[str, ...]], "np.ndarray"],
                                                                        Path]:
    """A function that writes one int8 try (float_modules kept float) into workdir and returns its held-out
    logits, and the path of the latest file it wrote (workdir/int8 with the format's own suffix)."""
    folded = fold_batchnorm(model)
    latest = workdir / f"int8{FORMATS[format].suffix}"
    if format == "onnx":
        export_onnx(folded, workdir / "float.onnx")
    converted = openvino_model(folded, data.calibration.shape[-1], batch) if format == "openvino" else None

    def build(float_modules: tuple[str, ...]) -> "np.ndarray":
        with quantizing(format):
            if format == "pte":
                latest.write_bytes(pte_int8(folded, data.calibration, batch or 1, float_modules))
            elif format == "openvino":
                openvino_int8(converted, latest, data.calibration, float_modules)
            else:
                onnx_int8(workdir / "float.onnx", latest, data.calibration, batch, float_modules)
        return file_logits(latest, format, data.held_out, batch)

    return build, latest


def write_int8(model: "nn.Module", path: Path, format: str, resolution: int, batch: "int | None", calibration: Any,
               max_drop: float, min_agreement: float, export_onnx: Callable[["nn.Module", Path], None],
               place: Callable[[list[tuple[Path, Path]]], None]) -> dict[str, Any]:
    """Calibrate, search for the int8 file that passes the accuracy gate, and place it at `path`; raise
    AccuracyLossError with the measured numbers (writing nothing) when none does."""
    import numpy as np

    calibration = sample_photos() if calibration is None else calibration  # generic photos, with a warning
    config = config_or_none(model)
    labels = None if config is None or config.label_names is None else list(config.label_names)
    data = int8_data(calibration, labels, resolution)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
        workdir = Path(tmp)
        (build, latest), seen = _builder(model, format, data, batch, workdir, export_onnx), {}

        def tracked(float_modules: tuple[str, ...]) -> "np.ndarray":
            seen["logits"] = build(float_modules)
            return seen["logits"]

        reference = logits(model, data.held_out).numpy()  # float, once: for the gate and the report's difference
        passed, tries = search(model, data, tracked, max_drop, min_agreement, reference)
        worst = float(np.abs(seen["logits"] - reference).max())
        companions = [(latest.with_suffix(c), path.with_suffix(c)) for c in FORMATS[format].companions]
        place([*companions, (latest, path)])  # an OpenVINO .bin before the .xml that names it
    return {"max_abs_diff": worst, "verified_batches": (batch,) if batch else (32,), "tolerance": None,
            "int8": {**passed.to_dict(), "tries": [t.to_dict() for t in tries], "max_drop": max_drop,
                     "min_agreement": min_agreement, "calibration_images": len(data.calibration)}}
