"""The results file: append-only JSON lines, a header line naming the search, one line per finished trial."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError
from ..files import append_line, ensure_writable_dir, json_text, write_text_atomic

RESULTS_NAME = "results.jsonl"
FORMAT_VERSION = 1


def prepare_out_dir(out: "str | Path") -> Path:
    """Create the search folder if needed and check that files can be written in it."""
    return ensure_writable_dir(out, "search folder (--out)")


def _parse(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of the file and the byte length of its complete lines (a torn last line is left out)."""
    raw = path.read_bytes()
    records, good = [], 0
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        last = number == len(lines)
        if not line.strip():
            good += len(line) + (not last)
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if last or (number == len(lines) - 1 and not lines[-1]):
                warnings.warn(f"{path}: ignoring a truncated last line (an interrupted write); that trial reruns",
                              stacklevel=3)
                break
            raise InvalidArgumentError(f"{path}, line {number}: not a JSON record; the results file is damaged "
                                       "(delete that line or start fresh in another folder)") from None
        if not isinstance(record, dict):
            raise InvalidArgumentError(f"{path}, line {number}: expected a JSON object")
        records.append(record)
        good += len(line) + (not last)
    return records, good


def read_results(out: "str | Path") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and the trial records of a search folder (the last record per trial id wins)."""
    path = Path(out) / RESULTS_NAME
    if not path.is_file():
        raise InvalidArgumentError(f"no search results in {str(out)!r} (expected {RESULTS_NAME}); "
                                   "run `tinynet-zoo search --data DIR --budgets ... --out DIR` first")
    records, _ = _parse(path)
    if not records or records[0].get("type") != "search":
        raise InvalidArgumentError(f"{path} does not start with a search header line; it is not a results file")
    trials: dict[str, dict[str, Any]] = {}
    for record in records[1:]:
        if record.get("type") == "trial" and "id" in record:
            trials.pop(record["id"], None)
            trials[record["id"]] = record
    return records[0], list(trials.values())


def _describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:4])


class ResultsFile:
    """An append-only results file bound to one search configuration."""

    def __init__(self, out: "str | Path", identity: dict[str, Any]) -> None:
        """Open (creating it with a header) the results file in `out`; refuse one from another search."""
        self.path = prepare_out_dir(out) / RESULTS_NAME
        if not self.path.exists():
            header = {"type": "search", "version": FORMAT_VERSION, "config": identity}
            write_text_atomic(self.path, json_text(header) + "\n")
        records, good = _parse(self.path)
        if not records or records[0].get("type") != "search":
            raise InvalidArgumentError(f"{self.path} exists but is not a search results file; choose another --out")
        stored = records[0].get("config")
        if stored != json.loads(json.dumps(identity)):
            raise InvalidArgumentError(
                f"{self.path} belongs to a different search ({_describe_difference(stored or {}, identity)}); "
                "results of two configurations are never mixed: use another --out, or delete that file to start "
                "fresh (only budgets and trials may change when resuming)")
        with open(self.path, "r+b") as fh:  # drop a torn last line so the next append starts on a fresh line
            fh.truncate(good)
            fh.seek(max(good - 1, 0))
            if good and fh.read(1) != b"\n":
                fh.write(b"\n")
        self.records = [r for r in records[1:] if r.get("type") == "trial"]

    def done(self, include_failed: bool = True) -> set[str]:
        """Ids of recorded trials (finished, and failed unless include_failed is False)."""
        latest = {r["id"]: r for r in self.records if "id" in r}
        return {i for i, r in latest.items() if include_failed or r.get("status") == "ok"}

    def append(self, record: dict[str, Any]) -> None:
        """Append one trial record as a line, flushed and fsynced (a crash loses at most this line)."""
        line = json_text({"type": "trial", **record})
        append_line(self.path, line)
        self.records.append(json.loads(line))
