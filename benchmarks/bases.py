"""The tiny formula on two bases: a digits report card for EfficientNet-B0 and MobileNetV3-Large at the same MAC
budgets.

Report card, per base: the teacher (the base network at 64 px, fine-tuned on the digits from its ImageNet weights
where they can be loaded, else trained from scratch: the table says which), the tiny-formula student and the
giant-formula student at each budget (both inherited from that teacher, channels ranked on the digits, then
fine-tuned), and the tiny-formula twist trained from scratch. Data: scikit-learn's 8x8 digits written as 64-px RGB
images, a stratified 25% held out. On MobileNetV3 the tiny formula is a transfer: B0's fitted (r, d) curves read at
the budget relative to the base's MACs, width solved on the exact MACs.

    python benchmarks/bases.py [--epochs 4] [--budgets 5M,10M] [--limit 800] [--out DIR] [--json FILE] [--no-docs]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import tinynet_zoo as tz
from tinynet_zoo.core.twist import Twist
from sample_data import export_digits

BASES = ("efficientnet_b0", "mobilenetv3_large_100")
RESOLUTION, VAL_FRACTION = 64, 0.25
DOCS = Path(__file__).resolve().parents[1] / "docs" / "bases.md"
BEGIN, END = "<!-- measured: benchmarks/bases.py writes from here -->", "<!-- measured: to here -->"


def _train(model, data: Path, out: Path, epochs: int, resolution: int = RESOLUTION, **knobs) -> dict:
    """Fine-tune (or train) at `resolution` px: the teacher at the data's 64 px, a student at its twist's."""
    tic = time.perf_counter()
    result = tz.finetune(model, data, out, resolution=resolution, epochs=epochs, val_fraction=VAL_FRACTION,
                         progress=False, **knobs)
    return {"top1": result.best_top1, "seconds": round(time.perf_counter() - tic, 1), "folder": str(out / "best")}


def teacher(base: str, data: Path, out: Path, epochs: int) -> dict:
    """The base network fine-tuned on the digits: from its ImageNet weights where they load, else from scratch."""
    try:
        tz.create(base, pretrained=True)
        start = "from ImageNet weights"
        row = _train(base, data, out, epochs)
    except tz.CheckpointNotFoundError:
        start = "from scratch: no ImageNet weights here"
        twist = tz.model_info(base).twist.replace(resolution=RESOLUTION)
        row = _train(twist, data, out, epochs, pretrained=False)
    return {**row, "start": start, "twist": tz.model_info(base).twist.replace(resolution=RESOLUTION)}


def student(twist: Twist, teacher_folder: str, data: Path, out: Path, epochs: int) -> dict:
    """A student cut from the teacher (channels ranked on the digits), then fine-tuned."""
    model = tz.create(twist, pretrained="inherit", inherit_from=Path(teacher_folder), calibration=data)
    tz.save_pretrained(model, out / "init", overwrite=True)
    return {**_train(out / "init", data, out / "run", epochs, twist.resolution), "twist": twist}


def report_card(base: str, budgets: list[str], data: Path, root: Path, epochs: int) -> list[dict]:
    """Teacher, then per budget the tiny- and giant-formula students and the tiny twist from scratch."""
    top = teacher(base, data, root / base / "teacher", epochs)
    rows = [{"base": base, "model": f"teacher, {top['start']}", **top}]
    for budget in budgets:
        tiny = tz.for_flops(budget, base=base, resolution=RESOLUTION)
        giant = tz.for_flops(budget, base=base, resolution=RESOLUTION, formula="giant")
        where = root / base / budget
        rows += [
            {"base": base, "model": f"tiny-formula student, {budget}",
             **student(tiny, top["folder"], data, where / "tiny", epochs)},
            {"base": base, "model": f"giant-formula student, {budget}",
             **student(giant, top["folder"], data, where / "giant", epochs)},
            {"base": base, "model": f"tiny-formula twist from scratch, {budget}",
             **_train(tiny, data, where / "scratch", epochs, tiny.resolution, pretrained=False), "twist": tiny},
        ]
        print(json.dumps([_plain(r) for r in rows[-3:]]), flush=True)
    return rows


def _plain(row: dict) -> dict:
    twist = row["twist"]
    return {"base": row["base"], "model": row["model"], "top1": row["top1"], "seconds": row["seconds"],
            "macs": twist.macs, "params": twist.params, "r": twist.r, "d": twist.d, "w": round(twist.w, 4),
            "resolution": twist.resolution}


def markdown(results: dict) -> str:
    """The measured section of docs/bases.md."""
    lines = [
        f"Measured by `python benchmarks/bases.py --epochs {results['epochs']} --budgets {results['budgets']}` on "
        f"{results['machine']}; load average {results['loads'][0]} at the start and {results['loads'][-1]} at the "
        f"end (the machine is shared). {results['images']} digits at 64 px, a stratified {VAL_FRACTION:.0%} held out; "
        "each row trained and evaluated at its own px; MACs and params there with a 1000-class head.", "",
        "| base | model | r | d | w | px | MACs | params | val top-1 |", "|---|---|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        lines.append(f"| {row['base']} | {row['model']} | {row['r']:.3g} | {row['d']:.3g} | {row['w']:.3g} | "
                     f"{row['resolution']} | {row['macs'] / 1e6:.2f}M | {row['params'] / 1e6:.2f}M | "
                     f"{row['top1']:.1f}% |")
    return "\n".join(lines)


def write_docs(text: str) -> None:
    """Replace the measured section of docs/bases.md."""
    page = DOCS.read_text()
    head, _, rest = page.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOCS.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")


def main() -> None:
    """Run the report card for both bases and print (and by default write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--budgets", default="5M,10M")
    parser.add_argument("--limit", type=int, default=800)
    parser.add_argument("--out", default=None)
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    loads = [f"{os.getloadavg()[0]:.2f}"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        data = export_digits(root / "digits", size=RESOLUTION, limit=args.limit)
        rows = [r for base in BASES for r in report_card(base, args.budgets.split(","), data, root, args.epochs)]
    loads.append(f"{os.getloadavg()[0]:.2f}")
    results = {"epochs": args.epochs, "budgets": args.budgets, "loads": loads, "images": args.limit,
               "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores", "rows": [_plain(r) for r in rows]}
    text = markdown(results)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if not args.no_docs:
        write_docs(text)


if __name__ == "__main__":
    main()
