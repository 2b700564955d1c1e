"""The tiny formula on two bases: a digits report card for EfficientNet-B0 and MobileNetV3-Large at the same MAC
budgets, and the tiny-vs-giant formula table of docs/bases.md.

Report card, per base: the teacher (the base network at 64 px, fine-tuned on the digits from its ImageNet weights
where they can be loaded, else trained from scratch with the scratch recipe below: the table says which), the
tiny-formula and giant-formula students at each budget (both cut from that teacher, channels ranked on the digits,
then fine-tuned) and the tiny-formula twist trained from scratch with the same recipe and epochs. Then the
agreement with the teacher of students cut from it at widths 0.9 and 0.75, before any training (as
benchmarks/inherit.py measures it, on the digits). Data: scikit-learn's 8x8 digits written as 64-px RGB images, a
stratified 25% held out. On MobileNetV3 the tiny formula is a transfer: B0's fitted (r, d) curves read at the
budget relative to the base's MACs, width solved on the exact MACs.

    python benchmarks/bases.py [--epochs 5] [--teacher-epochs 7] [--budgets 5M,10M] [--limit 1797]
                               [--bases efficientnet_b0,mobilenetv3_large_100] [--out DIR] [--json FILE] [--no-docs]
    python benchmarks/bases.py --formula-table [--no-docs]   # the tiny-vs-giant table (25/50/100/150M), computed

With --out, runs an interrupted benchmark finished there (same epochs) are read back instead of repeated.
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
FORMULA_BUDGETS = ("25M", "50M", "100M", "150M")
# training from scratch on 600 digits: small batches for enough steps, a higher rate with a warm-up, no dropout or
# stochastic depth (they slow a short run down more than they regularise it)
SCRATCH = {"lr": 3e-3, "batch_size": 16, "warmup_epochs": 1.0, "drop_rate": 0.0, "drop_path_rate": 0.0}
# fine-tuning a student cut from the teacher: the same batches, one rate for all layers (a cut network needs its
# backbone repaired, not only its head adapted)
STUDENT = {"batch_size": 16, "backbone_lr_scale": 1.0, "layer_decay": None, "batchnorm": "train"}
WIDTHS = (0.9, 0.75)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "bases.md"
MEASURED = ("<!-- measured: benchmarks/bases.py writes from here -->", "<!-- measured: to here -->")
FORMULAS = ("<!-- formulas: benchmarks/bases.py --formula-table writes from here -->", "<!-- formulas: to here -->")


def _finished(out: Path, epochs: int) -> "dict | None":
    """A run already finished in `out` with these epochs (an earlier, interrupted benchmark's), else None."""
    metrics = out / "metrics.jsonl"
    if not (out / "best").is_dir() or not metrics.is_file():
        return None
    history = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    if len(history) != epochs:
        return None
    return {"top1": max(h["val_top1"] for h in history), "seconds": round(sum(h["epoch_s"] for h in history), 1),
            "folder": str(out / "best"), "per_epoch": [round(h["val_top1"], 1) for h in history]}


def _train(model, data: Path, out: Path, epochs: int, resolution: int = RESOLUTION, **knobs) -> dict:
    """Fine-tune (or train) at `resolution` px: the teacher at the data's 64 px, a student at its twist's. A run
    that an earlier benchmark with the same --out finished is read back, not repeated."""
    done = _finished(out, epochs)
    if done is not None:
        return done
    tic = time.perf_counter()
    result = tz.finetune(model, data, out, resolution=resolution, epochs=epochs, val_fraction=VAL_FRACTION,
                         progress=False, **knobs)
    return {"top1": result.best_top1, "seconds": round(time.perf_counter() - tic, 1), "folder": str(out / "best"),
            "per_epoch": [round(h["val_top1"], 1) for h in result.history]}


def teacher(base: str, data: Path, out: Path, epochs: int) -> dict:
    """The base network on the digits: fine-tuned from its ImageNet weights where they load, else from scratch."""
    twist = tz.model_info(base).twist.replace(resolution=RESOLUTION)
    try:
        tz.create(base, pretrained=True)
    except tz.CheckpointNotFoundError:
        row = _train(twist, data, out, epochs, pretrained=False, **SCRATCH)
        return {**row, "start": "from scratch (no ImageNet weights here)", "twist": twist}
    return {**_train(base, data, out, epochs), "start": "from ImageNet weights", "twist": twist}


def student(twist: Twist, teacher_folder: str, data: Path, out: Path, epochs: int) -> dict:
    """A student cut from the teacher (channels ranked on the digits), then fine-tuned."""
    if _finished(out / "run", epochs) is None:
        model = tz.create(twist, pretrained="inherit", inherit_from=Path(teacher_folder), calibration=data)
        tz.save_pretrained(model, out / "init", overwrite=True)
    return {**_train(out / "init", data, out / "run", epochs, twist.resolution, **STUDENT), "twist": twist}


def agreements(base: str, teacher_folder: str, data: Path, views: int = 256) -> list[dict]:
    """Agreement with the teacher of students cut from it at WIDTHS, untrained (benchmarks/inherit.py's measure)."""
    import torch
    from inherit import agreement, folder_views, students_for

    torch.manual_seed(0)
    model = tz.create(Path(teacher_folder)).eval()
    calibration, held = folder_views(str(data), views, RESOLUTION)
    cut = students_for(base, RESOLUTION)
    return [{"base": base, "student": f"width {w}", "macs": cut[f"width {w}"].macs,
             **agreement(model, cut[f"width {w}"], calibration, held)} for w in WIDTHS]


def report_card(base: str, budgets: list[str], data: Path, root: Path, epochs: int,
                teacher_epochs: int) -> tuple[list[dict], list[dict]]:
    """Teacher, then per budget the tiny- and giant-formula students and the tiny twist from scratch; and the
    agreement of width-cut students with the teacher."""
    top = teacher(base, data, root / base / "teacher", teacher_epochs)
    rows = [{"base": base, "model": f"teacher, {top['start']}", **top}]
    print(json.dumps(_plain(rows[0])), flush=True)
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
             **_train(tiny, data, where / "scratch", epochs, tiny.resolution, pretrained=False, **SCRATCH),
             "twist": tiny},
        ]
        for row in rows[-3:]:
            print(json.dumps(_plain(row)), flush=True)
    agree = agreements(base, top["folder"], data)
    print(json.dumps(agree), flush=True)
    return rows, agree


def _plain(row: dict) -> dict:
    twist = row["twist"]
    return {"base": row["base"], "model": row["model"], "top1": row["top1"], "per_epoch": row["per_epoch"],
            "seconds": row["seconds"], "macs": twist.macs, "params": twist.params, "r": twist.r, "d": twist.d,
            "w": round(twist.w, 4), "resolution": twist.resolution}


def reading(rows: list[dict]) -> list[str]:
    """One computed line per base and budget: the tiny student against the giant one and against scratch."""
    top1 = {(r["base"], r["model"]): r["top1"] for r in rows}
    lines = []
    for base, model in top1:
        if model.startswith("tiny-formula student"):
            budget = model.rsplit(", ", 1)[1]
            tiny, giant = top1[base, model], top1[base, f"giant-formula student, {budget}"]
            scratch = top1[base, f"tiny-formula twist from scratch, {budget}"]
            lines.append(f"- {base}, {budget}: tiny student {tiny - giant:+.1f} points against the giant student, "
                         f"{tiny - scratch:+.1f} against the tiny twist from scratch.")
    return lines


def markdown(results: dict) -> str:
    """The measured section of docs/bases.md."""
    lines = [
        f"Measured on {results['date']} by `python benchmarks/bases.py --epochs {results['epochs']} "
        f"--teacher-epochs {results['teacher_epochs']} --budgets {results['budgets']}`"
        f"{_side_by_side(results.get('merged'))} on {results['machine']}; "
        f"load average {results['loads'][0]} at the start and {results['loads'][-1]} at the end (the machine is "
        f"shared; {_minutes(results['rows'])} min of training in all). {results['images']} digits at 64 px, a "
        f"stratified {VAL_FRACTION:.0%} held out; each row trained and evaluated at its own px; MACs and params "
        f"there with a 1000-class head. Scratch recipe: {_knobs(SCRATCH)}; students fine-tuned with "
        f"{_knobs(STUDENT)}.", "",
        "| base | model | r | d | w | px | MACs | params | val top-1 | time |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for row in results["rows"]:
        lines.append(f"| {row['base']} | {row['model']} | {row['r']:.3g} | {row['d']:.3g} | {row['w']:.3g} | "
                     f"{row['resolution']} | {row['macs'] / 1e6:.2f}M | {row['params'] / 1e6:.2f}M | "
                     f"{row['top1']:.1f}% | {row['seconds']:.0f} s |")
    lines += ["", *reading(results["rows"]), "",
              "Agreement with the teacher (top-1 equal on held-out digits) of students cut from it at 64 px, before "
              "any training (`benchmarks/inherit.py --teacher FOLDER --data FOLDER`):", "",
              "| base | student | MACs | random init | leading slice | importance from weights | importance from views "
              "| + mean compensation |", "|---|---|---|---|---|---|---|---|"]
    for row in results["agreement"]:
        scores = [v for k, v in row.items() if k not in ("base", "student", "macs")]
        lines.append(f"| {row['base']} | {row['student']} | {row['macs'] / 1e6:.1f}M | "
                     + " | ".join(f"{v:.1f}%" for v in scores) + " |")
    return "\n".join(lines)


def _minutes(rows: list[dict]) -> str:
    return f"{sum(r['seconds'] for r in rows) / 60:.0f}"


def _side_by_side(runs: "int | None") -> str:
    return f" ({runs} runs side by side, one per base with --bases and --json, then --merge)" if runs else ""


def _knobs(knobs: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in knobs.items())


def formula_table() -> str:
    """docs/bases.md's tiny-vs-giant table: each base at each of FORMULA_BUDGETS, both formulas (computed)."""
    lines = ["| base | budget | formula | r | d | w | px | MACs | params |", "|---|---|---|---|---|---|---|---|---|"]
    for base in BASES:
        for budget in FORMULA_BUDGETS:
            for formula in ("tiny", "giant"):
                t = tz.for_flops(budget, base=base, formula=formula)
                lines.append(f"| {base} | {budget} | {formula} | {t.r:.3f} | {t.d:.3f} | {t.w:.3f} | "
                             f"{t.resolution} | {t.macs / 1e6:.1f}M | {t.params / 1e6:.2f}M |")
    return "\n".join(lines)


def write_docs(text: str, markers: tuple[str, str]) -> None:
    """Replace one marked section of docs/bases.md."""
    page = DOCS.read_text()
    head, _, rest = page.partition(markers[0])
    _, _, tail = rest.partition(markers[1])
    DOCS.write_text(f"{head}{markers[0]}\n{text}\n{markers[1]}{tail}")


def measure(args: argparse.Namespace) -> dict:
    """Run the report card of each base and return the results."""
    loads = [f"{os.getloadavg()[0]:.2f}"]
    rows, agree = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        data = export_digits(root / "digits", size=RESOLUTION, limit=args.limit)
        for base in args.bases.split(","):
            found = report_card(base, args.budgets.split(","), data, root, args.epochs, args.teacher_epochs)
            rows, agree = rows + found[0], agree + found[1]
    loads.append(f"{os.getloadavg()[0]:.2f}")
    return {"epochs": args.epochs, "teacher_epochs": args.teacher_epochs, "budgets": args.budgets, "loads": loads,
            "images": args.limit, "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores", "rows": [_plain(r) for r in rows],
            "agreement": agree}


def merge(files: list[str]) -> dict:
    """Results saved by several runs (--json), as one: their rows and agreements in order, the loads at the
    first start and the last end."""
    found = [json.loads(Path(f).read_text()) for f in files]
    merged = {**found[0], "rows": [r for f in found for r in f["rows"]],
              "agreement": [a for f in found for a in f["agreement"]], "merged": len(found)}
    merged["loads"] = [found[0]["loads"][0], found[-1]["loads"][-1]]
    return merged


def main() -> None:
    """Run the report card for both bases (or compute the formula table) and print (and by default write) it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="per student and scratch twist")
    parser.add_argument("--teacher-epochs", type=int, default=7)
    parser.add_argument("--budgets", default="5M,10M")
    parser.add_argument("--bases", default=",".join(BASES))
    parser.add_argument("--limit", type=int, default=1797, help="digits to use (all 1,797 by default)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--merge", default=None, help="FILE,FILE: write the docs from results saved by --json "
                        "(e.g. one run per base, run side by side) instead of measuring")
    parser.add_argument("--formula-table", action="store_true", help="only compute the tiny-vs-giant table")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    if args.formula_table:
        text, markers = formula_table(), FORMULAS
    else:
        results = merge(args.merge.split(",")) if args.merge else measure(args)
        text, markers = markdown(results), MEASURED
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    print(text)
    if not args.no_docs:
        write_docs(text, markers)


if __name__ == "__main__":
    main()
