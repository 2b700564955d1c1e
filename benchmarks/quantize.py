"""int8 post-training quantisation (onnxruntime, static QDQ, per-channel) of the real EfficientNet-Lite0 weights.

Calibrated on the mirrored scikit-image sample photos, evaluated on the originals (a different set): top-1
agreement and top-5 overlap with fp32, and batch-1 latency of both on onnxruntime. A small-sample
illustration, not an ImageNet claim.

    python benchmarks/quantize.py
"""
from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

import tinynet_zoo as tz
from inherit import photos


def _batches(model: torch.nn.Module, images: list[np.ndarray]) -> np.ndarray:
    from PIL import Image
    from timm.data import create_transform, resolve_data_config

    transform = create_transform(**resolve_data_config({}, model=model))
    return torch.stack([transform(Image.fromarray(image)) for image in images]).numpy()


def int8_report() -> dict:
    """Top-1 agreement and top-5 overlap of int8 vs fp32 Lite0 on held-out photos, and both latencies."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = tz.create("efficientnet_lite0", pretrained=True).eval()
    images = photos()  # originals at even indices, mirror images at odd ones
    calib, held_out = _batches(model, images[1::2]), _batches(model, images[0::2])

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self) -> "dict | None":
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        report = tz.export(model, fp32, batch=None)
        quantize_static(str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        runs = {name: tz.runtime(path, backend="onnxruntime") for name, path in (("fp32", fp32), ("int8", int8))}
        logits = {name: run(held_out) for name, run in runs.items()}
        one = held_out[:1]
        from tinynet_zoo.deploy.timing import time_calls
        latency = {name: time_calls(lambda run=run: run(one), 20, 200).median_ms for name, run in runs.items()}
        sizes = {name: path.stat().st_size for name, path in (("fp32", fp32), ("int8", int8))}
    top1 = {k: v.argmax(1) for k, v in logits.items()}
    top5 = {k: [set(row) for row in np.argsort(-v, 1)[:, :5].tolist()] for k, v in logits.items()}
    probs = np.exp(logits["fp32"] - logits["fp32"].max(1, keepdims=True))
    confident = (probs / probs.sum(1, keepdims=True)).max(1) >= 0.5  # photos fp32 is sure about
    result = {"images": len(held_out), "calibration_images": len(calib), "confident_images": int(confident.sum()),
              "fp32_export_max_abs_diff": report.max_abs_diff,
              "top1_agreement": float((top1["fp32"] == top1["int8"]).mean()),
              "top1_agreement_confident": float((top1["fp32"] == top1["int8"])[confident].mean()),
              "top5_overlap": statistics.mean(len(a & b) / 5 for a, b in zip(top5["fp32"], top5["int8"])),
              "latency_ms": latency, "file_bytes": sizes}
    print(f"int8 vs fp32 Lite0 on {result['images']} held-out photos: top-1 agreement "
          f"{100 * result['top1_agreement']:.1f}% ({100 * result['top1_agreement_confident']:.0f}% on the "
          f"{result['confident_images']} where fp32 is >= 50% sure), "
          f"top-5 overlap {100 * result['top5_overlap']:.1f}%; "
          f"onnxruntime batch-1 median {latency['fp32']:.2f} ms fp32 vs {latency['int8']:.2f} ms int8; "
          f"{sizes['fp32'] / 1e6:.1f} MB vs {sizes['int8'] / 1e6:.1f} MB", flush=True)
    return result


if __name__ == "__main__":
    int8_report()
