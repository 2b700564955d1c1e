"""Channel groups of a twisted network: which tensor dimensions share one set of channels.

Cutting a wider network down to a narrower one must keep the *same* channels in every tensor that touches them:
- `stem`: the stem conv's outputs (and the first block's inputs);
- `s{k}`: stage k's residual stream: every block of the stage writes into it (residual adds join them), the
  next stage (or the head) reads it;
- `m{s}.{i}`: the expansion channels of block (s, i): its 1x1 expansion, depthwise conv and projection input;
- `e{s}.{i}`: its squeeze-excite channels;
- `head`: the head conv's outputs and the classifier's inputs; `classes`: the classifier's outputs.

Keys follow timm's EfficientNet and MobileNetV3 (the classes bases are built by): a conv-bn-act block ("cn") is
`conv` + `bn1`; the head is `conv_head` + `bn2` for a "norm" head, `conv_head` with a bias for a "pooled" one.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..core.arch import Arch

Dims = tuple["str | None", ...]  # the group of each tensor dimension (None: not a channel dimension)
_BN = ("weight", "bias", "running_mean", "running_var")


def positions(arch: "Arch") -> list[tuple[int, int]]:
    """(stage, index within the stage) of every block, in order."""
    out, counts = [], {}
    for block in arch.blocks:
        index = counts.get(block.stage, 0)
        counts[block.stage] = index + 1
        out.append((block.stage, index))
    return out


def _bn(prefix: str, group: str) -> dict[str, Dims]:
    return {f"{prefix}.{name}": (group,) for name in _BN}


def _se(prefix: str, channels: str, reduced: str) -> dict[str, Dims]:
    return {f"{prefix}.se.conv_reduce.weight": (reduced, channels, None, None), f"{prefix}.se.conv_reduce.bias":
            (reduced,), f"{prefix}.se.conv_expand.weight": (channels, reduced, None, None),
            f"{prefix}.se.conv_expand.bias": (channels,)}


def key_groups(arch: "Arch") -> dict[str, Dims]:
    """The channel group of each dimension of every tensor of timm's module for `arch` (num_batches_tracked
    and other scalars are left out)."""
    out: dict[str, Dims] = {"conv_stem.weight": ("stem", None, None, None), **_bn("bn1", "stem")}
    for block, (stage, index) in zip(arch.blocks, positions(arch)):
        prefix = f"blocks.{stage}.{index}"
        source = "stem" if stage == 0 and index == 0 else f"s{stage - 1 if index == 0 else stage}"
        target, mid, se = f"s{stage}", f"m{stage}.{index}", f"e{stage}.{index}"
        if block.kind == "cn":
            out.update({f"{prefix}.conv.weight": (target, source, None, None), **_bn(f"{prefix}.bn1", target)})
            continue
        if block.kind == "ds":
            out.update({f"{prefix}.conv_dw.weight": (source, None, None, None), **_bn(f"{prefix}.bn1", source),
                        f"{prefix}.conv_pw.weight": (target, source, None, None), **_bn(f"{prefix}.bn2", target)})
            if block.se_chs:
                out.update(_se(prefix, source, se))
            continue
        out.update({f"{prefix}.conv_pw.weight": (mid, source, None, None), **_bn(f"{prefix}.bn1", mid),
                    f"{prefix}.conv_dw.weight": (mid, None, None, None), **_bn(f"{prefix}.bn2", mid),
                    f"{prefix}.conv_pwl.weight": (target, mid, None, None), **_bn(f"{prefix}.bn3", target)})
        if block.se_chs:
            out.update(_se(prefix, mid, se))
    last = f"s{arch.blocks[-1].stage}"
    head = _bn(arch.base.head_norm, "head") if arch.base.head_norm else {"conv_head.bias": ("head",)}
    out.update({"conv_head.weight": ("head", last, None, None), **head,
                "classifier.weight": ("classes", "head"), "classifier.bias": ("classes",)})
    return out


def group_sizes(arch: "Arch", num_classes: int = 1000) -> dict[str, int]:
    """The number of channels in every group of `arch`."""
    sizes = {"stem": arch.stem_chs, "head": arch.head_chs, "classes": num_classes}
    for block, (stage, index) in zip(arch.blocks, positions(arch)):
        sizes[f"s{stage}"] = block.out_chs
        if block.kind == "ir":
            sizes[f"m{stage}.{index}"] = block.mid_chs
        if block.se_chs:
            sizes[f"e{stage}.{index}"] = block.se_chs
    return sizes


def last_norm(arch: "Arch") -> dict[str, str]:
    """For every block key prefix, the batch norm that writes into the residual stream ('bn3'; 'bn2' for ds, 'bn1'
    for cn)."""
    return {f"blocks.{s}.{i}": {"ds": "bn2", "cn": "bn1"}.get(block.kind, "bn3")
            for block, (s, i) in zip(arch.blocks, positions(arch))}
