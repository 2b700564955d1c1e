"""A run folder is owned: `run.json` records the run's identity, a file lock keeps a second process out, and a
new run never writes over an earlier run's files unless asked to (`overwrite`, which removes only files that
run.json and their layout prove are a run's own: anything else there is refused and left alone)."""
from __future__ import annotations

import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, TinyNetZooError
from ..files import ensure_writable_dir, path_lock, read_json, write_json_atomic
from ..weights.folder import is_our_folder, recover

RUN_NAME, LOCK_NAME, OWNER_NAME = "run.json", ".tinynet_zoo.lock", ".tinynet_zoo.owner"
# everything a run writes; `overwrite` removes exactly these, nothing else in the folder
RUN_FILES = (RUN_NAME, "metrics.jsonl", "curves.png", "checkpoints", "best")
CHECKPOINTS, WEIGHTS, OPTIMIZER = "checkpoints", "weights.safetensors", "optimizer.pt"
GENERATION = re.compile(r"^epoch-(\d{4,})$")  # checkpoints/epoch-NNNN: one saved epoch
_LEFTOVER = re.compile(r"^\.(staging-|replaced-epoch-)")  # hidden folders an interrupted checkpoint save leaves
_IDENTITY = ("architecture", "twist", "num_classes")  # what a resumed run must share with the recorded one


class RunFolder:
    """The output folder of one training run, locked for as long as the run holds it."""

    def __init__(self, path: "str | Path", resume: bool, overwrite: bool = False,
                 identity: "dict[str, Any] | None" = None) -> None:
        """Claim `path` for a run: lock it, then check it may be written (resume an earlier run, or a new one)."""
        from filelock import Timeout

        self.path = ensure_writable_dir(path, "run folder (--out)")
        self._lock = path_lock(self.path / LOCK_NAME)
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
            owner = read_json(self.path / OWNER_NAME, "the lock owner")
            return f"process {owner['pid']} on {owner['host']} (since {owner['since']})"
        except (TinyNetZooError, KeyError, TypeError):
            return "another process"

    def _claim(self, resume: bool, overwrite: bool, identity: dict[str, Any]) -> dict[str, Any]:
        """The run's identity: the recorded one when resuming, a new one otherwise (after the checks)."""
        recover(self.path / "best")  # a run killed while replacing best/ left it aside
        recorded = self._recorded()
        present = [name for name in RUN_FILES if (self.path / name).exists() or (self.path / name).is_symlink()]
        if present == [RUN_NAME]:  # a run stopped before its first epoch: nothing of it is worth keeping
            present = []
        if resume:
            if recorded is not None:
                return self._same_model(recorded, identity)
            return self._adopt(present, identity)
        if present and not overwrite:
            raise InvalidArgumentError(
                f"{self.path} already holds a run ({', '.join(present)}); continue it with --resume {self.path}, "
                "start over with --overwrite (removes only those run files), or choose another --out")
        if present:
            self._check_owned(present, recorded)
        for name in present:  # overwrite: our own run files only, each proven ours above
            target = self.path / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        return self._record(identity)

    def _record(self, identity: dict[str, Any]) -> dict[str, Any]:
        """Write a new run.json recording this run's identity, and return it."""
        record = {"library": "tinynet_zoo", "kind": "finetune-run", "run_id": uuid.uuid4().hex,
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S"), **identity}
        write_json_atomic(self.path / RUN_NAME, record)
        return record

    def _adopt(self, present: list[str], identity: dict[str, Any]) -> dict[str, Any]:
        """Resuming a run written before run.json existed: record it, when its files are provably a run's own
        (later resumes are then checked against it, and --overwrite may remove it); else leave the folder as is."""
        if not identity or CHECKPOINTS not in present:
            return identity
        try:
            self._check_layout(present)
        except InvalidArgumentError:
            return identity
        return self._record(identity)

    def _refuse(self, what: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"{what}; nothing was removed. A run's own files are kept unless run.json and "
                                    f"their layout prove they are a run's own: move the other files out of "
                                    f"{self.path}, or choose another --out")

    def _recorded(self) -> "dict[str, Any] | None":
        """The folder's run.json if it is one this package wrote (None when there is none); refused otherwise."""
        path = self.path / RUN_NAME
        if not path.exists() and not path.is_symlink():
            return None
        if path.is_symlink() or not path.is_file():
            raise self._refuse(f"{path} is not a run record written by tinynet_zoo (a link or folder)")
        try:
            data = read_json(path, "a run record written by `tinynet-zoo finetune`")
        except TinyNetZooError as exc:
            raise self._refuse(str(exc)) from None
        if not isinstance(data, dict) or data.get("library") != "tinynet_zoo" or \
                data.get("kind") != "finetune-run" or not isinstance(data.get("run_id"), str):
            raise self._refuse(f"{path} was not written by a tinynet_zoo run (no library, kind and run_id fields)")
        return data

    def _same_model(self, recorded: dict[str, Any], identity: dict[str, Any]) -> dict[str, Any]:
        theirs, ours = ({k: d.get(k) for k in _IDENTITY} for d in (recorded, identity))
        if identity and theirs != ours:
            raise InvalidArgumentError(
                f"{self.path / RUN_NAME} records a run of {theirs['architecture']} (twist {theirs['twist']}, "
                f"{theirs['num_classes']} classes), not of this {ours['architecture']} (twist {ours['twist']}, "
                f"{ours['num_classes']} classes); resume with the same model and data, or choose another --out")
        return recorded

    def _check_owned(self, present: list[str], recorded: "dict[str, Any] | None") -> None:
        """Refuse --overwrite unless every present run file is provably a run's own."""
        if recorded is None:
            raise self._refuse(f"{self.path} holds {', '.join(present)} but no run.json, so they cannot be proven "
                               "to be a run's own (--overwrite removes only a recorded run's files)")
        self._check_layout(present)

    def _check_layout(self, present: list[str]) -> None:
        """Refuse unless each present run file is laid out as a run writes it (and holds nothing else)."""
        for name in present:
            target = self.path / name
            if target.is_symlink() or target.is_dir() != (name in (CHECKPOINTS, "best")):
                raise self._refuse(f"{target} is not what a run writes there (a link, or a file where a folder "
                                   "belongs or the reverse)")
        foreign = [p for p in ((self.path / CHECKPOINTS).iterdir() if CHECKPOINTS in present else ())
                   if not _is_generation(p)]
        best = self.path / "best"
        if "best" in present and any(best.iterdir()) and not is_our_folder(best):
            foreign.append(best)
        if foreign:
            raise self._refuse(f"{', '.join(str(p) for p in foreign[:3])} {'is' if len(foreign) == 1 else 'are'} "
                               "not a run's own (checkpoints/ holds only epoch-NNNN folders, best/ only a model "
                               "folder)")

    def release(self) -> None:
        """Give the folder up (the lock file stays; it is empty and harmless)."""
        (self.path / OWNER_NAME).unlink(missing_ok=True)
        self._lock.release()

    def __enter__(self) -> "RunFolder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()



def _is_generation(path: Path) -> bool:
    """Whether `path` (inside checkpoints/) is a generation folder a run wrote, or an interrupted save's leftover."""
    if path.is_symlink() or not path.is_dir() or not (GENERATION.match(path.name) or _LEFTOVER.match(path.name)):
        return False
    return all(p.is_file() and not p.is_symlink() and p.name in (WEIGHTS, OPTIMIZER) for p in path.iterdir())
