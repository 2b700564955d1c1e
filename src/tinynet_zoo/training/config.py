"""A fine-tuning run's settings (`TrainConfig`, checked on construction) and what it achieved (`TrainResult`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..checks import boolean, choice, integer, number, positive, probability
from ..errors import InvalidArgumentError

AMP_MODES = ("auto", "off", "bf16", "fp16")
BATCHNORM_MODES = ("auto", "train", "frozen")
AUGMENTATIONS = ("light", "timm", "none")
AUTO_EPOCH_IMAGES = 4000  # auto epochs: about this many images seen, from 3 to 30 epochs
FINETUNE_BACKBONE_LR_SCALE, FINETUNE_LAYER_DECAY = 0.1, 0.85
FROZEN_BN_MAX_IMAGES = 5000  # batchnorm='auto': pretrained statistics stay frozen below this many train images
EMA_MIN_STEPS = 1000  # an EMA of 0.999 averages ~1000 steps: shorter runs end before it means anything
CHANNELS_LAST_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one fine-tuning run.

    batch_size is per process; under torchrun the learning rate is multiplied by the number of processes
    (the linear scaling rule), so N processes at batch b train like one at batch N*b.
    """

    epochs: int | None = None        # None: as many as a folder of this size needs (see `auto_epochs`)
    batch_size: int = 64
    lr: float = 1e-3                 # the classifier's; the backbone's is lower when fine-tuning (see below)
    backbone_lr_scale: "float | str" = "auto"  # backbone lr = lr * this; auto: 0.1 on pretrained weights, else 1
    layer_decay: "float | str | None" = "auto"  # each block further from the head: lr * this; auto: 0.85
                                                # on pretrained weights, else None (one rate)
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    warmup_steps: int | None = None  # None: 10% of the steps, at most 50; warmup_epochs, when set, wins
    warmup_epochs: float | None = None
    ema_decay: "float | str | None" = "auto"  # auto: 0.999 for runs of 1000 steps or more, else no EMA
    batchnorm: str = "auto"          # auto: frozen statistics when fine-tuning pretrained weights on small data
    augment: str = "light"           # light: crops of 75-100%, no flips; timm: timm's defaults; none
    amp: str = "auto"                # auto: bf16/fp16 on CUDA; on CPUs bf16 only with AMX/AVX512-BF16 (see docs)
    channels_last: str = "auto"      # auto: on (oneDNN/cuDNN NHWC kernels are faster for these nets)
    workers: int = 0
    seed: int = 0
    progress: bool = True
    qat: bool = False                # quantization-aware: trained through XNNPACK int8 fake quantization

    def __post_init__(self) -> None:
        if self.epochs is not None:
            integer("epochs", self.epochs, 1)
        integer("batch_size", self.batch_size, 1)
        positive("lr", self.lr)
        if self.layer_decay not in (None, "auto"):
            number("layer_decay (or 'auto', or None)", self.layer_decay, 0, 1, low_open=True)
        if self.backbone_lr_scale != "auto":
            number("backbone_lr_scale (or 'auto')", self.backbone_lr_scale, 0, 1, low_open=True)
        number("weight_decay", self.weight_decay, 0)
        if self.warmup_steps is not None:
            integer("warmup_steps", self.warmup_steps, 0)
        if self.warmup_epochs is not None:
            number("warmup_epochs", self.warmup_epochs, 0)
        probability("label_smoothing", self.label_smoothing)
        if self.ema_decay not in (None, "auto"):
            number("ema_decay (or 'auto', or None for no EMA)", self.ema_decay, 0, 1, low_open=True, high_open=True)
        choice("batchnorm mode", self.batchnorm, BATCHNORM_MODES)
        choice("augmentation", self.augment, AUGMENTATIONS)
        choice("amp mode", self.amp, AMP_MODES)
        choice("channels_last mode", self.channels_last, CHANNELS_LAST_MODES)
        integer("workers", self.workers, 0)
        integer("seed", self.seed, 0)
        boolean("progress", self.progress)
        boolean("qat", self.qat)
        if self.qat:
            self._check_qat()

    def _check_qat(self) -> None:
        """Refuse the settings quantization-aware training cannot honour."""
        if self.amp in ("bf16", "fp16"):
            raise InvalidArgumentError(f"qat=True trains in float32 through fake quantization; amp={self.amp!r} "
                                       "(--amp) does not apply: leave it at 'auto' or 'off'")
        if self.channels_last == "on":
            raise InvalidArgumentError("qat=True trains a traced graph in the default memory layout; "
                                       "channels_last='on' (--channels-last on) does not apply: leave it at 'auto' "
                                       "or 'off'")
        if self.ema_decay not in (None, "auto"):
            raise InvalidArgumentError(f"qat=True keeps no EMA weights (they would not be trained through fake "
                                       f"quantization); ema_decay={self.ema_decay!r} (--ema-decay) does not apply: "
                                       "leave it at 'auto' or give 0")

    def for_weights(self, pretrained: bool, images: int) -> "TrainConfig":
        """The automatic choices that depend on where the weights come from: lower backbone rates and frozen
        batch-norm statistics for pretrained weights on small data, one rate and trained statistics otherwise;
        with qat, float32 in the default memory layout and no EMA."""
        fine = {"backbone_lr_scale": FINETUNE_BACKBONE_LR_SCALE, "layer_decay": FINETUNE_LAYER_DECAY,
                "batchnorm": "frozen" if images < FROZEN_BN_MAX_IMAGES else "train"}
        scratch = {"backbone_lr_scale": 1.0, "layer_decay": None, "batchnorm": "train"}
        chosen = {**(fine if pretrained else scratch),
                  **({"amp": "off", "channels_last": "off", "ema_decay": None} if self.qat else {})}
        return replace(self, **{k: v for k, v in chosen.items() if getattr(self, k) == "auto"})

    def resolved_epochs(self, images: int) -> int:
        """The epochs to run on `images` training images (per process)."""
        return self.epochs if self.epochs is not None else auto_epochs(images)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Names of the fields, for passing **overrides through."""
        return tuple(f.name for f in fields(cls))


def auto_epochs(images: int) -> int:
    """Epochs that fit a folder of this size: enough passes to see about 4000 images, from 3 to 30."""
    return max(3, min(30, -(-AUTO_EPOCH_IMAGES // max(images, 1))))


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
    head_warm_start: dict[str, float] = field(default_factory=dict)  # the linear probe, when one was fitted

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)
