"""Run the bad-input pass: every case of every `probe_*.py` beside this file, each in a fresh temporary folder,
against the tinynet_zoo that Python imports (point PYTHONPATH at another checkout's src to judge that one).

    python benchmarks/bad_input/run.py                      # table and verdict counts
    python benchmarks/bad_input/run.py --areas export,bench --json > after.json
    python benchmarks/bad_input/run.py --compare before.json after.json   # the before/after table
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import probe  # noqa: E402


class CaseTimeout(Exception):
    """A case ran past its time limit (a hang is a silent wrong result)."""


def _alarm(signum, frame):  # noqa: ARG001
    raise CaseTimeout()


def _judge(item: probe.Case, tmp: Path) -> tuple[str, str]:
    from tinynet_zoo.errors import TinyNetZooError
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(int(item.timeout))
    try:
        got = item.func(tmp)
    except CaseTimeout:
        return "WRONG", f"still running after {item.timeout:.0f} s (hangs)"
    except TinyNetZooError as exc:
        message = str(exc)
        missing = [n for n in item.needles if n.lower() not in message.lower()]
        verdict = "UNCLEAR" if missing else "OK"
        return verdict, f"{type(exc).__name__}: {message[:200]}" + (f" (missing {missing})" if missing else "")
    except Exception as exc:  # noqa: BLE001 - the point is to see what escapes
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return "CRASH", f"{type(exc).__name__}: {str(exc)[:160]} at {Path(where.filename).name}:{where.lineno}"
    finally:
        signal.alarm(0)
    if got is None:
        return ("WRONG", "accepted without an error") if item.expect == "error" else ("OK", "")
    verdict, detail = got
    assert verdict in probe.VERDICTS, verdict
    return verdict, str(detail)[:240]


def load_cases(areas: set[str] | None) -> list[probe.Case]:
    """Import every probe file and return its cases (only `areas` when given)."""
    for path in sorted(HERE.glob("probe_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return [c for c in probe.CASES if areas is None or c.area in areas]


def run(areas: set[str] | None, names: str | None) -> list[dict]:
    """Run the cases; one row per case with its verdict and detail."""
    rows = []
    for item in load_cases(areas):
        if names and names not in item.name:
            continue
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            verdict, detail = _judge(item, Path(tmp))
        rows.append({"area": item.area, "case": item.name, "verdict": verdict, "detail": detail,
                     "seconds": round(time.perf_counter() - start, 2)})
        print(f"{verdict:8s} {item.area:10s} {item.name}: {detail[:150]}", file=sys.stderr, flush=True)
    return rows


def compare(before: list[dict], after: list[dict]) -> str:
    """A markdown table of each case's verdict before and after, and the counts."""
    old = {(r["area"], r["case"]): r for r in before}
    lines = ["| area | case | before | after | after: message or result |", "|---|---|---|---|---|"]
    for r in after:
        b = old.get((r["area"], r["case"]), {}).get("verdict", "-")
        lines.append(f"| {r['area']} | {r['case']} | {b} | {r['verdict']} | {r['detail'][:120].replace('|', '/')} |")
    for label, rows in (("before", before), ("after", after)):
        lines.append(f"\n{label}: {len(rows)} cases, " + ", ".join(f"{v} {Counter(r['verdict'] for r in rows)[v]}"
                                                              for v in probe.VERDICTS))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--areas", help="comma-separated areas (default: all)")
    parser.add_argument("--case", help="only cases whose name contains this")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON on stdout")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="two --json outputs to compare")
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(Path(p).read_text()) for p in args.compare)
        print(compare(before, after))
        return
    rows = run(set(args.areas.split(",")) if args.areas else None, args.case)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        counts = Counter(r["verdict"] for r in rows)
        print(f"{len(rows)} cases: " + ", ".join(f"{v} {counts[v]}" for v in probe.VERDICTS))


if __name__ == "__main__":
    main()
