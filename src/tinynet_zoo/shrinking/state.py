"""The state of a shrink run: one JSON file in its folder recording each finished step and its results, so an
interrupted run resumes at the first unfinished step (and inside it, from the step's own checkpoints)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..errors import InvalidArgumentError, TinyNetZooError
from ..files import json_text, read_json, write_json_atomic

STATE_NAME = "shrink.json"
ADDED = {"int8": False}  # settings newer than some records: the value a record without them was run with
RESTARTED = ("teacher", "student", "plain", "scratch", "deploy")  # steps whose earlier files a restart replaces


def _option(key: str, value: Any) -> str:
    """A recorded setting as the keyword that sets it (the command line shows its flag)."""
    return f"{key}={value!r}"


def _read(path: Path) -> dict[str, Any]:
    """A shrink record, or an error naming the file, what is wrong and how to go on."""
    how = "move it out of the folder (it is kept as it is), choose a new --out, or pass overwrite=True to start " \
          "the run again"
    try:
        found = read_json(path, "a shrink record")
    except TinyNetZooError as exc:
        raise InvalidArgumentError(f"{path} is not a readable shrink record ({exc}); {how}") from None
    if not (isinstance(found, dict) and isinstance(found.get("settings"), dict)
            and isinstance(found.get("steps"), dict) and all(isinstance(v, dict) for v in found["steps"].values())
            and isinstance(found.get("restart", []), list)):
        raise InvalidArgumentError(f"{path} is not a shrink record (expected an object with 'settings' and 'steps' "
                                   f"objects); {how}")
    return found


class ShrinkState:
    """Finished steps of a shrink run and the settings it was started with (a resume must use the same)."""

    def __init__(self, folder: Path, settings: dict[str, Any], overwrite: bool = False) -> None:
        """Open the state in `folder`, refusing one written for other settings unless `overwrite` (which starts
        it again: the record is replaced now, and each training step starts afresh)."""
        self.path = folder / STATE_NAME
        settings = json.loads(json_text(settings))  # as the file will hold them (numpy numbers too)
        self.data: dict[str, Any] = {"settings": settings, "steps": {}}
        if self.path.is_file() and overwrite:
            self.data["restart"] = list(RESTARTED)
            write_json_atomic(self.path, self.data)
        elif self.path.is_file():
            found = _read(self.path)
            old, new = {**ADDED, **found["settings"]}, {**ADDED, **settings}
            changed = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
            if changed:
                was = ", ".join(_option(k, old.get(k)) for k in changed)
                now = ", ".join(_option(k, new.get(k)) for k in changed)
                raise InvalidArgumentError(
                    f"{folder} holds a shrink run started with {was}, not {now}; continue it with those options, "
                    "start it again with overwrite=True, or choose a new --out")
            self.data = found

    def fresh(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """A step's keyword arguments, with restart=True when a run started again must not reuse the earlier
        run's checkpoints or export."""
        return {**kwargs, "restart": True} if name in self.data.get("restart", []) else kwargs

    def step(self, name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The result of step `name`: recorded, or computed now and recorded."""
        if name not in self.data["steps"]:
            self.data["steps"][name] = run()
            if name in self.data.get("restart", []):
                self.data["restart"].remove(name)
            write_json_atomic(self.path, self.data)
        return self.data["steps"][name]

    @property
    def done(self) -> list[str]:
        """The names of the finished steps, in order."""
        return list(self.data["steps"])
