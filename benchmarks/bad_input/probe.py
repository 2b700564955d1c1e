"""The bad-input pass: cases that misuse the library as a hostile-but-realistic user would, each judged.

A probe file (`probe_<area>.py` beside this one) registers cases with `@case(area, name)`. A case is a function
of one argument, a fresh temporary folder; it either raises, or returns a verdict:

- raises a `TinyNetZooError` whose message holds every `needles` string (case-insensitive) -> OK,
  or one that misses a needle -> UNCLEAR;
- raises anything else -> CRASH (a raw error from deep inside);
- returns None although `expect="error"` -> WRONG (the bad input was accepted);
- returns a `(verdict, detail)` pair itself (OK, WRONG, UNCLEAR, CRASH or LOST) when the case checks a result.

`cli(*argv)` runs the command line in a subprocess and `judge_cli` turns its exit into a verdict (exit 2 with
one line `tinynet-zoo: error: ...` holding the needles is OK). `Kept(folder)` snapshots a user's files and
`.lost()` names any that are gone or changed afterwards (verdict LOST).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

VERDICTS = ("OK", "UNCLEAR", "WRONG", "CRASH", "LOST")


@dataclass
class Case:
    """One registered case."""
    area: str
    name: str
    func: Callable
    expect: str = "error"           # "error": must be refused; "result": the function judges the result
    needles: tuple[str, ...] = ()
    timeout: float = 120.0


CASES: list[Case] = []


def case(area: str, name: str, expect: str = "error", needles: tuple[str, ...] | list[str] = (),
         timeout: float = 120.0) -> Callable:
    """Register the decorated function as a case of the pass."""
    def register(func: Callable) -> Callable:
        CASES.append(Case(area, name, func, expect, tuple(needles), timeout))
        return func
    return register


def cli(*argv: str, cwd: str | Path | None = None, timeout: float = 300.0) -> tuple[int, str, str]:
    """Run `python -m tinynet_zoo.cli ARGV` in a subprocess; return (exit code, stdout, stderr)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "tinynet_zoo.cli", *map(str, argv)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def judge_cli(result: tuple[int, str, str], needles: tuple[str, ...] | list[str] = (),
              expect_error: bool = True) -> tuple[str, str]:
    """The verdict of a command-line run that should have been refused with one clear line."""
    code, out, err = result
    lines = [line for line in err.strip().splitlines() if line.strip()]
    if "Traceback (most recent call last)" in err:
        return "CRASH", lines[-1][:200] if lines else "traceback"
    if not expect_error:
        return ("OK", out.strip()[:200]) if code == 0 else ("WRONG", f"exit {code}: {err.strip()[:200]}")
    if code == 0:
        return "WRONG", f"exit 0 (accepted): {out.strip()[:160]}"
    message = " ".join(lines)
    missing = [n for n in needles if n.lower() not in message.lower()]
    if code != 2 or missing or not message.startswith("tinynet-zoo: error"):
        return "UNCLEAR", f"exit {code}, missing {missing}: {message[:200]}"
    return "OK", message[:200]


def digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Kept:
    """A snapshot of the user's files under a folder (or a single file), to check none is lost or changed."""
    root: Path
    files: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        paths = [self.root] if self.root.is_file() else sorted(p for p in self.root.rglob("*") if p.is_file())
        self.files = {str(p): digest(p) for p in paths}

    def lost(self) -> list[str]:
        """The snapshot's files that are gone or whose bytes changed."""
        return [p for p, h in self.files.items() if not Path(p).is_file() or digest(Path(p)) != h]
