"""The error hierarchy: one base class, subclasses that are also the builtin a caller expects.

Rule of thumb: a value of the wrong type or out of range is an `InvalidArgumentError` (a `ValueError`); a
name that is not among the accepted ones (a model, a checkpoint tag, a backend, a format, ...) is an
`UnknownNameError`, which is both a `ValueError` and a `KeyError` and always suggests close matches.
"""
from __future__ import annotations

import difflib
from typing import Iterable


class TinyNetZooError(Exception):
    """Base class of every error raised on purpose by tinynet_zoo."""


class InvalidArgumentError(TinyNetZooError, ValueError):
    """An argument outside what is accepted (the message says what is)."""


class UnknownNameError(InvalidArgumentError, KeyError):
    """A name that is not among the accepted ones; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class UnknownModelError(UnknownNameError):
    """A model name (or alias) that is not in the catalogue."""


class UnknownTagError(UnknownModelError):
    """A checkpoint tag ('model.tag') that the weights manifest does not list."""


class BudgetError(InvalidArgumentError):
    """A MAC or latency budget outside the supported range."""


class ChecksumError(TinyNetZooError, OSError):
    """A checkpoint file whose size or sha256 differs from what was pinned; it was not loaded."""


class CheckpointNotFoundError(TinyNetZooError, FileNotFoundError):
    """No checkpoint could be found (not hosted, not cached while offline, or a missing path)."""


class HubError(TinyNetZooError, ConnectionError):
    """The Hugging Face hub could not be reached or refused a request (e.g. an upload); the message says which
    hub and what to do."""


class IncompatibleCheckpointError(TinyNetZooError, ValueError):
    """A checkpoint that does not fit the architecture (missing/unexpected keys, wrong shapes) or is unreadable."""


class UnreadableModelError(IncompatibleCheckpointError):
    """An exported model file (.onnx, OpenVINO .xml/.bin, ExecuTorch .pte) that an engine cannot read: empty,
    truncated, corrupt or of another format; the message gives the path and what was expected."""


class DataError(TinyNetZooError, ValueError):
    """A data folder that cannot be trained on (missing, empty, a class without images); the message says why."""


class AccuracyLossError(TinyNetZooError):
    """An int8 file refused because it lost too much accuracy against float; the message has the measured numbers."""


class QuantizationError(TinyNetZooError, RuntimeError):
    """A format's int8 quantizer failed on this model; the message names the quantizer and its error."""


class ExtraNotInstalledError(TinyNetZooError, ImportError):
    """An optional dependency is missing; the message names the extra to install (pip install 'tinynet-zoo[...]')."""


class BackendNotInstalledError(ExtraNotInstalledError):
    """A deploy backend (onnxruntime, openvino) that is not installed; the message names the extra."""


class DataWarning(TinyNetZooError, UserWarning):
    """Some images were left out (unreadable or corrupt); the message counts them."""


class UnverifiedCheckpointWarning(TinyNetZooError, UserWarning):
    """A checkpoint loaded without a pinned sha256 to check it against (the message gives its hash)."""


class BudgetWarning(TinyNetZooError, UserWarning):
    """A budget could only be met less tightly than the requested tolerance (the message says how close)."""


ERRORS = (TinyNetZooError, InvalidArgumentError, UnknownNameError, UnknownModelError, UnknownTagError, BudgetError,
          ChecksumError, CheckpointNotFoundError, IncompatibleCheckpointError, UnreadableModelError, DataError,
          ExtraNotInstalledError, BackendNotInstalledError, DataWarning, UnverifiedCheckpointWarning, BudgetWarning)


def close_matches(name: object, known: Iterable[str]) -> list[str]:
    """Up to three accepted names that look like `name` (case-insensitive)."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    found = difflib.get_close_matches(str(name).lower(), list(lowered), n=3, cutoff=0.5)
    return [lowered[k] for k in found]


def unknown(kind: str, name: object, known: Iterable[str],
            error: type[UnknownNameError] = UnknownNameError) -> UnknownNameError:
    """An UnknownNameError (or the subclass `error`) for `name`, suggesting close matches among `known`."""
    known = sorted(known)
    close = close_matches(name, known)
    if close:
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?"
    elif len(known) <= 8:
        hint = f"; accepted: {', '.join(known)}" if known else "; none are available"
    else:
        hint = "; run `tinynet-zoo list` to see the accepted names" if error is UnknownModelError else \
            f"; accepted: {', '.join(known[:8])}, ..."
    return error(f"unknown {kind} {name!r}{hint}")


def summary(exc: BaseException, limit: int = 300) -> str:
    """Another library's exception in one line: its type and the first line of its message (at most `limit`
    characters), for errors that name what went wrong without the library's traceback."""
    first = (str(exc).strip().splitlines() or [""])[0][:limit]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
