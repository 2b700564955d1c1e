"""Parsing MAC budgets ('100M', '0.1G', '100e6', 1e8) into integers, with clear errors."""
from __future__ import annotations

import math
import re

from ..errors import BudgetError

_SUFFIX = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMG]?)\s*(?:MACS?|FLOPS?)?\s*$", re.IGNORECASE)


def looks_like_budget(text: str) -> bool:
    """Whether a string is spelled like a budget ('50M', '5e7', '0.1G'), as opposed to a model name or path."""
    return bool(_PATTERN.match(text))


def parse_budget(budget: "float | int | str") -> float:
    """A budget in MACs from a number or a string such as '100M', '0.1G' or '100e6'."""
    given = budget
    if isinstance(budget, str):
        match = _PATTERN.match(budget)
        if not match:
            raise BudgetError(f"cannot parse budget {budget!r}; use a number of MACs such as 100e6, '100M' or '0.1G'")
        budget = float(match.group(1)) * _SUFFIX[match.group(2).upper()]
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        raise BudgetError(f"budget must be a number of MACs or a string like '100M', got {budget!r}")
    if not math.isfinite(budget) or budget <= 0:
        raise BudgetError(f"budget must be a positive, finite number of MACs, got {given!r}")
    return float(budget)


def format_macs(macs: float) -> str:
    """Human-readable MACs: '99.5M', '1.20G'."""
    return f"{macs / 1e9:.2f}G" if macs >= 1e9 else f"{macs / 1e6:.1f}M"


def describe_macs(macs: float) -> str:
    """MACs for messages, never rounded across a limit: '9.99M', '10M', '4G', '100 MACs'."""
    if macs < 1e5:
        return f"{macs:.4g} MACs"
    return f"{macs / 1e9:.4g}G" if macs >= 1e9 else f"{macs / 1e6:.4g}M"


def check_range(macs: float, low: float, high: float, spelled: object = None) -> None:
    """Refuse a budget outside [low, high], with a hint when the unit was probably left out ('100' for 100M)."""
    if low <= macs <= high:
        return
    hint = ""
    if macs < low and low <= macs * 1e6 <= high:
        hint = f"; did you mean {describe_macs(macs * 1e6)} (a suffix: K, M or G)?"
    raise BudgetError(f"budget {spelled!r} = {describe_macs(macs)} is outside the supported range "
                      f"{describe_macs(low)} to {describe_macs(high)} MACs{hint}")
