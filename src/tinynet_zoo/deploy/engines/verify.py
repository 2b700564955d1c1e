"""What every export format's writer shares: the written file checked against the eager model, and verified
temporary files renamed onto their targets.

The tolerance follows the scale of the eager logits and the model's own float32 rounding: random inputs can drive
a model trained on narrow data (e.g. grey digits) to activations in the thousands, where float32 alone (eager
float32 against eager float64, or torch's own BatchNorm-folded module against the unfolded one) moves the
logits by tenths; a conversion error moves them by about their own size.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import TinyNetZooError
from ...files import refuse_existing
from .base import file_engine

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

VERIFY_BATCHES = (1, 3)  # batch sizes checked for a dynamic batch axis
ROUNDING_SAMPLES = 8  # random inputs on which the eager model's float32 rounding is measured (against float64)
ROUNDING_FACTOR = 16  # the export may differ from eager by this many times eager's own float32 rounding: an
# engine's own float32 kernels add their own (onnxruntime's measured 7.5x on a TinyNet-C trained from scratch)


def _inputs(size: int, resolution: int, seed: int) -> "torch.Tensor":
    import torch

    return torch.randn(size, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed))


def float32_rounding(model: "nn.Module", resolution: int) -> float:
    """Largest |logit| change that float32 rounding alone makes in the eager model on random inputs: eager in
    float32 against eager in float64 (a copy; the model is untouched)."""
    import torch

    x = _inputs(ROUNDING_SAMPLES, resolution, seed=0)
    with torch.inference_mode():
        exact = copy.deepcopy(model).double()(x.double())
        return float((model(x).double() - exact).abs().max())


def verify(model: "nn.Module", path: Path, backend: str, resolution: int, batch: "int | None",
           tolerance: float, relative: float = 0.0) -> dict[str, Any]:
    """Worst |logit difference| between the written file and the eager model over the checked batch sizes, held
    to the largest of: `tolerance` times min(1, largest |logit|) (so an untrained model's tiny logits are compared
    at their own scale), `relative` times the largest |logit|, and ROUNDING_FACTOR times the eager model's own
    float32 rounding (`float32_rounding`); non-finite logits fail."""
    import numpy as np
    import torch

    batches = VERIFY_BATCHES if batch is None else (batch,)
    engine, worst, largest = file_engine(path, backend), 0.0, 0.0
    for size in batches:
        x = _inputs(size, resolution, seed=size)
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
    scaled = max(tolerance * min(1.0, largest), relative * largest)
    rounding = float32_rounding(model, resolution) if worst > scaled else 0.0  # only where the scale is not enough
    bound = max(scaled, ROUNDING_FACTOR * rounding)
    if not worst <= bound:
        raise TinyNetZooError(f"the exported graph differs from the eager model by {worst:.3g} on the logits "
                              f"(tolerance {bound:.3g}, largest |logit| {largest:.3g}, float32 rounding alone moves "
                              f"the eager logits by up to {rounding:.3g} against float64); nothing was written")
    return {"max_abs_diff": worst, "verified_batches": batches, "tolerance": bound}


def place(moves: list[tuple[Path, Path]], overwrite: bool) -> None:
    """Rename verified temporary files onto their targets, re-checking that none appeared there meanwhile."""
    refuse_existing([target for _, target in moves], overwrite, "export")
    for tmp, target in moves:
        os.replace(tmp, target)
