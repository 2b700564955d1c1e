"""Analytic MACs and parameters of an Arch: no module is built and nothing runs forward.

Convention: a MAC is one multiply-accumulate of a convolution or linear layer, the quantity
`torch.utils.flop_counter` reports divided by two. Batch-norm, activations, pooling and the
squeeze-excite gating multiply are not counted (they are < 1% of the total for these networks).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .arch import Arch


def _conv_out(size: int, kernel: int, stride: int) -> int:
    pad = ((stride - 1) + (kernel - 1)) // 2  # timm's symmetric 'same'-style padding
    return (size + 2 * pad - kernel) // stride + 1


def count_macs(arch: "Arch", resolution: int, num_classes: int = 1000, in_chans: int = 3) -> int:
    """Multiply-accumulates of one image through the network at `resolution` pixels."""
    size = _conv_out(resolution, 3, 2)
    macs = size * size * in_chans * arch.stem_chs * 9
    for b in arch.blocks:
        if b.kind == "cn":  # a plain conv-bn-act block
            size = _conv_out(size, b.kernel, b.stride)
            macs += size * size * b.in_chs * b.out_chs * b.kernel * b.kernel
            continue
        if b.kind == "ir":
            macs += size * size * b.in_chs * b.mid_chs
        size = _conv_out(size, b.kernel, b.stride)
        macs += size * size * b.mid_chs * b.kernel * b.kernel  # depthwise
        macs += 2 * b.mid_chs * b.se_chs  # squeeze-excite on a 1x1 map
        macs += size * size * b.mid_chs * b.out_chs  # pointwise projection
    last = arch.blocks[-1].out_chs
    if arch.base.head == "pooled":  # pooling first: the head conv runs on a 1x1 map
        size = 1
    return macs + size * size * last * arch.head_chs + arch.head_chs * num_classes


def count_params(arch: "Arch", num_classes: int = 1000, in_chans: int = 3) -> int:
    """Trainable parameters (conv and linear weights and biases, batch-norm affine)."""
    params = in_chans * arch.stem_chs * 9 + 2 * arch.stem_chs
    for b in arch.blocks:
        if b.kind == "cn":
            params += b.in_chs * b.out_chs * b.kernel * b.kernel + 2 * b.out_chs
            continue
        if b.kind == "ir":
            params += b.in_chs * b.mid_chs + 2 * b.mid_chs
        params += b.mid_chs * b.kernel * b.kernel + 2 * b.mid_chs
        if b.se_chs:
            params += 2 * b.mid_chs * b.se_chs + b.se_chs + b.mid_chs
        params += b.mid_chs * b.out_chs + 2 * b.out_chs
    # the head conv and its batch norm ("norm"), or the head conv with a bias and no norm ("pooled")
    params += arch.blocks[-1].out_chs * arch.head_chs + (2 if arch.base.head == "norm" else 1) * arch.head_chs
    return params + (arch.head_chs * num_classes + num_classes if num_classes else 0)
