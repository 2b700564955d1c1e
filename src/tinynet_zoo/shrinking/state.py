"""The state of a shrink run: one JSON file in its folder recording each finished step and its results, so an
interrupted run resumes at the first unfinished step (and inside it, from the step's own checkpoints)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..errors import InvalidArgumentError
from ..files import write_json_atomic

STATE_NAME = "shrink.json"


class ShrinkState:
    """Finished steps of a shrink run and the settings it was started with (a resume must use the same)."""

    def __init__(self, folder: Path, settings: dict[str, Any]) -> None:
        """Open the state in `folder`, refusing one written for other settings."""
        self.path = folder / STATE_NAME
        self.data: dict[str, Any] = {"settings": settings, "steps": {}}
        if self.path.is_file():
            try:
                found = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise InvalidArgumentError(f"{self.path} is damaged ({exc}); choose a new --out") from None
            if found.get("settings") != json.loads(json.dumps(settings)):
                raise InvalidArgumentError(
                    f"{folder} holds a shrink run with other settings ({found.get('settings')}); resume it with the "
                    "same command, or choose a new --out")
            self.data = found

    def step(self, name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The result of step `name`: recorded, or computed now and recorded."""
        if name not in self.data["steps"]:
            self.data["steps"][name] = run()
            write_json_atomic(self.path, self.data)
        return self.data["steps"][name]

    @property
    def done(self) -> list[str]:
        """The names of the finished steps, in order."""
        return list(self.data["steps"])
