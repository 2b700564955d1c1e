"""Data for fine-tuning: image folders scanned, checked and split into train/val, and datasets over them."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..checks import integer, number
from ..errors import DataError
from ..images import IMAGE_EXTENSIONS, list_images, open_rgb, problem, warn_skipped
from ..preprocess import transforms

if TYPE_CHECKING:
    import torch.nn as nn

VAL_NAMES = ("val", "valid", "validation", "test")  # accepted names of a held-out folder beside train/


@dataclass(frozen=True)
class Splits:
    """An image folder scanned into labelled (path, class index) samples for training and validation."""

    root: Path
    classes: tuple[str, ...]
    train: tuple[tuple[Path, int], ...]
    val: tuple[tuple[Path, int], ...]
    skipped: tuple[Path, ...] = field(default=())  # unreadable or corrupt images, left out


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _samples(folder: Path, classes: tuple[str, ...], skipped: list[Path], offset: int = 0,
             required: bool = True) -> list[tuple[Path, int]]:
    """Readable images of each class folder, labelled offset + position; corrupt ones go to `skipped`."""
    out = []
    for index, name in enumerate(classes, start=offset):
        directory = folder / name
        files = list_images(directory) if directory.is_dir() else []
        good = [p for p in files if problem(p) is None]
        skipped.extend(sorted(set(files) - set(good)))
        if required and not good:
            what = "no readable images" if files else "no images"
            raise DataError(f"class folder {directory} has {what} (accepted extensions: "
                            f"{', '.join(IMAGE_EXTENSIONS)}); remove it or add images")
        out.extend((p, index) for p in good)
    return out


def _held_out_split(root: Path, classes: tuple[str, ...], skipped: list[Path], val_fraction: float,
                    seed: int) -> tuple[list, list]:
    """(train, val) samples: a seeded `val_fraction` of each class held out, refused when a class would keep no
    training image or nothing at all is held out."""
    rng = random.Random(seed)
    train, val, sizes = [], [], []
    for index in range(len(classes)):
        group = _samples(root, classes[index:index + 1], skipped, offset=index)
        rng.shuffle(group)
        cut = max(1, round(len(group) * val_fraction)) if len(group) > 1 else 0
        sizes.append((len(group), cut, classes[index]))
        val.extend(group[:cut])
        train.extend(group[cut:])
    emptied = [(size, name) for size, cut, name in sizes if size == cut]
    if emptied:
        smallest = min(size for size, _, _ in sizes if size > 1)
        raise DataError(f"val_fraction {val_fraction:g} (--val-fraction) holds out all {emptied[0][0]} images of "
                        f"class {emptied[0][1]!r}, leaving it none to train on; use a val_fraction of at most "
                        f"{int((smallest - 1) / smallest * 100) / 100:g} (the default is 0.2), or give train/ and "
                        "val/ folders")
    if not val:
        raise DataError(f"{root}: every class has a single image, so none can be held out for validation; add "
                        "images (at least 2 per class) or give train/ and val/ folders")
    return train, val


def scan_folder(root: "str | Path", val_fraction: float = 0.2, seed: int = 0) -> Splits:
    """Scan an ImageFolder (class sub-folders, or train/ and val/ each with class sub-folders) into Splits.

    Without a val/ folder, a stratified `val_fraction` of each class is held out (seeded). Corrupt images are
    left out with a warning that counts them.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist or is not a folder")
    number("val_fraction", val_fraction, 0, 1, low_open=True, high_open=True)
    integer("seed", seed, 0)
    skipped: list[Path] = []
    held_out = next((root / n for n in VAL_NAMES if (root / n).is_dir()), None)
    if (root / "train").is_dir() != (held_out is not None):
        what = f"train/ but no {'/'.join(VAL_NAMES)}" if held_out is None else f"{held_out.name}/ but no train"
        raise DataError(f"{root} has {what} folder: give both, or only class sub-folders (a validation split is "
                        "then held out)")
    if held_out is not None:
        classes = tuple(p.name for p in _class_dirs(root / "train"))
        if not classes:
            raise DataError(f"{root / 'train'} has no class sub-folders")
        extra = sorted({p.name for p in _class_dirs(held_out)} - set(classes))
        if extra:
            raise DataError(f"{held_out} has classes missing from train/: {', '.join(extra)}")
        train = _samples(root / "train", classes, skipped)
        val = _samples(held_out, classes, skipped, required=False)
        if not val:
            raise DataError(f"{held_out} has no readable images")
    else:
        classes = tuple(p.name for p in _class_dirs(root))
        if not classes:
            raise DataError(f"data folder {root} is empty: expected one sub-folder of images per class, "
                            "or train/ and val/ folders that each hold them")
        train, val = _held_out_split(root, classes, skipped, val_fraction, seed)
    if len(classes) < 2:
        raise DataError(f"{root} has a single class ({classes[0]}); classification needs at least two")
    if skipped:
        warn_skipped(skipped, root)
    return Splits(root, classes, tuple(train), tuple(val), tuple(skipped))


class ImageDataset:
    """A torch-style dataset over (path, class index) samples, images opened as RGB and transformed."""

    def __init__(self, samples: "tuple[tuple[Path, int], ...] | list[tuple[Path, int]]",
                 transform: "Callable | None" = None) -> None:
        self.samples = list(samples)
        self.targets = [label for _, label in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        image = open_rgb(path)
        return (self.transform(image) if self.transform is not None else image), label


def datasets(splits: Splits, model: "nn.Module", augment: str = "timm") -> tuple[ImageDataset, ImageDataset]:
    """Train (augmented: 'timm', 'light' or 'none') and val (evaluation transform) datasets for a model's input
    config."""
    return (ImageDataset(splits.train, transforms(model, train=True, augment=augment)),
            ImageDataset(splits.val, transforms(model, train=False)))
