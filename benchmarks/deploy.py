"""Deploy benchmark: every plain recipe, every tz engine and auto, per model, in one run of interleaved rounds; it
rewrites the measured part of docs/performance.md.

    python benchmarks/deploy.py                        # five models, every row; rewrites docs/performance.md
    python benchmarks/deploy.py tinynet_e --runs 30 --no-docs        # a quick look, nothing written
    python benchmarks/deploy.py --latency 3,8 --variants --json results.json   # + for_latency, .pte variants

Rows (see docs/performance.md): the plain recipes (eager, compile-plain, onnxruntime-plain, openvino-plain,
executorch-plain), `tz.runtime(model, backend=...)` for every engine, and auto (measured afresh: its cache is a
temporary folder unless --cache-dir is given). Each model is measured in a fresh Python process. Latency: batch 1, median and p90 of --runs calls taken in rounds
of 10 that alternate their order; throughput: batch 32, --batch-runs rounds of one call each.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tinynet_zoo as tz
from tinynet_zoo.deploy.autoselect import machine_fingerprint
from tinynet_zoo.deploy.bench import BENCH_ROWS, PLAIN, bench, format_rows

MODELS = ("tinynet_e", "tinynet_c", "tinynet_a", "efficientnet_b0", "efficientnet_lite0")
TARGETS = {"tinynet_e": 6.0, "tinynet_a": 3.5}  # auto vs timm eager at batch 1
AUTO_MARGIN, PTE_MARGIN = 1.05, 1.2  # auto within 5% of the fastest other row; .pte within 1.2x of the best desktop
DOCS = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
START, END = "<!-- measured: benchmarks/deploy.py writes from here -->", "<!-- measured: to here -->"


def target_lines(rows: list[dict]) -> list[str]:
    """Per model: auto against the fastest other row and against eager; the .pte engine against the desktop."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        by = {r["backend"]: r for r in rows if r["model"] == model}
        if "auto" not in by:
            continue
        auto = by["auto"]["median_ms"]
        best = min((r for b, r in by.items() if b != "auto"), key=lambda r: r["median_ms"])
        ratio = auto / best["median_ms"]
        text = (f"{model}: auto ({by['auto']['config']}) {auto:.2f} ms, {ratio:.2f}x the fastest other row "
                f"({best['backend']}, {best['median_ms']:.2f} ms): {'met' if ratio <= AUTO_MARGIN else 'MISSED'}; "
                f"{by['auto']['speedup']:.2f}x eager")
        if model in TARGETS:
            text += f" (target {TARGETS[model]:g}x: {'met' if by['auto']['speedup'] >= TARGETS[model] else 'MISSED'})"
        desktop = [r for b, r in by.items() if b != "auto" and not b.startswith("executorch")]
        if "executorch" in by and desktop:
            fastest = min(desktop, key=lambda r: r["median_ms"])
            pte = by["executorch"]["median_ms"] / fastest["median_ms"]
            text += (f"; .pte (executorch) {pte:.2f}x the best desktop row ({fastest['backend']}): "
                     f"{'met' if pte <= PTE_MARGIN else 'MISSED'}")
        lines.append(text)
    return lines


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine_line(machine: dict) -> str:
    """CPU, cores and the library versions that matter."""
    return (f"{machine['cpu']}, {machine['cores']} usable cores, {platform.system()} {platform.machine()}; Python "
            f"{machine['python']}, " + ", ".join(f"{k} {machine[k]}" for k in ("torch", "onnxruntime", "openvino",
                                                                                  "executorch")))


def measured_markdown(rows: list[dict], loads: tuple[str, str], args: argparse.Namespace,
                      variants: "str | None") -> str:
    """The generated part of docs/performance.md."""
    command = " ".join(["python benchmarks/deploy.py", *args.models, f"--runs {args.runs}"])
    parts = [f"Machine: {machine_line(machine_fingerprint())}.", "",
             f"Load average (1, 5, 15 min) before the run: {loads[0]}; after: {loads[1]} (the benchmark itself keeps "
             "about one to two cores busy).", "",
             f"`{command}`: batch-1 latency over {args.runs} calls per row, throughput at batch 32 over "
             f"{args.batch_runs} calls; `x eager` and `x best plain` are ratios of medians (above 1: faster).", "",
             format_rows(rows), "", "Targets:", "", *[f"- {line}" for line in target_lines(rows)]]
    if variants:
        parts += ["", "ExecuTorch variants of the real EfficientNet-Lite0 weights on the 13 scikit-image sample photos "
                  "(`python benchmarks/pte_variants.py`):", "", variants]
    return "\n".join(parts)


def write_docs(section: str, path: Path = DOCS) -> None:
    """Replace the measured part of docs/performance.md (between the markers) with `section`."""
    text = path.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no {START} ... {END} markers")
    path.write_text(pattern.sub(lambda _: f"{START}\n\n{section}\n\n{END}", text))


def measure_in_a_fresh_process(model: str, args: argparse.Namespace, cache_dir: str) -> list[dict]:
    """One model's rows, measured by this script in a new Python process: no state (torch.compile's caches,
    thread pools, memory) carries over from one model to the next, as for a user running one model."""
    out = Path(cache_dir) / f"{model}.rows.json"
    subprocess.run([sys.executable, __file__, model, "--backends", args.backends, "--runs", str(args.runs),
                    "--batch-runs", str(args.batch_runs), "--cache-dir", cache_dir, "--rows-to", str(out)],
                   check=True)
    return json.loads(out.read_text())


def main() -> None:
    """Run the benchmark, print the table and the targets, and rewrite docs/performance.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--backends", default=",".join(BENCH_ROWS))
    parser.add_argument("--runs", type=int, default=150)
    parser.add_argument("--batch-runs", type=int, default=10)
    parser.add_argument("--latency", default="", help="comma-separated for_latency budgets in ms")
    parser.add_argument("--variants", action="store_true", help="also the .pte fp32/fp16/int8 agreement on Lite0")
    parser.add_argument("--cache-dir", default=None, help="auto's cache (default: a fresh one, so auto measures)")
    parser.add_argument("--json", default=None, help="also write every result to this file")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    parser.add_argument("--rows-to", default=None, help=argparse.SUPPRESS)  # internal: one process per model
    args = parser.parse_args()
    if args.rows_to:  # one model's rows, in this (fresh) process
        rows = bench(args.models, args.backends.split(","), runs=args.runs, warmup=30, batch=32,
                     batch_runs=args.batch_runs, cache_dir=args.cache_dir)
        Path(args.rows_to).write_text(json.dumps(rows))
        return
    print(f"machine: {machine_line(machine_fingerprint())}; load {load_average()}", flush=True)
    loads, rows = [load_average()], []
    results: dict = {"machine": machine_fingerprint(), "bench": rows, "plain_rows": list(PLAIN),
                     "measured_at": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as fresh:
        for model in args.models:
            measured = measure_in_a_fresh_process(model, args, args.cache_dir or fresh)
            rows += measured
            print(format_rows(measured), *target_lines(measured), f"load {load_average()}", sep="\n", flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    loads.append(load_average())
    results["load_average"] = loads
    variants = None
    if args.variants:
        from pte_variants import markdown, variants_report
        results["pte_variants"] = report = variants_report()
        variants = markdown(report)
        print(variants, flush=True)
    if args.latency:
        results["for_latency"] = [tz.for_latency(float(ms), tolerance=0.1, cache_dir=args.cache_dir).to_dict()
                                  for ms in args.latency.split(",")]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    if not args.no_docs:
        write_docs(measured_markdown(rows, (loads[0], loads[1]), args, variants))


if __name__ == "__main__":
    main()
