"""Writing files safely: a temporary name beside the target, renamed onto it only once complete."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def umask() -> int:
    """The process umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def temporary_beside(path: "str | Path", suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file in `path`'s folder with a normal file's mode; removed on exit unless renamed away."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
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
