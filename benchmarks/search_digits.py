"""The experiment of docs/search.md: a real Rubik's-cube search on scikit-learn's digits, on B0 and on Lite0.

    python benchmarks/search_digits.py [--out runs/search_digits] [--trials 12] [--lite-trials 9] [--epochs 2]

Exports the 1,797 digits as 32-px PNGs, searches twists of EfficientNet-B0 and of EfficientNet-Lite0 at
10M, 15M and 22M MACs (r relative to 64 px), then writes each search's report, formula and figure and
copies the figures to docs/. Re-running resumes: recorded trials are skipped.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from sample_data import export_digits
from tinynet_zoo.search.analysis import search_report
from tinynet_zoo.search.run import run_search

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = ["10M", "15M", "22M"]
BASE_RESOLUTION = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "runs" / "search_digits"))
    parser.add_argument("--trials", type=int, default=12, help="EfficientNet-B0 trials")
    parser.add_argument("--lite-trials", type=int, default=9, help="EfficientNet-Lite0 trials")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out = Path(args.out)
    data = out / "digits"
    if not data.is_dir():
        export_digits(data, size=32)
    timing_path = out / "timing.json"  # accumulated over resumed invocations
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    runs = (("b0", "efficientnet_b0", args.trials), ("lite0", "efficientnet_lite0", args.lite_trials))
    for name, base, trials in runs:
        tic = time.perf_counter()
        summary = run_search(data, BUDGETS, trials, out / name, base=base, base_resolution=BASE_RESOLUTION,
                             epochs=args.epochs, workers=args.workers, threads=1, progress=True)
        seconds = round(time.perf_counter() - tic, 1) if summary.ran else 0.0
        previous = timing.get(name, {"ran": 0, "wall_s": 0.0})
        timing[name] = {"ran": previous["ran"] + summary.ran, "wall_s": previous["wall_s"] + seconds,
                        "failed": list(summary.failed)}
        report = search_report(out / name)
        print(f"\n== {base}: {timing[name]['ran']} trials run in {timing[name]['wall_s']:.0f} s "
              f"({summary.ran} in this invocation)\n{report.text()}\n")
        shutil.copyfile(report.files["plot"], ROOT / "docs" / f"search_digits_{name}.png")
    timing_path.write_text(json.dumps(timing, indent=1) + "\n")
    print(json.dumps(timing))


if __name__ == "__main__":
    main()
