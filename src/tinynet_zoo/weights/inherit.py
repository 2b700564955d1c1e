"""Weight inheritance: initialise a smaller twist from the nearest larger pretrained model of its base.

Rule: every student tensor takes the teacher tensor of the same name. Blocks are named by (stage, index),
so each stage keeps the teacher's *first* blocks. Along every dimension the leading slice is copied: the
first output and input channels of each conv, the first squeeze-excite channels, the first BN statistics
(kernel sizes are equal, so kernels are never cut). Student tensors or blocks with no teacher counterpart
keep their fresh initialisation; where the student is larger along a dimension, only the overlap is copied.
The student's fresh tensors are given (this module never builds a network).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.registry import ENTRIES, Entry
from ..core.twist import Twist
from ..errors import CheckpointNotFoundError
from .convert import to_timm
from .fetch import fetch, read_state_dict
from .manifest import get_checkpoint


def teachers_for(twist: Twist) -> list[Entry]:
    """Registry entries with a checkpoint on the same base, at least as large as `twist`, nearest first."""
    found = [e for e in ENTRIES if e.checkpoint and e.twist.base == twist.base and e.twist.macs >= twist.macs]
    return sorted(found, key=lambda e: e.twist.macs)


def inherited_state(twist: Twist, student: dict[str, Any], cache_dir: "str | Path | None" = None) -> dict:
    """The student's tensors cut from the nearest larger teacher that can be loaded (`student`: its fresh state)."""
    tried, first = [], None
    for entry in teachers_for(twist):
        ckpt = get_checkpoint(entry.checkpoint)
        try:
            path = fetch(ckpt, cache_dir)
        except CheckpointNotFoundError as exc:
            tried.append(ckpt.tag)
            first = first or exc
            continue
        teacher = to_timm(read_state_dict(path), ckpt.key_layout, entry.twist.arch)
        return slice_state(teacher, student)
    raise CheckpointNotFoundError(
        f"pretrained='inherit' needs a pretrained teacher on {twist.base} of at least {twist.macs:,} MACs; none "
        f"could be loaded (tried {', '.join(tried) or 'none registered'}). The first: {first}. Fetch one once "
        f"(`tinynet-zoo download {tried[0] if tried else 'NAME'}`), or train from scratch with pretrained=False")


def slice_state(teacher: dict[str, Any], student: dict[str, Any]) -> dict[str, Any]:
    """The student's tensors: each the leading slice of the same-named teacher tensor, overlap where larger."""
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
