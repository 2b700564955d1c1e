"""`model_info`: one object with everything known about a model spec: the twist, exact MACs and params, the
paper's numbers (from the registry) beside the measured ones of the checkpoint (from the weights manifest)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .core.registry import DataConfig, Metrics
from .core.twist import Twist
from .errors import InvalidArgumentError
from .factory import Target, resolve
from .weights.folder import read_checked
from .weights.hub import download_folder
from .weights.manifest import Checkpoint, get_checkpoint
from .weights.model_config import ModelConfig


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
    measured: Metrics  # of `checkpoint` (timm's ImageNet evaluation where known); empty without one
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


def measured_metrics(ckpt: "Checkpoint | None") -> Metrics:
    """A checkpoint's measured top-1/top-5 (percent) and where they come from, as Metrics."""
    if ckpt is None:
        return Metrics()
    found = ckpt.metrics
    return Metrics(top1=found.get("imagenet_top1"), top5=found.get("imagenet_top5"), source=found.get("source", ""))


def _uncatalogued(twist: Twist, family: str, description: str, data: "DataConfig | None" = None,
                  name: str = "twist") -> ModelInfo:
    return ModelInfo(name=name, family=family, description=description, twist=twist, macs=twist.macs,
                     params=twist.params, paper=Metrics(), measured=Metrics(),
                     data_config=data or DataConfig(resolution=twist.resolution))


def _saved(target: Target) -> ModelInfo:
    """A model folder (or hub repo, fetched into the cache) described from its config.json."""
    folder = Path(target.location)
    if target.kind == "hub":
        folder = download_folder(target.location)
    config = read_checked(folder)  # what create() checks: the config and its agreement with the weights
    return _uncatalogued(config.twist, "saved", f"model folder {target.label} ({config.num_classes} classes)",
                         config.data, name=config.name)


def model_info(spec: Any) -> ModelInfo:
    """Everything known about a model spec: a name, 'name.tag', budget, Twist, model folder or hub repo."""
    target = resolve(spec)
    if target.kind == "module":
        config = ModelConfig.of(target.module)
        return _uncatalogued(config.twist, "module", f"built module ({config.name})")
    if target.kind in ("folder", "hub"):
        return _saved(target)
    entry = target.entry
    if entry is None:
        return _uncatalogued(target.twist, "uncatalogued", str(target.twist))
    tag = target.tag or entry.checkpoint
    return ModelInfo(
        name=entry.name, family=entry.family, description=entry.description, twist=entry.twist,
        macs=entry.twist.macs, params=entry.twist.params, paper=entry.paper,
        measured=measured_metrics(get_checkpoint(tag) if tag else None), data_config=entry.data_config,
        aliases=entry.aliases, checkpoint=tag, paired_with=entry.paired_with)
