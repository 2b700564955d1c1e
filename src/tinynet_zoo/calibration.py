"""Calibration images: unlabeled (or labelled) images that tell inheritance which channels matter, and that
re-estimate batch-norm statistics (`recalibrate_bn`, kept only when it measurably helps)."""
from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .checks import integer
from .core.registry import IMAGENET_MEAN, IMAGENET_STD
from .core.twist import check_resolution
from .errors import DataError, InvalidArgumentError

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
MIN_CALIBRATION_IMAGES = 32  # fewer give channel rankings that change from one sample to the next
MAX_CALIBRATION_IMAGES = 512
MIN_RECALIBRATION_IMAGES = 500  # measured: a few hundred views of 13 photos made batch-norm statistics worse
BATCH = 64


def list_images(folder: "str | Path") -> list[Path]:
    """Image files under a folder (any depth), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _folder_batches(folder: Path, resolution: int, limit: int, seed: int) -> list[tuple["torch.Tensor", None]]:
    import torch
    from PIL import Image
    from timm.data import create_transform

    if not folder.is_dir():
        raise DataError(f"calibration folder {folder} does not exist or is not a folder")
    files = list_images(folder)
    random.Random(seed).shuffle(files)
    transform = create_transform(input_size=(3, resolution, resolution), interpolation="bicubic",
                                 mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875)
    images = []
    for path in files[:limit]:
        try:
            with Image.open(path) as image:
                images.append(transform(image.convert("RGB")))
        except (OSError, ValueError):  # unreadable images are left out, as in training
            continue
    return [(torch.stack(images[i:i + BATCH]), None) for i in range(0, len(images), BATCH)]


def _iterable_batches(source: Iterable[Any]) -> list[tuple["torch.Tensor", Any]]:
    import torch

    batches = []
    for item in source:
        images, labels = (item[0], item[1]) if isinstance(item, (tuple, list)) else (item, None)
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise InvalidArgumentError(f"calibration batches must be image tensors (N, 3, H, W) or (images, labels) "
                                       f"pairs, got {type(images).__name__}")
        batches.append((images, labels))
    return batches


def batches(source: Any, resolution: int, limit: int = MAX_CALIBRATION_IMAGES, minimum: int = MIN_CALIBRATION_IMAGES,
            seed: int = 0) -> list[tuple["torch.Tensor", Any]]:
    """(images, labels or None) batches from a folder of images (any layout) or an iterable/loader of batches."""
    check_resolution(resolution)
    integer("limit", limit, 1)
    if isinstance(source, (str, Path)):
        found = _folder_batches(Path(source), resolution, limit, seed)
    elif hasattr(source, "__iter__"):
        found = _iterable_batches(source)
    else:
        raise InvalidArgumentError(f"calibration data must be a folder of images or an iterable of image batches, "
                                   f"got {source!r}")
    count = sum(len(images) for images, _ in found)
    if count < minimum:
        raise DataError(f"calibration data {source} has {count} readable image(s); at least {minimum} are needed "
                        f"(up to {limit} are used)")
    return found


@dataclass(frozen=True)
class Recalibration:
    """What `recalibrate_bn` did: applied or not, on how many images, and the held-out score before and after."""

    applied: bool
    images: int
    metric: str
    before: "float | None"
    after: "float | None"
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)


def _score(model: "nn.Module", held: list, reference: "nn.Module | None") -> float:
    """Lower is better: KL divergence from the reference's predictions, or cross-entropy on the labels."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for images, labels in held:
            logits = model(images).float()
            if reference is not None:
                target = reference.eval()(images).float().log_softmax(-1)
                loss = F.kl_div(logits.log_softmax(-1), target, log_target=True, reduction="sum")
            else:
                loss = F.cross_entropy(logits, labels, reduction="sum")
            total, count = total + float(loss), count + len(images)
    return total / max(count, 1)


def recalibrate_bn(model: "nn.Module", data: Any, reference: "nn.Module | None" = None,
                   min_images: int = MIN_RECALIBRATION_IMAGES) -> Recalibration:
    """Re-estimate batch-norm statistics on `data` (a folder or batches) and keep them only if they help.

    The rule: with fewer than `min_images` images nothing is changed (too few views make the statistics worse);
    otherwise a fifth of the images is held out, the statistics are re-estimated on the rest, and kept only
    if the held-out score improves: the KL divergence from `reference`'s predictions when given, else the
    cross-entropy on the data's labels.
    """
    import torch

    integer("min_images", min_images, 1)
    resolution = int(getattr(model, "pretrained_cfg", {}).get("input_size", (3, 224, 224))[-1])
    found = batches(data, resolution, limit=max(min_images, MAX_CALIBRATION_IMAGES) * 2, minimum=1)
    images = sum(len(x) for x, _ in found)
    metric = "kl_to_reference" if reference is not None else "cross_entropy"
    if reference is None and any(labels is None for _, labels in found):
        raise InvalidArgumentError("recalibrate_bn needs a reference model (e.g. the teacher) or labelled batches "
                                   "to check that the new statistics help")
    if images < min_images:
        return Recalibration(False, images, metric, None, None, f"{images} images; at least {min_images} are needed "
                             "for statistics that do not make the model worse")
    cut = max(1, len(found) // 5)
    held, fit = found[:cut], found[cut:] or found[:cut]
    before = _score(model, held, reference)
    saved = copy.deepcopy(model.state_dict())
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for batch, _ in fit:
            model(batch)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    after = _score(model, held, reference)
    if after >= before:
        model.load_state_dict(saved)
        return Recalibration(False, images, metric, before, after, "the held-out score did not improve; the "
                             "previous statistics were kept")
    model.eval()
    return Recalibration(True, images, metric, before, after, "the held-out score improved")
