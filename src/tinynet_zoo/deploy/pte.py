"""ExecuTorch programs (.pte) for phones: torch.export, then XNNPACK lowering with `to_edge_transform_and_lower`.

Variants: fp32, and fp16 (weights and activations in half precision, fp32 input and output, so an app feeds
the same tensor either way). int8 is not a variant: uncalibrated, it changed the top-1 class of 3 of the 13
scikit-image sample photos with the real EfficientNet-Lite0 weights; `export(..., precision="int8",
calibration=DIR)` calibrates on the user's images and checks accuracy (deploy/quantize.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..checks import choice, integer
from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    import torch.nn as nn

VARIANTS = ("fp32", "fp16")
NOT_OFFERED = {
    "int8": "int8 files are calibrated and accuracy-checked: pass precision='int8' and calibration=DIR (CLI: "
            "--int8 --calibration DIR), or no calibration for sample photos",
}
# fp16 logits differ from fp32 by rounding: verified relative to the largest |logit| instead of absolutely
RELATIVE_TOLERANCE = {"fp16": 1e-2}


def check_variant(variant: Any) -> str:
    """`variant` if it is offered; the reason it is not for a known but refused one (int8)."""
    if variant in NOT_OFFERED:
        raise InvalidArgumentError(f"variant {variant!r} is not offered: {NOT_OFFERED[variant]}; accepted: "
                                   f"{', '.join(VARIANTS)}")
    return choice("pte variant", variant, VARIANTS)


def _half_precision(module: "nn.Module") -> "nn.Module":
    """The module in half precision between an fp32 input and an fp32 output (a copy; the original is untouched)."""
    import copy

    import torch

    class HalfPrecision(torch.nn.Module):
        def __init__(self, inner: "nn.Module") -> None:
            super().__init__()
            self.inner = copy.deepcopy(inner).half().eval()

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            return self.inner(x.half()).float()

    return HalfPrecision(module).eval()


def lower(module: "nn.Module", batch: int, resolution: int, variant: str = "fp32") -> tuple[bytes, int]:
    """(.pte bytes, batch-norm ops left in the graph) of an eval-mode module for a fixed (batch, 3, resolution,
    resolution) float32 input."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    integer("batch", batch, 1)
    network = _half_precision(module) if check_variant(variant) == "fp16" else module.eval()
    example = (torch.zeros(batch, 3, resolution, resolution),)
    with torch.no_grad():
        program = torch.export.export(network, example)
    batchnorm = sum("batch_norm" in str(node.target) for node in program.graph.nodes)
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    return lowered.to_executorch().buffer, batchnorm
