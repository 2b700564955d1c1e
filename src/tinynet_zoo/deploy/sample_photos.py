"""Sample photos for int8 calibration when the user gives no images: crops and mirror images of the colour photos
bundled with scikit-image (`skimage.data`), calibration and held-out images cut from different photos.

They are generic photos (a person, a cat, a cup, a rocket, a motorcycle, microscopy, a retina, a galaxy field), so
an int8 file checked on them may still lose accuracy on the user's own images: the export warns and suggests
`calibration=DIR`. The crops are written once into the cache folder (`sample_photos/`), atomically.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

from ..errors import ExtraNotInstalledError
from ..system import cache_root, is_installed

CALIBRATION_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "retina")
HELD_OUT_PHOTOS = ("chelsea", "stereo_motorcycle", "hubble_deep_field")
SCALES, GRID = (1.0, 0.7, 0.5), 3  # crop side / the photo's shorter side; positions along each axis
SIDE = 256  # pixels of each saved crop; the model's transform resizes them like any calibration folder
FOLDER = "sample_photos-v1"
WARNING = ("int8 calibrated and checked on scikit-image's generic sample photos, which may not look like your "
           "images: the accuracy check says only that int8 agrees with float on those photos; pass "
           "calibration=DIR (CLI: --calibration DIR) with images like the ones the model will see")


def require_sample_photos() -> None:
    """Raise ExtraNotInstalledError unless scikit-image (whose bundled photos calibrate) can be imported."""
    if not is_installed("skimage"):
        raise ExtraNotInstalledError(
            "precision='int8' without calibration images calibrates on scikit-image's sample photos, and "
            "scikit-image is not installed: pip install scikit-image (or 'tinynet-zoo[dev]'), or pass "
            "calibration=DIR (CLI: --calibration DIR), a folder of images like the ones the model will see")


def _photo(name: str) -> "Image":
    """One bundled photo as an RGB PIL image."""
    from PIL import Image
    from skimage import data

    pixels = getattr(data, name)()
    return Image.fromarray(pixels[0] if isinstance(pixels, tuple) else pixels).convert("RGB")  # stereo: the left


def views(photo: "Image") -> list["Image"]:
    """Deterministic square crops of a photo (its shorter side's whole, 70% and 50% on a 3x3 grid of positions;
    the same box only once) and their mirror images, each SIDE pixels."""
    from PIL import Image

    width, height = photo.size
    boxes: dict[tuple[int, int, int, int], None] = {}
    for scale in SCALES:
        side = int(min(width, height) * scale)
        for i in range(GRID):
            for j in range(GRID):
                left, top = (width - side) * i // (GRID - 1), (height - side) * j // (GRID - 1)
                boxes[(left, top, left + side, top + side)] = None
    out = []
    for box in boxes:
        crop = photo.crop(box).resize((SIDE, SIDE), Image.BICUBIC)
        out += [crop, crop.transpose(Image.FLIP_LEFT_RIGHT)]
    return out


def _write(folder: Path) -> None:
    """train/ (calibration) and val/ (held-out) crops as JPEG files in `folder`."""
    for split, names in (("train", CALIBRATION_PHOTOS), ("val", HELD_OUT_PHOTOS)):
        (folder / split).mkdir(parents=True)
        for name in names:
            for index, view in enumerate(views(_photo(name))):
                view.save(folder / split / f"{name}-{index:02d}.jpg", quality=95)


def sample_photos(cache_dir: "str | Path | None" = None) -> Path:
    """A folder with train/ (calibration) and val/ (held-out) crops of the sample photos, written on first use;
    warns that they are generic photos."""
    require_sample_photos()
    folder = cache_root(cache_dir) / FOLDER
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{FOLDER}."))
        try:
            _write(tmp)
            os.rename(tmp, folder)  # all or nothing; another process may have placed it first
        except OSError:
            if not folder.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    warnings.warn(WARNING, UserWarning, stacklevel=3)
    return folder
