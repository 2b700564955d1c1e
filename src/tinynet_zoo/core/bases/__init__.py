"""The bases a twist can start from, one module each in this package (a module declares `BASES` and the `RULES` its
family uses, see spec.py); this registry collects every module here, so adding a base is adding a module."""
from __future__ import annotations

import importlib
import pkgutil

from ...errors import unknown
from .spec import Base, Rules, Run, Stage, stage

__all__ = ["BASES", "DEFAULT_BASE", "RULES", "Base", "Rules", "Run", "Stage", "stage", "get_base", "get_rules"]


def _collect() -> tuple[dict[str, Base], dict[str, Rules]]:
    """Every Base and Rules declared by a module of this package (spec.py declares none)."""
    bases: dict[str, Base] = {}
    rules: dict[str, Rules] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        bases.update((b.name, b) for b in getattr(module, "BASES", ()))
        rules.update((r.name, r) for r in getattr(module, "RULES", ()))
    return bases, rules


BASES, RULES = _collect()
DEFAULT_BASE = "efficientnet_b0"  # the base a twist, a budget, a formula or a search starts from unless told


def get_base(name: str) -> Base:
    """The registered Base called `name`."""
    try:
        return BASES[name]
    except (KeyError, TypeError):
        raise unknown("base", name, BASES) from None


def get_rules(name: str) -> Rules:
    """The registered rounding Rules called `name`."""
    try:
        return RULES[name]
    except (KeyError, TypeError):
        raise unknown("rule set", name, RULES) from None
