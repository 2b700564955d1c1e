"""Cold start of the catalogue commands and the formula: seconds and peak RSS of fresh processes vs `python -c pass`.

Each command runs in a new interpreter (nothing cached in memory; the OS file cache is warm after the first
round). Rounds are interleaved, so a burst of load on a shared machine hits every command alike. Peak RSS is
the child's own `ru_maxrss` from `os.wait4`; CPU seconds (user + system, from the same call) are printed too, since
on a shared machine they move less with other people's load than wall seconds do.

    PYTHONPATH=src python benchmarks/cold_start.py [--rounds 5] [--json out.json] [--baseline OTHER/src]

--baseline runs every command a second time, interleaved, with PYTHONPATH=OTHER/src: another checkout of the
package (e.g. `git archive c7f0ff5 src | tar -x -C /tmp/base`), for before/after numbers measured alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PY = sys.executable
CLI = [PY, "-m", "tinynet_zoo.cli"]  # what the `tinynet-zoo` console script runs
COMMANDS = {
    "python -c pass": [PY, "-c", "pass"],
    "import tinynet_zoo; for_flops(1e8)": [PY, "-c", "import tinynet_zoo as tz; tz.for_flops(1e8)"],
    "tinynet-zoo formula 100M": [*CLI, "formula", "100M"],
    "tinynet-zoo info tinynet_b": [*CLI, "info", "tinynet_b"],
    "tinynet-zoo table": [*CLI, "table"],
    "tinynet-zoo list": [*CLI, "list"],
}


def run_once(argv: list[str], env: "dict[str, str] | None" = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MB) of one fresh process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
    proc.stderr.close()
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux reports kilobytes


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _runs(baseline: "str | None") -> dict[str, tuple[list[str], "dict[str, str] | None"]]:
    """Label -> (argv, environment) of every command to time."""
    runs = {name: (argv, None) for name, argv in COMMANDS.items()}
    if baseline:
        env = dict(os.environ, PYTHONPATH=os.path.abspath(baseline))
        runs.update({f"{name} [baseline]": (argv, env) for name, argv in COMMANDS.items() if name != "python -c pass"})
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the rows here")
    parser.add_argument("--baseline", default=None, help="another package source folder to time alike")
    args = parser.parse_args()
    before = loadavg()
    commands = _runs(args.baseline)
    for argv, env in commands.values():  # one warm-up each: fill the OS file cache
        run_once(argv, env)
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, (argv, env) in commands.items():
            runs[name].append(run_once(argv, env))
    base = statistics.median(s for s, _, _ in runs["python -c pass"])
    rows = []
    print(f"{args.rounds} interleaved rounds; load average before {before}, after {loadavg()}")
    print("| command | median s | min s | over `python -c pass` s | median CPU s | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for name, samples in runs.items():
        seconds = [s for s, _, _ in samples]
        row = dict(command=name, median_s=statistics.median(seconds), min_s=min(seconds),
                   over_pass_s=statistics.median(seconds) - base, cpu_s=statistics.median(c for _, c, _ in samples),
                   peak_rss_mb=max(m for _, _, m in samples))
        rows.append(row)
        print(f"| {name} | {row['median_s']:.3f} | {row['min_s']:.3f} | {row['over_pass_s']:+.3f} | "
              f"{row['cpu_s']:.3f} | {row['peak_rss_mb']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"loadavg": [before, loadavg()], "rounds": args.rounds, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
