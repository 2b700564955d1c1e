"""Weight inheritance: initialise a smaller twist from the nearest larger pretrained model of its base.

Rule: every student tensor takes the teacher tensor of the same name. Blocks are named by (stage, index),
so each stage keeps the teacher's *first* blocks. Along every dimension the leading slice is copied: the
first output and input channels of each conv, the first squeeze-excite channels, the first BN statistics
(kernel sizes are equal, so kernels are never cut). Student tensors or blocks with no teacher counterpart
keep their fresh initialisation; where the student is larger along a dimension, only the overlap is copied.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CheckpointNotFoundError
from .twist import Twist


def teachers_for(twist: Twist) -> list[Any]:
    """Registry entries with a checkpoint on the same base, at least as large as `twist`, nearest first."""
    from .registry import ENTRIES

    found = [e for e in ENTRIES if e.checkpoint and e.twist.base == twist.base and e.twist.macs >= twist.macs]
    return sorted(found, key=lambda e: e.twist.macs)


def inherited_state(twist: Twist, cache_dir: "str | Path | None" = None) -> dict:
    """timm-layout tensors for `twist` cut from the nearest larger teacher that can be loaded."""
    from .convert import to_timm
    from .manifest import get_checkpoint
    from .weights import fetch, read_state_dict

    tried = []
    for entry in teachers_for(twist):
        ckpt = get_checkpoint(entry.checkpoint)
        try:
            path = fetch(ckpt, cache_dir)
        except CheckpointNotFoundError as exc:
            tried.append(f"{entry.name}: {exc}")
            continue
        teacher = to_timm(read_state_dict(path), ckpt.key_layout, entry.twist.arch)
        return slice_state(teacher, twist)
    raise CheckpointNotFoundError(f"no pretrained teacher on base {twist.base} at >= {twist.macs} MACs could be "
                                  f"loaded; tried: {'; '.join(tried) or 'none registered'}")


def slice_state(teacher: dict, twist: Twist) -> dict:
    """The student's tensors: each the leading slice of the same-named teacher tensor, overlap where larger."""
    from .build import build_module

    student = build_module(twist.arch).state_dict()  # fresh init fills what the teacher cannot
    out = {}
    for key, value in student.items():
        source = teacher.get(key)
        if source is None or source.dim() != value.dim():
            out[key] = value
            continue
        overlap = tuple(slice(0, min(a, b)) for a, b in zip(value.shape, source.shape))
        value = value.clone()
        value[overlap] = source[overlap]
        out[key] = value
    return out
