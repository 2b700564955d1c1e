"""A search's configuration: the base, the (r, d, w) ranges, the budgets and the proxy training schedule."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..checks import integer, number
from ..core.bases import DEFAULT_BASE, get_base, get_rules
from ..core.budget import format_macs, parse_budget
from ..core.solver import macs_of
from ..core.twist import MIN_RESOLUTION, check_resolution, even_resolution
from ..errors import BudgetError, InvalidArgumentError

# for_flops serves budgets from 10M MACs, so a search only samples budgets its fitted formula can serve.
MIN_SEARCH_BUDGET = 10e6


@dataclass(frozen=True)
class SearchSpace:
    """Ranges sampled uniformly for r and d; w is solved per budget and kept only inside its range."""

    r: tuple[float, float] = (0.5, 1.0)
    d: tuple[float, float] = (0.5, 1.25)
    w: tuple[float, float] = (0.25, 1.5)
    tolerance: float = 0.01  # a trial's exact MACs lie in [budget * (1 - tolerance), budget]

    def __post_init__(self) -> None:
        for name in ("r", "d", "w"):
            lo, hi = getattr(self, name)
            if not (0 < lo <= hi <= 8 and math.isfinite(hi)):
                raise InvalidArgumentError(f"search range {name} must satisfy 0 < low <= high <= 8, got {(lo, hi)}")
            object.__setattr__(self, name, (float(lo), float(hi)))
        if not 0 < self.tolerance < 0.2:
            raise InvalidArgumentError(f"tolerance must be in (0, 0.2), got {self.tolerance!r}")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search; `identity()` is what a results file must agree with to be resumed."""

    data: str
    budgets: tuple[float, ...]
    trials: int
    base: str = DEFAULT_BASE
    rules: str = "tinynet"
    base_resolution: int = 0  # pixels r is relative to; 0 means the base's own (224)
    epochs: int = 3
    batch_size: int = 64
    lr: float = 3e-3  # AdamW; higher than the fine-tune default (1e-3) as proxies train from scratch
    val_fraction: float = 0.2
    seed: int = 0
    pretrained: "bool | str" = False  # from scratch, as the paper; 'inherit' cuts weights from a larger net
    augment: bool = False  # timm's training augmentation (crops down to 8% of the image) or none
    space: SearchSpace = field(default_factory=SearchSpace)

    def __post_init__(self) -> None:
        base = get_base(self.base)
        get_rules(self.rules)
        object.__setattr__(self, "data", str(Path(self.data).expanduser().resolve()))
        object.__setattr__(self, "base_resolution", check_resolution(self.base_resolution or base.resolution,
                                                                     "base_resolution"))
        object.__setattr__(self, "trials", integer("trials", self.trials, 1))
        object.__setattr__(self, "epochs", integer("epochs", self.epochs, 1))
        object.__setattr__(self, "batch_size", integer("batch_size", self.batch_size, 1))
        number("lr", self.lr, 0, 10, low_open=True, high_open=True)
        if self.pretrained not in (False, "inherit"):
            raise InvalidArgumentError(f"pretrained must be False (from scratch) or 'inherit', got {self.pretrained!r}")
        number("val_fraction", self.val_fraction, 0, 1, low_open=True, high_open=True)
        object.__setattr__(self, "budgets", self._checked_budgets(self.budgets))
        if self.trials < len(self.budgets):
            raise InvalidArgumentError(f"trials ({self.trials}) must be at least the number of budgets "
                                       f"({len(self.budgets)}) so that every budget gets a trial")

    def _checked_budgets(self, budgets: Sequence[Any]) -> tuple[float, ...]:
        if isinstance(budgets, (str, int, float)):
            budgets = [budgets]
        parsed = sorted({parse_budget(b) for b in budgets})
        if not parsed:
            raise BudgetError("give at least one budget, e.g. budgets=['25M', '50M']")
        lo, hi = budget_range(self.base, self.rules, self.base_resolution, self.space)
        for budget in parsed:
            if not lo <= budget <= hi:
                raise BudgetError(
                    f"budget {format_macs(budget)} is outside {self.base}'s search range at {self.base_resolution} px: "
                    f"{format_macs(lo)} to {format_macs(hi)} MACs (from 10M, which for_flops needs, or the smallest "
                    "network in the ranges, up to the base's own MACs; a lower base_resolution allows smaller "
                    "budgets, a higher one larger)")
        ids = [trial_id(b, 0) for b in parsed]
        clash = sorted({i.rsplit("-", 1)[0] for i in ids if ids.count(i) > 1})
        if clash:
            raise BudgetError(f"budgets too close to tell apart in trial names ({', '.join(clash)}): give budgets "
                              "that differ by at least 0.1M")
        return tuple(parsed)

    def trials_per_budget(self) -> dict[float, int]:
        """How many trials each budget gets: `trials` spread evenly, earlier budgets taking the remainder."""
        n, extra = divmod(self.trials, len(self.budgets))
        return {budget: n + (i < extra) for i, budget in enumerate(self.budgets)}

    def identity(self) -> dict[str, Any]:
        """The fields a resumed search must share (budgets and trials may grow: that extends the search)."""
        data = asdict(self)
        del data["budgets"], data["trials"]
        data["space"] = {k: list(v) if isinstance(v, tuple) else v for k, v in data["space"].items()}
        return data


def trial_id(budget: float, index: int) -> str:
    """Stable name of trial `index` at a budget, e.g. '25.0M-003' (the same on every run of the search)."""
    return f"{format_macs(budget)}-{index:03d}"


def budget_range(base: str, rules: str, base_resolution: int, space: SearchSpace) -> tuple[float, float]:
    """Budgets a search accepts: from max(10M, the smallest network in the ranges) to the base's MACs."""
    base_def, rules_def = get_base(base), get_rules(rules)
    smallest = max(MIN_RESOLUTION, even_resolution(base_resolution, space.r[0]))
    lo = macs_of(base_def, rules_def, space.d[0], space.w[0], smallest)
    return max(MIN_SEARCH_BUDGET, float(lo)), float(macs_of(base_def, rules_def, 1.0, 1.0, base_resolution))
