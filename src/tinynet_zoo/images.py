"""Image files: the one place the package opens them. Every image becomes 8-bit RGB by its real range (16-bit
scaled by 257, float in [0, 1] by 255, palette, CMYK and grayscale converted, transparency laid on white), or is
refused with a `DataError` that says why (corrupt, truncated, too large to decode safely, values out of range)."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from .errors import DataError, DataWarning

if TYPE_CHECKING:
    from PIL.Image import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
ACCEPTED = "8- or 16-bit images of any colour mode, or float images with values in [0, 1]"


def list_images(folder: "str | Path") -> list[Path]:
    """Image files under a folder (any depth), sorted."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _too_large(size: "tuple[int, int]") -> bool:
    """Whether an image of `size` passes Pillow's limit against decompression bombs (Image.MAX_IMAGE_PIXELS)."""
    from PIL import Image as PILImage

    return PILImage.MAX_IMAGE_PIXELS is not None and size[0] * size[1] > PILImage.MAX_IMAGE_PIXELS


def _eight_bit(image: "Image", path: Path) -> "Image":
    """A single-band image of more than 8 bits (16-bit or 32-bit integers, floats) as 8-bit grayscale."""
    import numpy as np
    from PIL import Image as PILImage

    pixels = np.asarray(image, dtype=np.float64)
    low, high = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    if not np.isfinite(pixels).all():
        raise DataError(f"image {path} holds NaN or infinite values; accepted: {ACCEPTED}")
    if image.mode == "F":
        if low < 0 or high > 1:
            raise DataError(f"float image {path} has values in [{low:g}, {high:g}]; accepted: {ACCEPTED} "
                            "(convert it to 8-bit, or scale it to [0, 1])")
        scaled = pixels * 255.0
    elif low < 0 or high > 65535:
        raise DataError(f"32-bit image {path} has values in [{low:g}, {high:g}]; accepted: {ACCEPTED}")
    else:
        scaled = pixels / 257.0 if image.mode.startswith("I;16") or high > 255 else pixels
    return PILImage.fromarray(np.rint(scaled).clip(0, 255).astype(np.uint8), mode="L")


def _rgb(image: "Image", path: Path) -> "Image":
    """Any decoded image as 8-bit RGB."""
    from PIL import Image as PILImage

    if image.mode in ("F", "I") or image.mode.startswith("I;16"):
        image = _eight_bit(image, path)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return PILImage.alpha_composite(PILImage.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def open_rgb(path: "str | Path") -> "Image":
    """An image file decoded as 8-bit RGB, or a DataError naming the file and why it cannot be used."""
    from PIL import Image as PILImage

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(path) as image:
                if _too_large(image.size):
                    raise PILImage.DecompressionBombError("too many pixels")
                image.load()
                return _rgb(image, path)
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise DataError(f"image {path} is too large to open safely (more than {PILImage.MAX_IMAGE_PIXELS:,} pixels, "
                        "Pillow's limit against decompression bombs); downscale it first") from None
    except DataError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt, truncated or unknown files
        raise DataError(f"cannot read image {path}: {exc or type(exc).__name__} (corrupt, truncated or not an "
                        f"image); accepted: {ACCEPTED}") from None


def image_size(path: "str | Path") -> "tuple[int, int]":
    """(width, height) of an image file from its header, or the DataError `open_rgb` gives."""
    from PIL import Image as PILImage

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(path) as image:
                size = image.size
    except Exception:  # unreadable header or too many pixels: open_rgb says which
        size = None
    if size is None or _too_large(size):
        return open_rgb(path).size
    return size


def problem(path: "str | Path") -> "str | None":
    """Why an image file cannot be used (the DataError's message), or None when it opens as RGB."""
    try:
        open_rgb(path)
    except DataError as exc:
        return str(exc)
    return None


def open_usable(paths: Iterable[Path], where: "str | Path") -> list["Image"]:
    """The images that open as RGB, each decoded once; the others are left out with one DataWarning that counts
    them."""
    images, skipped = [], []
    for path in paths:
        try:
            images.append(open_rgb(path))
        except DataError:
            skipped.append(path)
    if skipped:
        warn_skipped(skipped, where)
    return images


def warn_skipped(skipped: "list[Path]", where: "str | Path") -> None:
    """One DataWarning counting the images left out of `where`, with the first one's reason."""
    warnings.warn(f"skipped {len(skipped)} unreadable or corrupt image(s) in {where}, e.g. {problem(skipped[0])}",
                  DataWarning, stacklevel=3)
