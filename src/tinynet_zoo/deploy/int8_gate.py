"""The int8 accuracy gate: calibration and held-out images, the float-vs-int8 comparison that decides whether an
int8 file may be written, and the measured sensitivity that chooses which layers stay float.

The rule: on labelled held-out images the int8 top-1 may drop at most `max_drop` points below float; without
labels the int8 top-1 class must agree with float on at least `min_agreement` of the held-out images.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from ..calibration import batches
from ..checks import number
from ..errors import AccuracyLossError, DataError

if TYPE_CHECKING:
    import numpy as np
    import torch
    import torch.nn as nn

MAX_DROP = 1.0  # top-1 points an int8 file may lose on labelled held-out images
MIN_AGREEMENT = 0.98  # share of unlabelled held-out images whose int8 top-1 must equal float's
CALIBRATION_IMAGES = 256  # at most, the rest (up to HELD_OUT_IMAGES) is held out for the gate
HELD_OUT_IMAGES = 1000
MIN_IMAGES = 16  # each of calibration and held-out
SPLIT_FOLDERS = ("train", "val")
FORWARD_BATCH = 64  # images per forward pass when the gate runs the float model
FIRST = ("conv_stem", "bn1")  # timm's names of the stem (bn1 holds its activation)
LAST = ("conv_head", "bn2", "global_pool", "norm_head", "act2", "classifier")  # EfficientNet's and MobileNetV3's heads


@dataclass(frozen=True)
class Int8Data:
    """Calibration images, held-out images for the gate, and their labels (None when unlabelled)."""

    calibration: "torch.Tensor"
    held_out: "torch.Tensor"
    labels: "torch.Tensor | None"


def _labelled(folder: Path, classes: "list[str] | None", resolution: int, limit: int, seed: int) -> Any:
    """(images, labels) from class sub-folders named like the model's classes, or None when the folder is not so."""
    import torch

    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not classes or not names or any(name not in classes for name in names):
        return None
    images, labels = [], []
    for name in names:
        found = batches(folder / name, resolution, limit=max(1, limit // len(names)), minimum=0, seed=seed)
        images += [x for x, _ in found]
        labels += [torch.full((len(x),), classes.index(name)) for x, _ in found]
    if not images:
        return None
    return torch.cat(images), torch.cat(labels)


def _images(source: Any, classes: "list[str] | None", resolution: int, limit: int, seed: int) -> tuple:
    """(images, labels or None) from a folder (class sub-folders make them labelled) or an iterable of batches."""
    import torch

    if isinstance(source, (str, Path)):
        labelled = _labelled(Path(source), classes, resolution, limit, seed)
        if labelled is not None:
            return labelled
    found = batches(source, resolution, limit=limit, minimum=0, seed=seed)
    if not found:
        return torch.zeros(0, 3, resolution, resolution), None
    labels = None if any(y is None for _, y in found) else torch.cat([torch.as_tensor(y) for _, y in found])
    return torch.cat([x for x, _ in found]), labels


def int8_data(source: Any, classes: "list[str] | None", resolution: int, seed: int = 0) -> Int8Data:
    """Calibration and held-out images from a folder (train/ and val/, or any layout) or an iterable of batches."""
    import torch

    root = Path(source) if isinstance(source, (str, Path)) else None
    if root is not None and all((root / name).is_dir() for name in SPLIT_FOLDERS):
        calibration, _ = _images(root / "train", None, resolution, CALIBRATION_IMAGES, seed)
        held_out, labels = _images(root / "val", classes, resolution, HELD_OUT_IMAGES, seed)
    else:
        images, labels = _images(source, classes, resolution, CALIBRATION_IMAGES + HELD_OUT_IMAGES, seed)
        order = list(range(len(images)))
        random.Random(seed).shuffle(order)
        cut = min(CALIBRATION_IMAGES, len(order) // 2)
        calibration, held_out = images[order[:cut]], images[order[cut:]]
        labels = None if labels is None else labels[order[cut:]]
    if min(len(calibration), len(held_out)) < MIN_IMAGES:
        raise DataError(f"int8 calibration data {source} gave {len(calibration)} calibration and {len(held_out)} "
                        f"held-out image(s); at least {MIN_IMAGES} of each are needed (give {2 * MIN_IMAGES} or more "
                        "images, or train/ and val/ folders)")
    return Int8Data(calibration.float(), held_out.float(), None if labels is None else labels.long())


@dataclass(frozen=True)
class GateResult:
    """Float vs int8 on the held-out images, and whether the int8 file may be written."""

    images: int
    labelled: bool
    float_top1: "float | None"  # percent, labelled data only
    int8_top1: "float | None"
    agreement: float  # percent of images where int8's top-1 class equals float's
    passed: bool
    float_layers: tuple[str, ...] = ()  # the layers kept in float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    def describe(self) -> str:
        """One line with the measured numbers."""
        kept = f" ({', '.join(self.float_layers)} in float)" if self.float_layers else ""
        if self.labelled:
            return (f"top-1 {self.float_top1:.1f}% float vs {self.int8_top1:.1f}% int8{kept}, agreement "
                    f"{self.agreement:.1f}% on {self.images} labelled held-out images")
        return f"top-1 agreement with float {self.agreement:.1f}%{kept} on {self.images} held-out images"


def check_thresholds(max_drop: Any, min_agreement: Any) -> None:
    """Refuse gate thresholds outside their ranges."""
    number("max_drop (top-1 points)", max_drop, 0.0, 100.0)
    number("min_agreement", min_agreement, 0.0, 1.0)


def logits(model: "nn.Module", images: "torch.Tensor", batch: int = FORWARD_BATCH) -> "torch.Tensor":
    """The model's outputs on `images`, computed `batch` images at a time (memory stays bounded)."""
    import torch

    with torch.inference_mode():
        return torch.cat([model(chunk) for chunk in images.split(batch)])


def judge(reference: "np.ndarray", quantized: "np.ndarray", labels: "torch.Tensor | None", max_drop: float,
          min_agreement: float, float_layers: tuple[str, ...] = ()) -> GateResult:
    """The gate on float and int8 logits of the held-out images."""
    agreement = 100.0 * float((reference.argmax(1) == quantized.argmax(1)).mean())
    if labels is None:
        return GateResult(len(reference), False, None, None, agreement, agreement >= 100.0 * min_agreement,
                          float_layers)
    truth = labels.numpy()
    top1 = [100.0 * float((logits.argmax(1) == truth).mean()) for logits in (reference, quantized)]
    return GateResult(len(reference), True, top1[0], top1[1], agreement, top1[0] - top1[1] <= max_drop,
                      float_layers)


def refuse(tries: list[GateResult], max_drop: float, min_agreement: float) -> AccuracyLossError:
    """The error that says no int8 file was written, with every try's numbers and the rule."""
    rule = (f"top-1 drop <= {max_drop:g} points" if tries[-1].labelled
            else f"top-1 agreement with float >= {100 * min_agreement:g}%")
    return AccuracyLossError("int8 lost too much accuracy, nothing was written: " + "; ".join(
        t.describe() for t in tries) + f"; the rule: {rule}. Give more or more typical calibration images, "
        "fine-tune the model quantization-aware first (tinynet-zoo finetune MODEL --qat, or "
        "tz.finetune(..., qat=True)) and export that run's best/ folder, or export fp32")


def candidate_groups(model: "nn.Module") -> dict[str, list[str]]:
    """The layers that may stay float: the first (stem conv and its activation), the last (head conv, its
    activation, the pooling and the classifier), each stage of blocks (`blocks.N`) and each squeeze-excite gate
    (not the identity placeholders of models without them)."""
    every = dict(model.named_modules())
    names = {name: m for name, m in every.items() if any(True for _ in m.parameters())}
    groups = {"first": [n for n in FIRST if n in every], "last": [n for n in LAST if n in every]}
    groups.update({name: [name] for name in names if name.count(".") == 1 and name.startswith("blocks.")})
    groups.update({name: [name] for name in names if name.endswith(".se")})
    return {k: v for k, v in groups.items() if v}


@contextmanager
def _simulated_int8(model: "nn.Module", layers: list["nn.Module"], images: "torch.Tensor") -> Iterator[None]:
    """Within the block, `layers` compute on int8 inputs (per-tensor, ranges observed on `images`) with int8
    per-channel symmetric weights, as XNNPACK's static quantization does."""
    import torch

    ranges: dict[Any, list[float]] = {}

    def observe(layer: Any, args: tuple) -> None:
        low, high = ranges.setdefault(layer, [0.0, 0.0])
        ranges[layer] = [min(low, float(args[0].min())), max(high, float(args[0].max()))]

    def quantize(layer: Any, args: tuple) -> tuple:
        low, high = ranges[layer]
        scale = max(high - low, 1e-8) / 255.0
        return (torch.fake_quantize_per_tensor_affine(args[0], scale, int(round(-128 - low / scale)), -128, 127),)

    saved, hooks = [layer.weight.data for layer in layers], []
    try:  # the model is restored even when a forward pass raises
        hooks = [layer.register_forward_pre_hook(observe) for layer in layers]
        logits(model, images)
        for hook in hooks:
            hook.remove()
        hooks = [layer.register_forward_pre_hook(quantize) for layer in layers]
        for layer in layers:
            w = layer.weight.data
            scale = (w.abs().flatten(1).amax(1) / 127.0).clamp_min(1e-12)
            layer.weight.data = torch.fake_quantize_per_channel_affine(w, scale, torch.zeros_like(scale).int(), 0,
                                                                        -127, 127)
        yield
    finally:
        for hook in hooks:
            hook.remove()
        for layer, weight in zip(layers, saved):
            layer.weight.data = weight


def sensitivity(model: "nn.Module", images: "torch.Tensor") -> dict[str, float]:
    """For each candidate group: the KL divergence of the model's predictions from float when only that group
    computes in int8 (larger: keeping it float helps more)."""
    import torch
    import torch.nn.functional as F

    kinds = (torch.nn.Conv2d, torch.nn.Linear)
    modules = dict(model.named_modules())
    reference = logits(model, images).log_softmax(-1)
    scores = {}
    for group, names in candidate_groups(model).items():
        layers = [m for name in names for m in modules[name].modules() if isinstance(m, kinds)]
        with _simulated_int8(model, layers, images):
            scores[group] = max(0.0, float(F.kl_div(logits(model, images).log_softmax(-1), reference,
                                                    log_target=True, reduction="batchmean")))  # >= 0 up to rounding
    return scores


def search(model: "nn.Module", data: Int8Data, build: Callable[[tuple[str, ...]], "np.ndarray"],
           max_drop: float, min_agreement: float, reference: "np.ndarray | None" = None,
           ) -> tuple[GateResult, list[GateResult]]:
    """Try all-int8 first, then keep the most sensitive groups float (1, 2, 4, ... of them) until the gate
    passes; `build(float_modules)` writes an int8 file and returns its logits on the held-out images;
    `reference`: the float model's logits on them, when the caller has them already."""
    reference = logits(model, data.held_out).numpy() if reference is None else reference
    groups, tries = candidate_groups(model), []

    def attempt(kept: tuple[str, ...]) -> bool:
        modules = tuple(name for group in kept for name in groups[group])
        tries.append(judge(reference, build(modules), data.labels, max_drop, min_agreement, kept))
        return tries[-1].passed

    if attempt(()):
        return tries[-1], tries
    scores = sensitivity(model, data.calibration)
    order, count = sorted(scores, key=lambda g: -scores[g]), 1
    while count <= len(order):
        if attempt(tuple(order[:count])):
            return tries[-1], tries
        count = len(order) + 1 if count == len(order) else min(2 * count, len(order))
    raise refuse(tries, max_drop, min_agreement)
