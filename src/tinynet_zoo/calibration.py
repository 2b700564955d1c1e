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
from .weights.model_config import config_or_none
from .images import list_images, open_usable

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

MIN_CALIBRATION_IMAGES = 32  # fewer give channel rankings that change from one sample to the next
MAX_CALIBRATION_IMAGES = 512
MIN_RECALIBRATION_IMAGES = 500  # measured: a few hundred views of 13 photos made batch-norm statistics worse
BATCH = 64
MIN_SPLIT = 10  # the least min_images: a held-out fifth of 2, and statistics fitted on 8


def _folder_batches(folder: Path, resolution: int, limit: int, seed: int) -> list[tuple["torch.Tensor", None]]:
    import torch
    from timm.data import create_transform

    if not folder.is_dir():
        raise DataError(f"calibration folder {folder} does not exist or is not a folder")
    files = list_images(folder)
    random.Random(seed).shuffle(files)
    transform = create_transform(input_size=(3, resolution, resolution), interpolation="bicubic",
                                 mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875)
    images = [transform(image) for image in open_usable(files[:limit], folder)]  # as in training
    return [(torch.stack(images[i:i + BATCH]), None) for i in range(0, len(images), BATCH)]


def _described(value: Any) -> str:
    """A tensor's dtype and shape, or another value's type."""
    return f"a {value.dtype} tensor of shape {tuple(value.shape)}" if hasattr(value, "dtype") and \
        hasattr(value, "shape") else type(value).__name__


def _checked_batch(images: Any, labels: Any, index: int) -> tuple["torch.Tensor", Any]:
    """One (images, labels) batch after checking it is finite float images (N, C, H, W) and N integer labels."""
    import torch

    where = f"calibration batch {index}"
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise InvalidArgumentError(f"{where}: calibration batches must be float image tensors (N, C, H, W) or "
                                   f"(images, labels) pairs, got {_described(images)}")
    if not torch.isfinite(images).all():
        raise InvalidArgumentError(f"{where} holds NaN or infinite values ({int((~torch.isfinite(images)).sum())} "
                                   "of them); calibration images must be finite")
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or labels.shape != (len(images),) or labels.is_floating_point() \
                or labels.dtype == torch.bool:
            raise InvalidArgumentError(f"{where}: labels must be an integer tensor of shape ({len(images)},), one "
                                       f"class index per image, got {_described(labels)}")
    return images, labels


def _iterable_batches(source: Iterable[Any], resolution: "int | None", limit: int) -> list[tuple["torch.Tensor", Any]]:
    """Checked batches read until `limit` images (the last batch cut to fit); later batches are not read."""
    found, count = [], 0
    for index, item in enumerate(source):
        images, labels = (item[0], item[1] if len(item) > 1 else None) if isinstance(item, (tuple, list)) and item \
            else (item, None)
        found.append(_checked_batch(images, labels, index))
        shape = tuple(found[-1][0].shape[1:])
        if shape != found[0][0].shape[1:]:
            raise InvalidArgumentError(f"calibration batch {index} has images of shape {shape}, batch 0 of "
                                       f"{tuple(found[0][0].shape[1:])}; give every batch the same channels and size")
        if resolution is not None and shape[1:] != (resolution, resolution):
            raise InvalidArgumentError(f"calibration batch {index} has {shape[1]}x{shape[2]} images but the model "
                                       f"takes {resolution}x{resolution}; resize the calibration images to "
                                       f"{resolution}x{resolution}")
        images, labels = found[-1]
        if count + len(images) >= limit:
            keep = limit - count
            found[-1] = (images[:keep], labels[:keep] if labels is not None else None)
            break
        count += len(images)
    return found


def batches(source: Any, resolution: int, limit: int = MAX_CALIBRATION_IMAGES, minimum: int = MIN_CALIBRATION_IMAGES,
            seed: int = 0, exact_size: bool = True) -> list[tuple["torch.Tensor", Any]]:
    """(images, labels or None) batches from a folder of images (any layout) or an iterable/loader of batches:
    at most `limit` images, batches of another size than `resolution` refused unless exact_size is False."""
    check_resolution(resolution)
    integer("limit", limit, 1)
    if isinstance(source, (str, Path)):
        found = _folder_batches(Path(source), resolution, limit, seed)
    elif hasattr(source, "__iter__"):
        found = _iterable_batches(source, resolution if exact_size else None, limit)
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


def _checked_models(model: Any, reference: Any) -> list:
    """The model's batch-norm layers, after checking model and reference are modules with as many classes."""
    import torch

    for name, value in (("model", model), ("reference", reference)):
        if not isinstance(value, torch.nn.Module) and (name == "model" or value is not None):
            raise InvalidArgumentError(f"recalibrate_bn: {name} must be a torch module (e.g. from tinynet_zoo.create)"
                                       f"{' or None' if name == 'reference' else ''}, got {type(value).__name__}")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise InvalidArgumentError(f"recalibrate_bn: the model ({type(model).__name__}) has no batch-norm layers to "
                                   "recalibrate (an exported or folded model has none)")
    classes = getattr(model, "num_classes", None), getattr(reference, "num_classes", None)
    if reference is not None and None not in classes and classes[0] != classes[1]:
        raise InvalidArgumentError(f"recalibrate_bn: the reference has {classes[1]} classes but the model "
                                   f"{classes[0]}; give a reference trained on the same classes")
    return norms


def _input_size(model: "nn.Module") -> tuple:
    """(channels, resolution) a module takes: its typed config's when made by `create`, else a timm model's own
    pretrained_cfg input size, else (None, None)."""
    config = config_or_none(model)
    if config is not None:
        return config.in_chans, config.data.resolution
    size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")  # a plain timm model's (timm's format)
    return (size[0], size[-1]) if size else (None, None)


def _checked_views(model: "nn.Module", found: list, labelled: bool) -> tuple[list, "torch.Tensor | None"]:
    """Every image and the labels (or None), after checking they fit the model's channels and classes."""
    import torch

    views = [image for x, _ in found for image in x]
    channels = _input_size(model)[0] or getattr(model, "in_chans", None)
    if channels is not None and views[0].shape[0] != channels:
        raise InvalidArgumentError(f"recalibrate_bn: the data has {views[0].shape[0]}-channel images but the model "
                                   f"takes {channels} channels")
    labels = torch.cat([y for _, y in found]) if labelled else None
    classes = getattr(model, "num_classes", None)
    if labels is not None and classes and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise InvalidArgumentError(f"recalibrate_bn: labels must be class indices in [0, {classes - 1}] for this "
                                   f"model, got values in [{int(labels.min())}, {int(labels.max())}]")
    return views, labels


def _split(views: list, labels: "torch.Tensor | None") -> tuple[list, list]:
    """(held-out, fit) batches: a seeded fifth of the images (not of the batches) is held out."""
    import torch

    order = torch.randperm(len(views), generator=torch.Generator().manual_seed(0))
    images = torch.stack([views[i] for i in order.tolist()])  # one copy, in the held-out order
    labels = labels[order] if labels is not None else None
    cut = max(1, len(images) // 5)

    def pick(start: int, stop: int) -> list:  # batches of even size: none of a single image (batch norm refuses)
        parts = torch.arange(start, stop).tensor_split(max(1, -(-(stop - start) // BATCH)))
        return [(images[p[0]:p[-1] + 1], labels[p[0]:p[-1] + 1] if labels is not None else None)
                for p in parts if len(p)]
    return pick(0, cut), pick(cut, len(images))


def recalibrate_bn(model: "nn.Module", data: Any, reference: "nn.Module | None" = None,
                   min_images: int = MIN_RECALIBRATION_IMAGES) -> Recalibration:
    """Re-estimate batch-norm statistics on `data` (a folder or batches) and keep them only if they help.

    The rule: with fewer than `min_images` images nothing is changed (too few views make the statistics worse);
    otherwise a fifth of the images is held out, the statistics are re-estimated on the rest, and kept only
    if the held-out score improves: the KL divergence from `reference`'s predictions when given, else the
    cross-entropy on the data's labels.
    """
    import torch

    norms = _checked_models(model, reference)
    integer("min_images", min_images, MIN_SPLIT)
    size = _input_size(model)[-1]
    found = batches(data, int(size) if size else 224, limit=max(min_images, MAX_CALIBRATION_IMAGES) * 2,
                    minimum=1, exact_size=bool(size))
    images = sum(len(x) for x, _ in found)
    metric = "kl_to_reference" if reference is not None else "cross_entropy"
    if reference is None and any(labels is None for _, labels in found):
        raise InvalidArgumentError("recalibrate_bn needs a reference model (e.g. the teacher) or labelled batches "
                                   "to check that the new statistics help")
    views, labels = _checked_views(model, found, labelled=reference is None)
    if images < min_images:
        return Recalibration(False, images, metric, None, None, f"{images} images; at least {min_images} are needed "
                             "for statistics that do not make the model worse")
    held, fit = _split(views, labels)
    before = _score(model, held, reference)
    saved = copy.deepcopy(model.state_dict())
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
