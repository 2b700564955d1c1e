"""The training loop behind `finetune`: AdamW, cosine schedule, label smoothing, EMA, autocast and
channels_last where they help, DistributedDataParallel under torchrun, per-epoch metrics and checkpoints.

`train` is orchestration over named steps: set the run up, resume it, then per epoch train, evaluate and
record (metrics, best weights, a resumable checkpoint).
"""
from __future__ import annotations

import json
import random
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, TinyNetZooError
from ..weights.folder import save_pretrained
from .checkpoint import CHECKPOINTS, generations, load_checkpoint, restore, resume_point, save_checkpoint
from .config import TrainConfig, TrainResult
from .distill import IndexedDataset
from .distributed import (Dist, all_sum, amp_dtype, barrier, device_for, finish_distributed, init_distributed,
                          sync_buffers)
from . import qat
from .optimizer import cross_entropy, param_groups, resolve_config
from .history import CURVES_NAME, METRICS_NAME, append_row, plot_curves, read_history, write_history
from .run_folder import RunFolder

if TYPE_CHECKING:
    import torch
    import torch.nn as nn


@dataclass
class Run:
    """Everything one training run holds while it goes: model, optimiser state, loaders and progress."""

    model: Any
    config: TrainConfig
    dist: Dist
    device: Any
    dtype: Any
    channels_last: bool
    out: "Path | None"
    train_loader: Any
    val_loader: Any
    optimizer: Any
    scheduler: Any
    scaler: Any
    ema: Any
    criterion: Any
    peak_lr: float
    net: Any = None  # the model, wrapped in DistributedDataParallel under torchrun
    start_epoch: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"top1": -1.0, "epoch": -1, "source": "model"})
    history: list[dict[str, Any]] = field(default_factory=list)
    seen: float = 0.0
    train_s: float = 0.0

    @property
    def steps(self) -> int:
        """Optimiser steps per epoch."""
        return len(self.train_loader)


def _batch_size(config: TrainConfig, images: int, dist_info: Dist) -> int:
    """The per-process batch size: the configured one, clamped (with a warning) to the images per process."""
    per_rank = images // dist_info.world
    batch_size = config.batch_size
    if batch_size > per_rank:
        warnings.warn(f"batch size {batch_size} is larger than the {per_rank} training images per process; "
                      f"using {max(per_rank, 1)}", UserWarning, stacklevel=4)
        batch_size = max(per_rank, 1)
    if batch_size < 2:
        raise InvalidArgumentError(f"too few training images ({images}) for {dist_info.world} process(es): "
                                   "batch norm needs at least 2 images per batch")
    return batch_size


def _loader(dataset: Any, batch_size: int, train: bool, dist_info: Dist, config: TrainConfig, pin: bool) -> Any:
    import torch
    from torch.utils.data import DataLoader, DistributedSampler, Subset

    if train:
        sampler = DistributedSampler(dataset, dist_info.world, dist_info.rank, shuffle=True, seed=config.seed,
                                     drop_last=True) if dist_info.world > 1 else None
        generator = torch.Generator().manual_seed(config.seed)  # re-seeded every epoch: resume == no break
        per_rank = len(dataset) // dist_info.world
        return DataLoader(dataset, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                          drop_last=per_rank > batch_size, num_workers=config.workers, pin_memory=pin,
                          generator=generator, persistent_workers=config.workers > 0)
    # validation: each rank takes every world-th image, no padding, so reduced counts are exact
    shard = Subset(dataset, range(dist_info.rank, len(dataset), dist_info.world))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=config.workers, pin_memory=pin)


def _setup(model: "nn.Module", train_set: Any, val_set: Any, config: TrainConfig, out: "Path | None",
           dist_info: Dist, criterion: Any = None) -> Run:
    """Devices, loaders, optimiser (AdamW, no decay on norms/biases), per-step cosine schedule, EMA, loss."""
    import torch
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler
    from timm.utils import ModelEmaV3

    if len(train_set) == 0 or len(val_set) == 0:
        raise InvalidArgumentError(f"need training and validation images, got {len(train_set)} and {len(val_set)}")
    device = device_for(dist_info)
    batch_size = _batch_size(config, len(train_set), dist_info)
    dtype, channels_last, pin = amp_dtype(config.amp, device), config.channels_last != "off", device.type == "cuda"
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    peak = config.lr * dist_info.world
    config = config.for_weights(False, len(train_set))  # what is still 'auto' here trains like from scratch
    optimizer = create_optimizer_v2(param_groups(model, config), "adamw", lr=peak, weight_decay=config.weight_decay)
    train_loader = _loader(train_set, batch_size, True, dist_info, config, pin)
    config = resolve_config(config, len(train_set) // dist_info.world, len(train_loader))
    scheduler = CosineLRScheduler(optimizer, t_initial=config.epochs * len(train_loader), lr_min=peak * 1e-2,
                                  warmup_t=config.warmup_steps, warmup_lr_init=peak * 1e-2, t_in_epochs=False)
    return Run(model=model, config=config, dist=dist_info, device=device, dtype=dtype, channels_last=channels_last,
               out=out, train_loader=train_loader, val_loader=_loader(val_set, batch_size, False, dist_info, config,
                                                                       pin),
               optimizer=optimizer, scheduler=scheduler,
               scaler=torch.amp.GradScaler(device.type) if dtype == torch.float16 else None,
               ema=ModelEmaV3(model, decay=config.ema_decay, use_warmup=True) if config.ema_decay else None,
               criterion=criterion.to(device) if criterion is not None else cross_entropy(config.label_smoothing),
               peak_lr=peak)


def _resume(run: Run, resume: "str | Path") -> None:
    """Continue from a checkpoint: weights, EMA, optimiser, the schedule at the resumed step, best and history."""
    tensors, state, meta = load_checkpoint(resume, run.model)
    restore(tensors, state, run.model, run.ema, run.optimizer, run.scaler)
    run.start_epoch = int(meta["epoch"]) + 1
    # the schedule is this run's (e.g. more --epochs extend the cosine), continued at the resumed step
    for group in run.optimizer.param_groups:
        group["initial_lr"] = run.peak_lr
    run.scheduler.base_values = [run.peak_lr] * len(run.optimizer.param_groups)
    run.scheduler.step_update(run.start_epoch * run.steps)
    _warn_changed(json.loads(meta.get("config", "{}")), run.config, int(meta.get("world", run.dist.world)),
                  run.dist.world)
    run.best = json.loads(meta["best"])
    run.history = read_history(run_dir_of(resume), run.start_epoch)
    if run.out is not None and run.dist.main:
        write_history(run.out, run.history)
    if run.start_epoch >= run.config.epochs:
        warnings.warn(f"{resume} already finished epoch {run.start_epoch}/{run.config.epochs}; nothing left to "
                      "train", UserWarning, stacklevel=3)


def _warn_changed(old: dict[str, Any], new: TrainConfig, old_world: int, world: int) -> None:
    """Say which settings differ from the checkpoint's run (the schedule then differs from an unbroken run)."""
    ignore = {"epochs", "progress", "workers"}
    changed = sorted(k for k, v in asdict(new).items() if k not in ignore and k in old and old[k] != v)
    if old_world != world:
        changed.append(f"processes ({old_world} -> {world})")
    if changed:
        warnings.warn(f"resuming with changed settings: {', '.join(changed)}; training continues, but not as the "
                      "original run would have", UserWarning, stacklevel=4)


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _inputs(images: Any, targets: Any, device: Any, channels_last: bool) -> tuple[Any, Any]:
    pin = device.type == "cuda"
    images, targets = images.to(device, non_blocking=pin), targets.to(device, non_blocking=pin)
    if channels_last:
        import torch
        images = images.contiguous(memory_format=torch.channels_last)
    return images, targets


def _train_epoch(run: Run, epoch: int) -> dict[str, float]:
    """One pass over the training data; the epoch's mean loss and throughput (reduced over ranks)."""
    import torch
    from tqdm.auto import tqdm

    if run.dist.world > 1:
        run.train_loader.sampler.set_epoch(epoch)
    else:
        run.train_loader.generator.manual_seed(run.config.seed + epoch)
    _seed_everything(run.config.seed + epoch + 1)  # augmentation (torch and python RNGs), dropout
    run.net.train()
    if run.config.batchnorm == "frozen":  # statistics stay the pretrained ones; scales and shifts still learn
        for module in run.model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
    loss_sum = seen = 0.0
    tic = time.perf_counter()
    bar = tqdm(run.train_loader, desc=f"epoch {epoch + 1}/{run.config.epochs}", leave=False,
               disable=not (run.config.progress and run.dist.main))
    for step, batch in enumerate(bar):
        images, targets = _inputs(batch[0], batch[1], run.device, run.channels_last)
        with torch.autocast(run.device.type, dtype=run.dtype or torch.float32, enabled=run.dtype is not None):
            logits = run.net(images)
        loss = run.criterion(logits, targets, images, batch[2] if len(batch) > 2 else None)
        if not torch.isfinite(loss):
            raise TinyNetZooError(f"training diverged at epoch {epoch + 1}, step {step + 1} (loss {loss.item()}); "
                                  f"lower the learning rate (now {run.config.lr})")
        _step(run, loss, epoch * run.steps + step)
        loss_sum += loss.item() * targets.numel()
        seen += targets.numel()
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
    seconds = time.perf_counter() - tic
    loss_sum, seen = all_sum([loss_sum, seen], run.dist, run.device)
    run.train_s += seconds
    run.seen += seen
    return {"epoch": epoch + 1, "lr": max(g["lr"] for g in run.optimizer.param_groups), "train_loss": loss_sum / max(seen, 1),
            "train_images_per_s": seen / max(seconds, 1e-9)}


def _step(run: Run, loss: Any, global_step: int) -> None:
    """Backward, optimiser step (through the grad scaler for fp16), schedule and EMA update."""
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        run.optimizer.step()
    run.scheduler.step_update(global_step + 1)
    if run.ema is not None:
        run.ema.update(run.model, step=global_step)


def evaluate(model: "nn.Module", loader: Any, device: Any = None, dtype: Any = None, channels_last: bool = False,
             dist_info: "Dist | None" = None) -> dict[str, float]:
    """Top-1, top-5 (percent) and mean loss of `model` over a loader of (images, targets), reduced over ranks."""
    import torch
    import torch.nn.functional as F

    device = device or torch.device("cpu")
    dist_info = dist_info or Dist()
    model.eval()
    correct = correct5 = total = loss_sum = 0.0
    with torch.inference_mode():
        for images, targets in loader:
            images, targets = _inputs(images, targets, device, channels_last)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = model(images).float()
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            correct += (top[:, 0] == targets).sum().item()
            correct5 += (top == targets[:, None]).any(dim=1).sum().item()
            total += targets.numel()
    correct, correct5, total, loss_sum = all_sum([correct, correct5, total, loss_sum], dist_info, device)
    total = max(total, 1.0)
    return {"top1": 100.0 * correct / total, "top5": 100.0 * correct5 / total, "loss": loss_sum / total}


def _record(run: Run, row: dict[str, Any], extra_meta: "dict[str, Any] | None") -> None:
    """Keep the better of weights and EMA as `best`; rank 0 writes metrics, curves, best/ and the checkpoint."""
    epoch = row["epoch"] - 1
    candidates = [("model", row["val_top1"], run.model)]
    if run.ema is not None:
        candidates.append(("ema", row["ema_val_top1"], run.ema.module))
    source, top1, winner = max(candidates, key=lambda c: c[1])
    improved = top1 > run.best["top1"]
    if improved:
        run.best = {"top1": top1, "epoch": epoch + 1, "source": source}
    if run.out is not None and run.dist.main:
        append_row(run.out, row)
        plot_curves(run.out, run.history)
        if improved:
            save_pretrained(winner, run.out / "best", metrics={"val_top1": top1, "epoch": epoch + 1,
                                                               "weights": source}, extra=extra_meta)
        save_checkpoint(run.out, run.model, run.ema, run.optimizer, run.scaler, epoch, run.best, run.config,
                        run.dist.world)
    barrier(run.dist)


def _epoch(run: Run, epoch: int, extra_meta: "dict[str, Any] | None") -> None:
    """Train one epoch, evaluate the weights (and EMA), record everything."""
    tic = time.perf_counter()
    row = _train_epoch(run, epoch)
    sync_buffers(run.model, run.ema, run.dist)
    evaluated = run.net if run.config.qat else run.model  # a qat run is judged through its fake quantization
    for prefix, model in (("val", evaluated), ("ema_val", run.ema.module if run.ema is not None else None)):
        if model is not None:
            found = evaluate(model, run.val_loader, run.device, run.dtype, run.channels_last, run.dist)
            row.update({f"{prefix}_{k}": v for k, v in found.items()})
    row["epoch_s"] = time.perf_counter() - tic
    run.history.append(row)
    _record(run, row, extra_meta)
    if run.config.progress and run.dist.main:
        from tqdm.auto import tqdm
        ema_text = f", ema {row['ema_val_top1']:.2f}%" if run.ema is not None else ""
        tqdm.write(f"epoch {epoch + 1}/{run.config.epochs}: loss {row['train_loss']:.4f}, "
                   f"val top-1 {row['val_top1']:.2f}%{ema_text}, {row['train_images_per_s']:.0f} img/s")


def run_dir_of(resume: "str | Path") -> Path:
    """The run folder a --resume path names: the folder itself, or the one holding a checkpoint generation."""
    path = Path(resume)
    return path.parent.parent if path.parent.name == CHECKPOINTS else path


def _claim(model: "nn.Module", out: "Path | None", resume: Any, overwrite: bool, dist_info: Dist) -> Any:
    """Rank 0 locks and claims the run folder (resuming in place, or a new run); None without one."""
    if resume is not None:
        resume_point(resume)  # a missing or empty resume folder fails before anything is written
    if out is None or not dist_info.main:
        return None
    cfg = getattr(model, "pretrained_cfg", None) or {}
    identity = {k: cfg.get(k) for k in ("architecture", "twist", "num_classes", "label_names")}
    in_place = resume is not None and run_dir_of(resume).resolve() == out.expanduser().resolve()
    return RunFolder(out, resume=in_place, overwrite=overwrite, identity=identity)


def _result(run: Run, began: float) -> TrainResult:
    files = {}
    if run.out is not None:
        found = generations(run.out)
        files = {name: str(run.out / name) for name in (METRICS_NAME, CURVES_NAME, "best", "run.json")
                 if (run.out / name).exists()}
        if found:
            files["checkpoint"] = str(found[-1])
    return TrainResult(
        best_top1=run.best["top1"], best_epoch=run.best["epoch"], best_source=run.best["source"],
        final_top1=run.history[-1]["val_top1"] if run.history else run.best["top1"], history=run.history,
        images_per_s=run.seen / max(run.train_s, 1e-9) if run.train_s else 0.0,
        wall_s=time.perf_counter() - began, world_size=run.dist.world, files=files)


def train(model: "nn.Module", train_set: Any, val_set: Any, config: TrainConfig | None = None,
          out_dir: "str | Path | None" = None, resume: "str | Path | None" = None,
          extra_meta: dict[str, Any] | None = None, overwrite: bool = False, loss: Any = None) -> TrainResult:
    """Train `model` on `train_set`, validating on `val_set` every epoch; under torchrun, with DDP.

    With out_dir (default: the folder being resumed), rank 0 locks it and writes run.json, metrics.jsonl,
    curves.png, a checkpoint generation every epoch (checkpoints/epoch-NNNN, committed in one rename) and the
    best weights as a shareable folder out_dir/best. A folder holding another run is refused unless resuming
    it or overwrite=True. `loss` (e.g. a `Distillation`) replaces the cross-entropy: it is called as
    loss(logits, targets, images, indices), and the training items then carry their indices.
    """
    import torch

    out = Path(out_dir) if out_dir is not None else (run_dir_of(resume) if resume is not None else None)
    dist_info = init_distributed()
    folder = _claim(model, out, resume, overwrite, dist_info)
    try:
        if loss is not None:
            train_set = IndexedDataset(train_set)
        run = _setup(model, train_set, val_set, config or TrainConfig(), out, dist_info, loss)
        if resume is not None:
            _resume(run, resume)
        run.net = model
        if run.config.qat:  # trains the model's own tensors through XNNPACK's int8 fake quantization
            run.net = qat.prepare(model, train_set[0][0][None].to(run.device), run.config.batchnorm == "frozen")
        elif run.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel
            run.net = DistributedDataParallel(model, device_ids=[run.dist.local_rank] if run.device.type == "cuda"
                                              else None)
        began = time.perf_counter()
        for epoch in range(run.start_epoch, run.config.epochs):
            _epoch(run, epoch, extra_meta)
        result = _result(run, began)
    finally:
        if folder is not None:
            folder.release()
    finish_distributed(dist_info)
    model.to(memory_format=torch.contiguous_format)
    return result
