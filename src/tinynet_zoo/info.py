"""`model_info`: one object with everything known about a model name or a Twist."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .registry import DataConfig, Entry, Metrics
from .twist import Twist


@dataclass(frozen=True)
class ModelInfo:
    """Twist, exact MACs/params, paper and measured metrics, checkpoint tag and eval data config."""

    name: str
    family: str
    description: str
    twist: Twist
    macs: int
    params: int
    paper: Metrics
    measured: Metrics
    data_config: DataConfig
    aliases: tuple[str, ...] = ()
    checkpoint: str | None = None
    paired_with: str | None = None

    @property
    def resolution(self) -> int:
        """Input pixels (height = width)."""
        return self.twist.resolution

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        data = asdict(self)
        data["twist"] = self.twist.to_dict()
        return data


def model_info(name_or_twist: "str | Twist") -> ModelInfo:
    """Everything known about a catalogued model (by name or alias) or an uncatalogued Twist."""
    from .build import resolve

    twist, entry = resolve(name_or_twist)
    if entry is None:
        entry = Entry(name="twist", twist=twist, family="uncatalogued", description=str(twist))
    return ModelInfo(
        name=entry.name, family=entry.family, description=entry.description, twist=twist, macs=twist.macs,
        params=twist.params, paper=entry.paper, measured=entry.measured, data_config=entry.data_config,
        aliases=entry.aliases, checkpoint=entry.checkpoint, paired_with=entry.paired_with)
