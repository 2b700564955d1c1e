"""Batch-1 speed of int8 .pte files at each catalogued model's own resolution, against the fp32 engines.

For each model (built at its catalogued resolution; latency does not depend on the weights' values, so no
checkpoint is needed): the fp32 .pte and fp32 ONNX files `tz.export` writes, XNNPACK's stock PT2E int8 (its
`XNNPACKQuantizer` and partitioner as ExecuTorch documents them, SiLU and the squeeze-excite sigmoid left float)
and the package's int8 scheme (`tinynet_zoo.int8_scheme`: SiLU, sigmoid and the squeeze-excite mean in int8 too),
both calibrated on the same images. Timed in interleaved rounds on their engines; the ratio is against the fastest
fp32 file. Accuracy is measured by `benchmarks/int8.py` on fine-tuned models.

    python benchmarks/int8_speed.py [--models tinynet_a,tinynet_c,tinynet_e,efficientnet_lite0] [--json F]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

import tinynet_zoo as tz
from pte_variants import _latency as interleaved_latency
from tinynet_zoo.deploy.backends import file_engine
from tinynet_zoo.deploy.engines import FORMATS
from tinynet_zoo.deploy.fold import fold_batchnorm
from tinynet_zoo.deploy.quantize import pte_int8

CALIBRATION = 32  # images


def stock_int8(folded: torch.nn.Module, calibration: torch.Tensor) -> bytes:
    """XNNPACK's PT2E int8 as ExecuTorch documents it (stock quantizer and partitioner), for batch 1."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from executorch.exir import to_edge_transform_and_lower
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    with torch.no_grad():
        prepared = prepare_pt2e(torch.export.export(folded, (calibration[:1],)).module(), quantizer)
        for image in calibration.split(1):
            prepared(image)
        program = torch.export.export(convert_pt2e(prepared), (calibration[:1],))
    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


def measure(name: str, workdir: Path) -> dict:
    """Latency (ms) and size (bytes) of each file of one model at its catalogued resolution."""
    info = tz.model_info(name)
    model = tz.create(name, pretrained=False).eval()
    resolution = info.twist.resolution
    calibration = torch.randn(CALIBRATION, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    paths = {}
    for engine in ("pte", "onnx"):
        paths[f"{engine} fp32"] = tz.export(model, workdir / f"{name}{FORMATS[engine].suffix}", overwrite=True).path
    folded = fold_batchnorm(model)
    for label, build in (("pte int8 stock", lambda: stock_int8(folded, calibration)),
                         ("pte int8", lambda: pte_int8(folded, calibration, 1, ()))):
        paths[label] = workdir / f"{name}_{label.replace(' ', '_')}.pte"
        paths[label].write_bytes(build())
    engines = {label: file_engine(path, FORMATS[label.split()[0]].engine) for label, path in paths.items()}
    latency = interleaved_latency({label: e.run for label, e in engines.items()}, calibration[:1].numpy())
    fastest = min(("pte fp32", "onnx fp32"), key=latency.get)
    return {"model": name, "resolution": resolution, "macs": info.macs, "ms": latency,
            "bytes": {label: path.stat().st_size for label, path in paths.items()}, "fastest_fp32": fastest,
            "speedup": {label: latency[fastest] / latency[label] for label in ("pte int8 stock", "pte int8")}}


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| model | resolution | MACs | fp32 .pte | fp32 ONNX | int8 .pte, stock XNNPACK quantizer | "
             "int8 .pte (int8_scheme) | int8 vs fastest fp32 (stock / ours) | size fp32 -> int8 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms, size = r["ms"], r["bytes"]
        lines.append(f"| {r['model']} | {r['resolution']} | {r['macs'] / 1e6:.0f}M | {ms['pte fp32']:.2f} ms | "
                     f"{ms['onnx fp32']:.2f} ms | {ms['pte int8 stock']:.2f} ms | {ms['pte int8']:.2f} ms | "
                     f"{r['speedup']['pte int8 stock']:.2f}x / {r['speedup']['pte int8']:.2f}x | "
                     f"{size['pte fp32'] / 1e6:.2f} -> {size['pte int8'] / 1e6:.2f} MB |")
    return "\n".join(lines)


def main() -> None:
    """Print the table (and write --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tinynet_a,tinynet_c,tinynet_e,efficientnet_lite0")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rows.append(measure(name, Path(tmp)))
            print(markdown(rows), flush=True)
    print(f"load average {os.getloadavg()}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
