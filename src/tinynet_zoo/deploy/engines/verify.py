"""What every export format's writer shares: the written file checked against the eager model, and verified
temporary files renamed onto their targets."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import TinyNetZooError
from ...files import refuse_existing
from .base import file_engine

if TYPE_CHECKING:
    import torch.nn as nn

VERIFY_BATCHES = (1, 3)  # batch sizes checked for a dynamic batch axis


def verify(model: "nn.Module", path: Path, backend: str, resolution: int, batch: "int | None",
           tolerance: float, relative: float = 0.0) -> dict[str, Any]:
    """Worst |logit difference| between the written file and the eager model over the checked batch sizes, held
    to `tolerance` times the largest |logit| where that is below 1 (so an untrained model's tiny logits are
    compared at their own scale), or to `relative` times the largest |logit| where that is larger; non-finite
    logits fail."""
    import numpy as np
    import torch

    batches = VERIFY_BATCHES if batch is None else (batch,)
    engine, worst, largest = file_engine(path, backend), 0.0, 0.0
    for size in batches:
        x = torch.randn(size, 3, resolution, resolution, generator=torch.Generator().manual_seed(size))
        with torch.inference_mode():
            expected = model(x).numpy()
        got = engine.run(x.numpy())
        if not np.isfinite(expected).all():
            raise TinyNetZooError("the model's own logits are not finite (NaN or infinity) on a random input; "
                                  "check its weights and BatchNorm statistics; nothing was written")
        if got.shape != expected.shape or not np.isfinite(got).all():
            what = "are not all finite" if got.shape == expected.shape else f"have shape {got.shape}"
            raise TinyNetZooError(f"the exported graph's logits {what} (eager: {expected.shape}, finite); nothing "
                                  "was written")
        worst = max(worst, float(np.abs(got - expected).max()))
        largest = max(largest, float(np.abs(expected).max()))
    tolerance = max(tolerance * min(1.0, largest), relative * largest)
    if not worst <= tolerance:
        raise TinyNetZooError(f"the exported graph differs from the eager model by {worst:.3g} on the logits "
                              f"(tolerance {tolerance:.3g}, largest |logit| {largest:.3g}); nothing was written")
    return {"max_abs_diff": worst, "verified_batches": batches, "tolerance": tolerance}


def place(moves: list[tuple[Path, Path]], overwrite: bool) -> None:
    """Rename verified temporary files onto their targets, re-checking that none appeared there meanwhile."""
    refuse_existing([target for _, target in moves], overwrite, "export")
    for tmp, target in moves:
        os.replace(tmp, target)
