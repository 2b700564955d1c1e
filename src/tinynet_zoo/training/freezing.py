"""Partial freezing for fine-tuning: everything from the stem up to a named part stops learning (timm's freeze)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidArgumentError, unknown

if TYPE_CHECKING:
    import torch.nn as nn


def parts(model: "nn.Module") -> list[str]:
    """The model's freezable parts in forward order: stem, each block ('blocks.S.B'), head, classifier."""
    names = []
    for name, child in model.named_children():
        if name == "blocks":
            names.extend(f"blocks.{s}.{b}" for s, stage in child.named_children() for b, _ in stage.named_children())
        elif any(True for _ in child.parameters()) or any(True for _ in child.buffers()):  # frozen BN: buffers
            names.append(name)
    return names


def _upto(model: "nn.Module", until: str, verb: str) -> list[str]:
    if not callable(getattr(model, "named_children", None)):
        raise InvalidArgumentError(f"{verb} takes a built model (e.g. tz.create(...)), got {model!r}")
    if not isinstance(until, str):
        raise InvalidArgumentError(f"until must be a part name such as 'blocks.4', got {until!r}")
    names = parts(model)
    hits = [i for i, n in enumerate(names) if n == until or n.startswith(until + ".")]
    if not hits:
        stages = sorted({n.rsplit(".", 1)[0] for n in names if n.startswith("blocks.")})
        raise unknown("part to freeze until", until, names + stages + (["blocks"] if stages else []))
    return names[:hits[-1] + 1]


def freeze(model: "nn.Module", until: str = "blocks.4") -> list[str]:
    """Freeze every part from the stem through `until` (inclusive; e.g. 'bn1', 'blocks.4', 'blocks.4.1',
    'conv_head'); batch norms there stop updating their statistics. Returns the frozen part names."""
    from timm.utils.model import freeze as timm_freeze

    frozen = _upto(model, until, "freeze")
    timm_freeze(model, frozen)
    return frozen


def unfreeze(model: "nn.Module", until: str = "blocks.4") -> list[str]:
    """Undo `freeze(model, until)`: parameters learn again and frozen batch norms learn again."""
    from timm.utils.model import unfreeze as timm_unfreeze

    thawed = _upto(model, until, "unfreeze")
    timm_unfreeze(model, thawed)
    return thawed
