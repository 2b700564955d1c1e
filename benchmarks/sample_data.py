"""Sample data for the benchmarks and tests: scikit-learn's handwritten digits (a real 1,797-image dataset) written
as an ImageFolder of PNGs, one folder per class."""
from __future__ import annotations

from pathlib import Path


def export_digits(root: "str | Path", size: int = 32, limit: int | None = None) -> Path:
    """Write scikit-learn's handwritten digits (a real 1,797-image dataset) as an ImageFolder of PNGs."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target)):
        if limit is not None and i >= limit:
            break
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        grey = (pixels * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        Image.fromarray(grey).resize((size, size), Image.BILINEAR).convert("RGB").save(folder / f"{i:04d}.png")
    return root
