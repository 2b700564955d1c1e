"""A run folder is owned: `run.json` records the run's identity, a file lock keeps a second process out, and a
new run never writes over an earlier run's files unless asked to (`overwrite`, which removes only our files)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError
from ..files import ensure_writable_dir, write_json_atomic
from ..weights.folder import recover

RUN_NAME, LOCK_NAME, OWNER_NAME = "run.json", ".tinynet_zoo.lock", ".tinynet_zoo.owner"
# everything a run writes; `overwrite` removes exactly these, nothing else in the folder
RUN_FILES = (RUN_NAME, "metrics.jsonl", "curves.png", "checkpoints", "best")


class RunFolder:
    """The output folder of one training run, locked for as long as the run holds it."""

    def __init__(self, path: "str | Path", resume: bool, overwrite: bool = False,
                 identity: "dict[str, Any] | None" = None) -> None:
        """Claim `path` for a run: lock it, then check it may be written (resume an earlier run, or a new one)."""
        from filelock import FileLock, Timeout

        self.path = ensure_writable_dir(path, "run folder (--out)")
        self._lock = FileLock(str(self.path / LOCK_NAME))
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise InvalidArgumentError(f"run folder {self.path} is in use by {self._owner()}; wait for that run to "
                                       "finish, or choose another --out") from None
        try:
            write_json_atomic(self.path / OWNER_NAME, {"pid": os.getpid(), "host": socket.gethostname(),
                                                       "since": time.strftime("%Y-%m-%dT%H:%M:%S")})
            self.identity = self._claim(resume, overwrite, identity or {})
        except BaseException:
            self.release()
            raise

    def _owner(self) -> str:
        try:
            owner = json.loads((self.path / OWNER_NAME).read_text())
            return f"process {owner['pid']} on {owner['host']} (since {owner['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def _claim(self, resume: bool, overwrite: bool, identity: dict[str, Any]) -> dict[str, Any]:
        """The run's identity: the recorded one when resuming, a new one otherwise (after the checks)."""
        recover(self.path / "best")  # a run killed while replacing best/ left it aside
        present = [name for name in RUN_FILES if (self.path / name).exists()]
        if present == [RUN_NAME]:  # a run stopped before its first epoch: nothing of it is worth keeping
            present = []
        if resume:
            recorded = self.path / RUN_NAME
            return json.loads(recorded.read_text()) if recorded.is_file() else identity
        if present and not overwrite:
            raise InvalidArgumentError(
                f"{self.path} already holds a run ({', '.join(present)}); continue it with --resume {self.path}, "
                "start over with --overwrite (removes only those run files), or choose another --out")
        for name in present:  # overwrite: our own run files only
            target = self.path / name
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        record = {"library": "tinynet_zoo", "kind": "finetune-run", "run_id": uuid.uuid4().hex,
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S"), **identity}
        write_json_atomic(self.path / RUN_NAME, record)
        return record

    def release(self) -> None:
        """Give the folder up (the lock file stays; it is empty and harmless)."""
        (self.path / OWNER_NAME).unlink(missing_ok=True)
        self._lock.release()

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

