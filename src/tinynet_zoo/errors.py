"""The error hierarchy: one base class, subclasses that are also the builtin a caller expects."""
from __future__ import annotations

import difflib
from typing import Iterable


class TinyNetZooError(Exception):
    """Base class of every error raised on purpose by tinynet_zoo."""


class UnknownModelError(TinyNetZooError, KeyError):
    """A model, base, rule set or formula name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(TinyNetZooError, ValueError):
    """An argument outside what is accepted (the message says what is)."""


class BudgetError(InvalidArgumentError):
    """A MAC or latency budget outside the supported range."""


class ChecksumError(TinyNetZooError, OSError):
    """A checkpoint file whose size or sha256 differs from what was pinned; it was not loaded."""


class CheckpointNotFoundError(TinyNetZooError, FileNotFoundError):
    """No checkpoint could be found (not hosted, not cached while offline, or a missing path)."""


class IncompatibleCheckpointError(TinyNetZooError, ValueError):
    """A checkpoint that does not fit the architecture (missing/unexpected keys, wrong shapes) or is unreadable."""


class DataError(TinyNetZooError, ValueError):
    """A data folder that cannot be trained on (missing, empty, a class without images); the message says why."""


class DataWarning(TinyNetZooError, UserWarning):
    """Some images were left out (unreadable or corrupt); the message counts them."""


class ExtraNotInstalledError(TinyNetZooError, ImportError):
    """An optional dependency is missing; the message names the extra to install (pip install 'tinynet-zoo[...]')."""


class BackendNotInstalledError(ExtraNotInstalledError):
    """A deploy backend (onnxruntime, openvino) that is not installed; the message names the extra."""


class UnverifiedCheckpointWarning(TinyNetZooError, UserWarning):
    """A checkpoint loaded without a pinned sha256 to check it against (the message gives its hash)."""


class BudgetWarning(TinyNetZooError, UserWarning):
    """A budget could only be met less tightly than the requested tolerance (the message says how close)."""


def unknown(kind: str, name: object, known: Iterable[str]) -> UnknownModelError:
    """Build an UnknownModelError for `name`, suggesting close matches among `known`."""
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    if close:
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?"
    elif len(known) <= 8:
        hint = f"; accepted: {', '.join(known)}"
    else:
        hint = "; run `tinynet-zoo list` to see the accepted names"
    return UnknownModelError(f"unknown {kind} {name!r}{hint}")
