"""A fine-tuning run's settings (`TrainConfig`, checked on construction) and what it achieved (`TrainResult`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..checks import boolean, choice, integer, number, positive, probability

AMP_MODES = ("auto", "off", "bf16", "fp16")
CHANNELS_LAST_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one fine-tuning run.

    batch_size is per process; under torchrun the learning rate is multiplied by the number of processes
    (the linear scaling rule), so N processes at batch b train like one at batch N*b.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    ema_decay: float | None = 0.999  # None: no EMA
    amp: str = "auto"                # auto: bf16/fp16 on CUDA; on CPUs bf16 only with AMX/AVX512-BF16 (see docs)
    channels_last: str = "auto"      # auto: on (oneDNN/cuDNN NHWC kernels are faster for these nets)
    workers: int = 0
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        integer("epochs", self.epochs, 1)
        integer("batch_size", self.batch_size, 1)
        positive("lr", self.lr)
        number("weight_decay", self.weight_decay, 0)
        number("warmup_epochs", self.warmup_epochs, 0)
        probability("label_smoothing", self.label_smoothing)
        if self.ema_decay is not None:
            number("ema_decay", self.ema_decay, 0, 1, low_open=True, high_open=True)
        choice("amp mode", self.amp, AMP_MODES)
        choice("channels_last mode", self.channels_last, CHANNELS_LAST_MODES)
        integer("workers", self.workers, 0)
        integer("seed", self.seed, 0)
        boolean("progress", self.progress)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Names of the fields, for passing **overrides through."""
        return tuple(f.name for f in fields(cls))


@dataclass
class TrainResult:
    """What a run achieved: best and final validation top-1 (percent), per-epoch history, speed and files."""

    best_top1: float
    best_epoch: int
    best_source: str          # "model" or "ema": whose weights were best
    final_top1: float
    history: list[dict[str, Any]]
    images_per_s: float       # training throughput over all processes
    wall_s: float
    world_size: int = 1
    files: dict[str, str] = field(default_factory=dict)
    skipped_images: int = 0   # corrupt or unreadable images left out of the data

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)
