"""Resumable checkpoints, committed as one unit: each epoch's weights, EMA weights, optimizer and grad-scaler state
and step are written into a hidden staging folder, then renamed to `checkpoints/epoch-NNNN` in one step. A
process killed at any instant leaves every earlier generation complete, so the last finished epoch resumes."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import IncompatibleCheckpointError
from ..files import json_text
from ..weights.folder import cpu_state
from .config import TrainConfig
from .run_folder import CHECKPOINTS, GENERATION, OPTIMIZER, RUN_NAME, WEIGHTS

if TYPE_CHECKING:
    import torch.nn as nn

KEEP = 2  # generations kept: the newest, and the one before it


def fingerprint(model: "nn.Module") -> dict[str, Any]:
    """What a checkpoint must match to resume into this model: architecture and every tensor's shape."""
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    return {"architecture": cfg.get("architecture"), "twist": cfg.get("twist"),
            "num_classes": cfg.get("num_classes"),
            "shapes": {k: list(v.shape) for k, v in model.state_dict().items()}}


def generations(run_dir: "str | Path") -> list[Path]:
    """The complete checkpoint generations of a run folder, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := GENERATION.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found) if (p / WEIGHTS).is_file() and (p / OPTIMIZER).is_file()]


def _write_synced(path: Path, write: Any) -> None:
    write(path)
    with open(path, "rb") as handle:  # on disk before the rename that publishes it
        os.fsync(handle.fileno())


def save_checkpoint(run_dir: Path, model: "nn.Module", ema: Any, optimizer: Any, scaler: Any, epoch: int,
                    best: dict[str, Any], config: TrainConfig, world: int = 1) -> Path:
    """Commit epoch `epoch` (0-based) as checkpoints/epoch-NNNN (one rename); older generations beyond KEEP go."""
    import torch
    from safetensors.torch import save_file

    tensors = cpu_state(model)
    if ema is not None:
        tensors.update(cpu_state(ema.module, prefix="ema."))
    meta = {"epoch": str(epoch), "best": json_text(best), "config": json_text(asdict(config)),
            "world": str(world), "fingerprint": json_text(fingerprint(model))}
    state = {"optimizer": optimizer.state_dict(), "epoch": epoch,
             "scaler": scaler.state_dict() if scaler is not None else None}
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(exist_ok=True)
    final = root / f"epoch-{epoch + 1:04d}"
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        _write_synced(staging / WEIGHTS, lambda p: save_file(tensors, str(p), metadata=meta))
        _write_synced(staging / OPTIMIZER, lambda p: torch.save(state, p))
        if final.exists():  # the same epoch trained again after resuming from an earlier generation
            os.replace(final, root / f".replaced-{final.name}-{os.getpid()}")
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    clean(run_dir)
    return final


def clean(run_dir: "str | Path") -> None:
    """Remove generations older than the newest KEEP, and leftovers of interrupted saves (the run holds the lock)."""
    root = Path(run_dir) / CHECKPOINTS
    for old in generations(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(".*") if root.is_dir() else ():
        shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def resume_point(path: "str | Path") -> Path:
    """The generation folder a --resume path means: a run folder (its newest generation) or a generation."""
    path = Path(path)
    if not path.exists():
        raise IncompatibleCheckpointError(f"cannot resume from {path}: it does not exist")
    if (path / WEIGHTS).is_file():
        return path
    found = generations(path)
    if not found and (path / RUN_NAME).is_file():
        raise IncompatibleCheckpointError(f"cannot resume from {path}: its run stopped before finishing an epoch, so "
                                          "there is nothing to resume; start it again with --overwrite")
    if not found:
        raise IncompatibleCheckpointError(f"cannot resume from {path}: it holds no complete checkpoint (expected "
                                          f"{CHECKPOINTS}/epoch-NNNN/ written by `finetune --out {path}`)")
    return found[-1]


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
    """(tensors, optimizer state, metadata) of the generation `path` means; refused for another architecture."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    generation = resume_point(path)
    try:
        with safe_open(str(generation / WEIGHTS), "pt") as handle:
            meta = handle.metadata() or {}
        tensors = load_file(str(generation / WEIGHTS))
        state = torch.load(generation / OPTIMIZER, map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors, zip and unpickling raise many types for a damaged file
        raise IncompatibleCheckpointError(f"cannot read checkpoint {generation}: {type(exc).__name__}: {exc}; "
                                          "resume from an earlier generation in the same folder") from None
    _check_fingerprint(generation, meta, model)
    if int(state.get("epoch", -1)) != int(meta["epoch"]):
        raise IncompatibleCheckpointError(f"{generation}: its weights and optimizer state are from different "
                                          "epochs; resume from an earlier generation")
    return tensors, state, meta


def restore(tensors: dict, state: dict, model: "nn.Module", ema: Any, optimizer: Any, scaler: Any) -> None:
    """Put a checkpoint's weights, EMA weights, optimizer and grad-scaler state back (refused, before any of it
    is loaded, when the optimizer's parameter groups differ from the checkpoint's)."""
    saved = [len(group["params"]) for group in state["optimizer"]["param_groups"]]
    ours = [len(group["params"]) for group in optimizer.param_groups]
    if saved != ours:
        raise IncompatibleCheckpointError(
            f"cannot resume: the checkpoint's optimizer has {len(saved)} parameter groups of {saved} tensors, this "
            f"run's has {len(ours)} of {ours}; the run was started with other settings that shape the groups "
            "(freeze_until, layer_decay, or the model given another way: a name, folder or Twist vs a built "
            "module). Resume with the settings the run started with, or start a new --out folder")
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("ema.")})
    if ema is not None and any(k.startswith("ema.") for k in tensors):
        ema.module.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
