"""Argument checks at the public boundary: integers, finite numbers, probabilities and choices, each failing with
an error that names the argument, the value given and what is accepted."""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

from .errors import InvalidArgumentError, UnknownNameError, unknown


def _span(minimum: "float | None", maximum: "float | None", low_open: bool = False, high_open: bool = False) -> str:
    if minimum is not None and maximum is not None:
        return f"in {'(' if low_open else '['}{minimum:g}, {maximum:g}{')' if high_open else ']'}"
    if minimum is not None:
        return f"{'>' if low_open else '>='} {minimum:g}"
    if maximum is not None:
        return f"{'<' if high_open else '<='} {maximum:g}"
    return ""


def integer(name: str, value: Any, minimum: "int | None" = None, maximum: "int | None" = None) -> int:
    """`value` as an int (numpy integers too), refusing bools, floats and values outside [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum) or (
            maximum is not None and value > maximum):
        raise InvalidArgumentError(f"{name} must be an integer {_span(minimum, maximum)}".rstrip() +
                                   f", got {value!r}")
    return int(value)


def number(name: str, value: Any, minimum: "float | None" = None, maximum: "float | None" = None, *,
           low_open: bool = False, high_open: bool = False) -> float:
    """`value` as a finite float within the bounds (open or closed ends; numpy numbers too), refusing bools, NaN and
    infinities."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if ok and minimum is not None:
        ok = value > minimum if low_open else value >= minimum
    if ok and maximum is not None:
        ok = value < maximum if high_open else value <= maximum
    if not ok:
        span = _span(minimum, maximum, low_open, high_open)
        raise InvalidArgumentError(f"{name} must be a finite number {span}".rstrip() + f", got {value!r}")
    return float(value)


def positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    return number(name, value, 0, low_open=True)


def probability(name: str, value: Any) -> float:
    """A finite number in [0, 1)."""
    return number(name, value, 0, 1, high_open=True)


def boolean(name: str, value: Any) -> bool:
    """A real bool (not 0/1 or a string)."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be True or False, got {value!r}")
    return value


def choice(kind: str, value: Any, choices: Iterable[str]) -> str:
    """`value` if it is one of `choices`, else an UnknownNameError suggesting the closest ones."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise unknown(kind, value, choices, UnknownNameError)
    return value


def known_keys(kind: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """Refuse keyword names that are not accepted, suggesting the closest accepted one for each."""
    accepted = tuple(accepted)
    for key in given:
        if key not in accepted:
            raise unknown(kind, key, accepted, UnknownNameError)


def name_list(kind: str, value: Any, empty_hint: str, what: str = "names") -> "list[str] | None":
    """None, one name, or a non-empty list or tuple of names, as a list (a single string is one name, not its
    letters); an empty one is refused with `empty_hint` (what to name instead)."""
    if value is None or isinstance(value, str):
        return None if value is None else [value]
    if not isinstance(value, (list, tuple)):
        raise InvalidArgumentError(f"{kind} must be a list of {what} (or one name), got {value!r}")
    if not value:
        raise InvalidArgumentError(f"{kind} is empty: {empty_hint}")
    return list(value)
