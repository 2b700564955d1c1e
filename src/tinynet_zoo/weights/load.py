"""Putting weights into a built model: which checkpoint, key conversion, class/channel adaptation, key checks."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..core.registry import Entry
from ..errors import CheckpointNotFoundError, IncompatibleCheckpointError, UnknownTagError
from .convert import to_timm, unwrap
from .fetch import fetch, read_state_dict
from .manifest import Checkpoint, get_checkpoint, tags_for

if TYPE_CHECKING:
    import torch.nn as nn

    from ..core.arch import Arch

_HEAD_PREFIXES = ("conv_head.", "bn2.", "classifier.")


def checkpoint_for(entry: Entry, tag: "str | None" = None) -> Checkpoint:
    """The manifest checkpoint of a catalogued model: `tag` ('model.tag'), or the entry's default when None."""
    tag = entry.checkpoint if tag is None else tag
    if tag is None:
        raise CheckpointNotFoundError(f"no hosted checkpoint exists for {entry.name}; use pretrained='inherit' to "
                                      "start from the nearest larger pretrained model of its base")
    ckpt = get_checkpoint(tag)
    if ckpt.model != entry.name:
        own = tags_for(entry.name)
        raise UnknownTagError(f"checkpoint {tag!r} is for {ckpt.model}, not {entry.name}; accepted: "
                              f"{', '.join(own) or 'none (use pretrained=inherit)'}")
    return ckpt


def detect_layout(state: dict) -> str:
    """Key layout of a local checkpoint, from its names."""
    return "efficientnet_pytorch" if any(k.startswith("_conv_stem") for k in unwrap(state)) else "timm"


def checkpoint_state(ckpt: Checkpoint, arch: "Arch", cache_dir: "str | Path | None" = None) -> dict:
    """timm-layout tensors of a manifest checkpoint (fetched and verified first)."""
    return to_timm(read_state_dict(fetch(ckpt, cache_dir)), ckpt.key_layout, arch)


def file_state(path: "str | Path", arch: "Arch") -> dict:
    """timm-layout tensors of a local checkpoint file (its key layout detected from the names)."""
    state = read_state_dict(path)
    return to_timm(state, detect_layout(state), arch)


def saved_classes(state: "dict | None") -> "int | None":
    """The class count of a state's classifier (None without one)."""
    weight = (state or {}).get("classifier.weight")
    return int(weight.shape[0]) if weight is not None else None


def _show(items: list[str]) -> str:
    return ", ".join(items[:6]) + (f" (+{len(items) - 6} more)" if len(items) > 6 else "") or "none"


def load_state(model: "nn.Module", state: dict, in_chans: int = 3, new_head: bool = False) -> None:
    """Load timm-layout tensors into a model: first conv adapted to in_chans; the classifier re-initialised only
    when `new_head` (the caller asked for another class count); anything else that does not fit — a classifier
    included — is reported (missing, unexpected, wrong shapes) and nothing is loaded."""
    from timm.models import adapt_input_conv

    state = dict(state)
    if in_chans != 3 and "conv_stem.weight" in state:
        state["conv_stem.weight"] = adapt_input_conv(in_chans, state["conv_stem.weight"])
    target = model.state_dict()
    if not any(k.startswith("conv_head.") for k in target):  # a features_only backbone has no head
        state = {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)}
    elif new_head:  # another class count than the checkpoint's (or none): the classifier keeps its fresh init
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    # num_batches_tracked only counts BN updates (unused with a set momentum); frozen BNs and other frameworks
    # do not save it
    missing = [k for k in target if k not in state and not (new_head and k.startswith("classifier."))
               and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in target]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(target[k].shape)}" for k in state
             if k in target and state[k].shape != target[k].shape]
    if missing or unexpected or wrong:
        raise IncompatibleCheckpointError(
            f"checkpoint does not fit this architecture: missing keys: {_show(missing)}; unexpected keys: "
            f"{_show(unexpected)}; wrong shapes (checkpoint vs model): {_show(wrong)}")
    model.load_state_dict(state, strict=False)
