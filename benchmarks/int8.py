"""Float vs int8 per model and engine: top-1 on the labelled val split, top-1 agreement, batch-1 latency, file size.

Models: folders fine-tuned on scikit-learn's digits (64-px RGB, 800 images, the stratified 25% val split that
`finetune --val-fraction 0.25` holds out), e.g. by `benchmarks/shrink.py` or `tinynet-zoo finetune`. For each model
and engine (.pte, .onnx, OpenVINO .xml) the fp32 file and `tz.export(..., precision="int8", calibration=DIR)` are
written, where DIR holds train/ (calibration) and val/ (the gate's labelled held-out images) linked from the
digits split; a refused int8 file is reported with its measured numbers.

Each int8 file's batch-1 latency is also compared with the fastest fp32 file of --float-engines (timed in the same
interleaved rounds): the int8 file is worth shipping where it is faster than every float engine, not only its own.

    python benchmarks/int8.py --data DIGITS --models FOLDER [FOLDER ...] [--engines pte,onnx,openvino]
        [--float-engines pte,onnx,openvino] [--json F]
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

import tinynet_zoo as tz
from tinynet_zoo.deploy.engines import FORMATS
from tinynet_zoo.deploy.int8_gate import int8_data, logits
from tinynet_zoo.deploy.quantize import file_logits
from pte_variants import _latency as interleaved_latency
from tinynet_zoo.shrinking.report import split_folder as link_split
from tinynet_zoo.training.data import scan_folder


def split_folder(data: Path, out: Path, val_fraction: float = 0.25) -> Path:
    """train/ and val/ class folders of symbolic links to the digits images, split as fine-tuning split them (the
    split `shrink --int8` makes; running it again into the same folder keeps the links)."""
    return link_split(scan_folder(data, val_fraction=val_fraction), out)


def _latency(paths: dict[str, Path], image: np.ndarray) -> dict[str, float]:
    """Median batch-1 milliseconds of each file on its engine (interleaved rounds, as pte_variants.py)."""
    from tinynet_zoo.deploy.backends import file_engine

    engines = {name: file_engine(path, FORMATS[name.split()[0]].engine) for name, path in paths.items()}
    return interleaved_latency({name: engine.run for name, engine in engines.items()}, image)


def measure(folder: Path, split: Path, engines: list[str], float_engines: list[str], workdir: Path) -> list[dict]:
    """One row per engine: float and int8 top-1 on val, agreement, latency and size (or the refusal), and the int8
    file's speed-up over the fastest fp32 file of `float_engines` (all timed in the same interleaved rounds)."""
    model = tz.create(folder, pretrained=True).eval()
    name, resolution = folder.parent.name, int(model.pretrained_cfg["input_size"][-1])
    data = int8_data(split, model.pretrained_cfg.get("label_names"), resolution)
    rows, paths, fp32 = [], {}, {}
    scale = float(logits(model, data.held_out).abs().max())  # models trained from scratch can have logits of 100s
    for engine in dict.fromkeys(engines + float_engines):
        fp32[engine] = tz.export(model, workdir / f"{name}_fp32{FORMATS[engine].suffix}", overwrite=True,
                                 tolerance=max(1e-4, 1e-4 * scale))
        paths[f"{engine} fp32"] = fp32[engine].path
    for engine in engines:
        row = {"model": name, "engine": engine, "fp32_bytes": fp32[engine].file_bytes}
        float_logits = file_logits(fp32[engine].path, engine, data.held_out, 1)
        row["fp32_top1"] = 100.0 * float((float_logits.argmax(1) == data.labels.numpy()).mean())
        try:
            int8 = tz.export(model, workdir / f"{name}_int8{FORMATS[engine].suffix}", precision="int8",
                             calibration=split, overwrite=True)
        except tz.AccuracyLossError as refused:
            rows.append({**row, "refused": str(refused)})
            continue
        paths[f"{engine} int8"] = int8.path
        rows.append({**row, **{k: int8.int8[k] for k in ("int8_top1", "agreement", "float_layers", "images")},
                     "gate_float_top1": int8.int8["float_top1"], "int8_bytes": int8.file_bytes})
    latency = _latency(paths, data.held_out[:1].numpy())
    fastest = min(float_engines, key=lambda engine: latency[f"{engine} fp32"])
    for row in rows:
        row["fp32_ms"] = latency[f"{row['engine']} fp32"]
        row["int8_ms"] = latency.get(f"{row['engine']} int8")
        row["fastest_float"], row["fastest_float_ms"] = fastest, latency[f"{fastest} fp32"]
        row["speedup_vs_fastest_float"] = row["fastest_float_ms"] / row["int8_ms"] if row["int8_ms"] else None
    return rows


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    lines = ["| model | engine | top-1 fp32 | top-1 int8 | agreement | kept float | batch-1 fp32 | batch-1 int8 | "
             "int8 vs fastest fp32 | size fp32 -> int8 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['model']} | {r['engine']} | {r['fp32_top1']:.1f}% | refused | | | {r['fp32_ms']:.2f} ms "
                         f"| | | {r['fp32_bytes'] / 1e6:.2f} MB |")
            continue
        kept = ", ".join(r["float_layers"]) or "none"
        lines.append(f"| {r['model']} | {r['engine']} | {r['fp32_top1']:.1f}% | {r['int8_top1']:.1f}% | "
                     f"{r['agreement']:.1f}% | {kept} | {r['fp32_ms']:.2f} ms | {r['int8_ms']:.2f} ms | "
                     f"{r['speedup_vs_fastest_float']:.2f}x ({r['fastest_float']} {r['fastest_float_ms']:.2f} ms) | "
                     f"{r['fp32_bytes'] / 1e6:.2f} -> {r['int8_bytes'] / 1e6:.2f} MB |")
    return "\n".join(lines)


def main() -> None:
    """Print the table (and write --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the digits image folder the models were fine-tuned on")
    parser.add_argument("--models", nargs="+", required=True, help="fine-tuned model folders (their best/)")
    parser.add_argument("--engines", default="pte,onnx,openvino", help="the engines whose int8 files are measured")
    parser.add_argument("--float-engines", default="pte,onnx,openvino",
                        help="the fp32 files timed beside them; the fastest is the int8 speed-up's reference")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        split = split_folder(Path(args.data), Path(tmp) / "split")
        for folder in args.models:
            try:
                rows += measure(Path(folder), split, args.engines.split(","), args.float_engines.split(","),
                                Path(tmp))
            except tz.TinyNetZooError as error:  # e.g. the float export failing its own check
                print(f"{folder}: {error}", flush=True)
            print(markdown(rows), flush=True)
            for row in rows:
                if "refused" in row:
                    print(f"{row['model']} {row['engine']}: {row['refused']}", flush=True)
    print(f"load average {os.getloadavg()}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
