"""Resumable checkpoints of a fine-tuning run: last.safetensors (weights, EMA, metadata) and last.optim.pt
(optimizer and grad-scaler state), refused when they belong to another architecture or to different epochs."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import IncompatibleCheckpointError
from ..files import json_text, write_atomic
from ..weights.folder import cpu_state
from .config import TrainConfig

if TYPE_CHECKING:
    import torch.nn as nn


def fingerprint(model: "nn.Module") -> dict[str, Any]:
    """What a checkpoint must match to resume into this model: architecture and every tensor's shape."""
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return {"architecture": cfg.get("architecture"), "twist": cfg.get("twist"),
            "num_classes": cfg.get("num_classes"),
            "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}}


def save_checkpoint(folder: Path, model: "nn.Module", ema: Any, optimizer: Any, scaler: Any, epoch: int,
                    best: dict[str, Any], config: TrainConfig, world: int = 1) -> Path:
    """last.safetensors (model + 'ema.' tensors, metadata) and last.optim.pt (optimizer and grad-scaler state;
    the learning-rate schedule is recomputed from the step on resume, so it is not stored)."""
    import torch
    from safetensors.torch import save_file

    tensors = cpu_state(model)
    if ema is not None:
        tensors.update(cpu_state(ema.module, prefix="ema."))
    meta = {"epoch": str(epoch), "best": json_text(best), "config": json_text(asdict(config)),
            "world": str(world), "fingerprint": json_text(fingerprint(model))}
    state = {"optimizer": optimizer.state_dict(), "epoch": epoch,
             "scaler": scaler.state_dict() if scaler is not None else None}
    # the optimizer file first: a checkpoint whose .safetensors exists always has its optimizer state
    write_atomic(folder / "last.optim.pt", lambda p: torch.save(state, p))
    write_atomic(folder / "last.safetensors", lambda p: save_file(tensors, str(p), metadata=meta))
    return folder / "last.safetensors"


def _check_fingerprint(path: Path, meta: dict[str, str], model: "nn.Module") -> None:
    if "fingerprint" not in meta:
        raise IncompatibleCheckpointError(f"{path} is not a fine-tuning checkpoint of tinynet_zoo (no fingerprint)")
    theirs, ours = json.loads(meta["fingerprint"]), fingerprint(model)
    if theirs != ours:
        what = "architecture" if theirs["shapes"] != ours["shapes"] else "model description"
        raise IncompatibleCheckpointError(
            f"cannot resume from {path}: it was written for {theirs.get('architecture')} "
            f"(twist {theirs.get('twist')}, {theirs.get('num_classes')} classes), not for this "
            f"{ours.get('architecture')} (twist {ours.get('twist')}, {ours.get('num_classes')} classes); "
            f"the {what} differs. Resume with the same model and data, or start a new --out folder")


def load_checkpoint(path: "str | Path", model: "nn.Module") -> tuple[dict, dict, dict[str, Any]]:
    """Read a `last.safetensors` written by this loop; refuse one made for another architecture."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / "last.safetensors"
    optim_path = path.with_name(path.name.replace(".safetensors", ".optim.pt"))
    if not path.is_file() or not optim_path.is_file():
        raise IncompatibleCheckpointError(f"cannot resume: {path} and {optim_path.name} beside it are both needed "
                                          "(written by `finetune --out DIR` as DIR/last.*)")
    try:
        with safe_open(str(path), "pt") as handle:
            meta = handle.metadata() or {}
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise IncompatibleCheckpointError(f"cannot read resume checkpoint {path}: {exc}") from exc
    _check_fingerprint(path, meta, model)
    state = torch.load(optim_path, map_location="cpu", weights_only=True)
    if int(state.get("epoch", -1)) != int(meta["epoch"]):
        raise IncompatibleCheckpointError(
            f"{path} (epoch {int(meta['epoch']) + 1}) and {optim_path.name} (epoch {int(state.get('epoch', -2)) + 1}) "
            "are from different epochs: the run stopped while saving; start a new --out folder, or resume from a "
            "copy of a consistent pair")
    return tensors, state, meta


def restore(tensors: dict, state: dict, model: "nn.Module", ema: Any, optimizer: Any, scaler: Any) -> None:
    """Put a checkpoint's weights, EMA weights, optimizer and grad-scaler state back."""
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("ema.")})
    if ema is not None and any(k.startswith("ema.") for k in tensors):
        ema.module.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
