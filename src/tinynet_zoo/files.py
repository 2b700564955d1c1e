"""Writing files safely: atomic replace, fsync'd line appends, writable-folder checks, strict JSON text, reading
the package's own JSON files, and the inter-process lock on a path."""
from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import CheckpointNotFoundError, IncompatibleCheckpointError, InvalidArgumentError


def umask() -> int:
    """The process umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float (nested in dicts, lists, tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def json_text(data: Any, indent: "int | None" = None) -> str:
    """Strict JSON (no NaN or Infinity: such numbers become null); other objects are written with str()."""
    return json.dumps(finite(data), indent=indent, allow_nan=False, default=lambda o: finite(_plain(o)))


def _plain(value: Any) -> Any:
    """A JSON-ready stand-in for an object json cannot write (numpy scalars become numbers, paths strings)."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    return str(value)


@contextmanager
def temporary_beside(path: "str | Path", suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file in `path`'s folder with a normal file's mode; removed on exit unless renamed away."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it private; the result gets a normal file's mode
    try:
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_atomic(path: "str | Path", write: Callable[[Path], object], suffix: str = ".tmp") -> Path:
    """Call write(temporary path), then rename it onto `path`: readers never see a half-written file."""
    with temporary_beside(path, suffix) as tmp:
        write(tmp)
        os.replace(tmp, path)
    return Path(path)


def write_text_atomic(path: "str | Path", text: str) -> Path:
    """Write `text` to `path` atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_json_atomic(path: "str | Path", data: Any, indent: "int | None" = 1) -> Path:
    """Write `data` as strict JSON (non-finite numbers as null) to `path` atomically."""
    return write_text_atomic(path, json_text(data, indent) + "\n")


def append_line(path: "str | Path", line: str) -> None:
    """Append one line, flushed and fsynced: a crash loses at most this line, never an earlier one."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def ensure_writable_dir(path: "str | Path", what: str = "output folder") -> Path:
    """Create the folder if needed and prove that files can be written in it; a clear error otherwise."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InvalidArgumentError(f"{what} {str(folder)!r} is a file, not a folder; choose a folder path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise InvalidArgumentError(f"{what} {str(folder)!r} is not writable: {exc.strerror or exc}") from None
    return folder


def ensure_parent_dir(path: "str | Path") -> Path:
    """Check that `path`'s folder exists and is writable (the file itself is written later)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InvalidArgumentError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InvalidArgumentError(f"cannot write {path}: folder {parent} is not writable")
    return path


def read_json(path: "str | Path", what: str) -> Any:
    """A JSON file the package wrote (`what` says which); IncompatibleCheckpointError naming the file when it is
    missing, unreadable, not JSON or nested too deeply to parse."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointNotFoundError(f"{path} is missing: expected {what}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IncompatibleCheckpointError(f"{path} is not valid JSON ({exc}); expected {what}") from None
    except RecursionError:
        raise IncompatibleCheckpointError(f"{path} is nested too deeply to be {what}") from None
    except OSError as exc:
        raise IncompatibleCheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None


def path_lock(path: "str | Path") -> Any:
    """An inter-process lock (the `filelock` library the Hugging Face hub uses) on the lock file `path`, not yet
    acquired: `with path_lock(p):` waits for it, `.acquire(timeout=0)` raises filelock.Timeout when it is held."""
    from filelock import FileLock

    return FileLock(str(path))


def refuse_existing(paths: "list[Path] | Path", overwrite: bool, what: str = "file") -> None:
    """Refuse an output path that is a folder (always) or an existing file (unless `overwrite`), before any work."""
    paths = [Path(p) for p in (paths if isinstance(paths, list) else [paths])]
    for path in paths:
        if path.is_dir():
            raise InvalidArgumentError(f"{path} is a folder, not a file: the {what} is written as one file; choose "
                                       "a file path (nothing was written)")
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise InvalidArgumentError(f"{existing[-1]} already exists; pass overwrite=True (CLI: --overwrite) to "
                                   "replace it")
