"""The training loop behind `finetune`: AdamW, cosine schedule, label smoothing, EMA, autocast and
channels_last where they help, DistributedDataParallel under torchrun, JSON-lines metrics, atomic checkpoints."""
from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .errors import IncompatibleCheckpointError, InvalidArgumentError, TinyNetZooError
from .files import write_atomic

if TYPE_CHECKING:
    import torch
    import torch.nn as nn

AMP_MODES = ("auto", "off", "bf16", "fp16")
CHANNELS_LAST_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one fine-tuning run.

    batch_size is per process; under torchrun the learning rate is multiplied by the number of processes
    (the linear scaling rule), so N processes at batch b train like one at batch N*b.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    warmup_epochs: float = 1.0
    ema_decay: float | None = 0.999  # None: no EMA
    amp: str = "auto"                # auto: bf16/fp16 on CUDA; on CPUs bf16 only with AMX/AVX512-BF16 (see docs)
    channels_last: str = "auto"      # auto: on (oneDNN/cuDNN NHWC kernels are faster for these nets)
    workers: int = 0
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        def positive(name: str, value: Any, integer: bool = True) -> None:
            kind = int if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
                raise InvalidArgumentError(f"{name} must be a positive {'integer' if integer else 'number'}, "
                                           f"got {value!r}")
        positive("epochs", self.epochs)
        positive("batch_size", self.batch_size)
        positive("lr", self.lr, integer=False)
        for name in ("weight_decay", "warmup_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InvalidArgumentError(f"{name} must be a number >= 0, got {value!r}")
        if not 0 <= self.label_smoothing < 1:
            raise InvalidArgumentError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise InvalidArgumentError(f"ema_decay must be in (0, 1) or None, got {self.ema_decay!r}")
        if self.amp not in AMP_MODES:
            raise InvalidArgumentError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.channels_last not in CHANNELS_LAST_MODES:
            raise InvalidArgumentError(f"channels_last must be one of {', '.join(CHANNELS_LAST_MODES)}, "
                                       f"got {self.channels_last!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise InvalidArgumentError(f"workers must be an integer >= 0, got {self.workers!r}")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Names of the fields, for passing **overrides through."""
        return tuple(f.name for f in fields(cls))


@dataclass
class TrainResult:
    """What a run achieved: best and final validation top-1 (percent), per-epoch history, speed and files."""

    best_top1: float
    best_epoch: int
    best_source: str          # "model" or "ema": whose weights were best
    final_top1: float
    history: list[dict[str, Any]]
    images_per_s: float       # training throughput over all processes
    wall_s: float
    world_size: int = 1
    files: dict[str, str] = field(default_factory=dict)
    skipped_images: int = 0   # corrupt or unreadable images left out of the data

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return asdict(self)


# ---------------------------------------------------------------- distributed

@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> _Dist:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    started = False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        started = True
    return _Dist(dist.get_rank(), dist.get_world_size(), local_rank, started)


def _sync_buffers(model: "nn.Module", ema: Any, dist_info: _Dist) -> None:
    """Give every rank rank 0's batch-norm statistics, so evaluation and the saved weights agree exactly."""
    if dist_info.world == 1:
        return
    import torch.distributed as dist

    for module in (model, ema.module if ema is not None else None):
        for buffer in module.buffers() if module is not None else ():
            dist.broadcast(buffer, 0)


def _all_sum(values: Sequence[float], dist_info: _Dist, device: "torch.device") -> list[float]:
    if dist_info.world == 1:
        return list(values)
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


# ---------------------------------------------------------------- device choices

def _device(dist_info: _Dist) -> "torch.device":
    import torch

    return torch.device(f"cuda:{dist_info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def amp_dtype(mode: str, device: "torch.device") -> "torch.dtype | None":
    """The autocast dtype a mode means on a device; 'auto' picks what helps there (None: full precision)."""
    import torch

    if mode == "off":
        return None
    if mode == "fp16":
        return torch.float16
    if mode == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if _cpu_has_fast_bf16() else None


def _cpu_has_fast_bf16() -> bool:
    """CPUs with AMX or AVX512-BF16 run bf16 convolutions faster than fp32; others emulate it slowly."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


# ---------------------------------------------------------------- checkpoints

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

    from .hub import cpu_state

    tensors = cpu_state(model)
    if ema is not None:
        tensors.update(cpu_state(ema.module, prefix="ema."))
    meta = {"epoch": str(epoch), "best": json.dumps(best), "config": json.dumps(asdict(config)),
            "world": str(world), "fingerprint": json.dumps(fingerprint(model))}
    state = {"optimizer": optimizer.state_dict(), "epoch": epoch,
             "scaler": scaler.state_dict() if scaler is not None else None}
    # the optimizer file first: a checkpoint whose .safetensors exists always has its optimizer state
    write_atomic(folder / "last.optim.pt", lambda p: torch.save(state, p))
    write_atomic(folder / "last.safetensors", lambda p: save_file(tensors, str(p), metadata=meta))
    return folder / "last.safetensors"


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
    state = torch.load(optim_path, map_location="cpu", weights_only=True)
    if int(state.get("epoch", -1)) != int(meta["epoch"]):
        raise IncompatibleCheckpointError(
            f"{path} (epoch {int(meta['epoch']) + 1}) and {optim_path.name} (epoch {int(state.get('epoch', -2)) + 1}) "
            "are from different epochs: the run stopped while saving; start a new --out folder, or resume from a "
            "copy of a consistent pair")
    return tensors, state, meta


# ---------------------------------------------------------------- the loop

def _loader(dataset: Any, batch_size: int, train: bool, dist_info: _Dist, config: TrainConfig,
            pin: bool) -> Any:
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


def _evaluate(model: "nn.Module", loader: Any, device: "torch.device", dtype: Any, channels_last: bool,
              dist_info: _Dist) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    model.eval()
    correct = correct5 = total = loss_sum = 0.0
    with torch.inference_mode():
        for images, targets in loader:
            images, targets = images.to(device), targets.to(device)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                logits = model(images)
            logits = logits.float()
            loss_sum += F.cross_entropy(logits, targets, reduction="sum").item()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            correct += (top[:, 0] == targets).sum().item()
            correct5 += (top == targets[:, None]).any(dim=1).sum().item()
            total += targets.numel()
    correct, correct5, total, loss_sum = _all_sum([correct, correct5, total, loss_sum], dist_info, device)
    total = max(total, 1.0)
    return {"top1": 100.0 * correct / total, "top5": 100.0 * correct5 / total, "loss": loss_sum / total}


def train(model: "nn.Module", train_set: Any, val_set: Any, config: TrainConfig | None = None,
          out_dir: "str | Path | None" = None, resume: "str | Path | None" = None,
          extra_meta: dict[str, Any] | None = None) -> TrainResult:
    """Train `model` on `train_set`, validating on `val_set` every epoch; under torchrun, with DDP.

    With out_dir, rank 0 writes metrics.jsonl, curves.png, last.safetensors/last.optim.pt every epoch and the
    best weights as a shareable folder out_dir/best (see `hub.save_pretrained`).
    """
    import torch
    from timm.optim import create_optimizer_v2
    from timm.scheduler import CosineLRScheduler
    from timm.utils import ModelEmaV3
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    if len(train_set) == 0 or len(val_set) == 0:
        raise InvalidArgumentError(f"need training and validation images, got {len(train_set)} and {len(val_set)}")
    dist_info = _init_distributed()
    device = _device(dist_info)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and dist_info.main:
        _check_writable(out)
    per_rank = len(train_set) // dist_info.world
    batch_size = config.batch_size
    if batch_size > per_rank:
        warnings.warn(f"batch size {batch_size} is larger than the {per_rank} training images per process; "
                      f"using {max(per_rank, 1)}", UserWarning, stacklevel=2)
        batch_size = max(per_rank, 1)
    if batch_size < 2:
        raise InvalidArgumentError(f"too few training images ({len(train_set)}) for {dist_info.world} process(es): "
                                   "batch norm needs at least 2 images per batch")

    dtype = amp_dtype(config.amp, device)
    channels_last = config.channels_last != "off"
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = create_optimizer_v2(model, "adamw", lr=config.lr * dist_info.world,
                                    weight_decay=config.weight_decay)
    pin = device.type == "cuda"
    train_loader = _loader(train_set, batch_size, True, dist_info, config, pin)
    val_loader = _loader(val_set, batch_size, False, dist_info, config, pin)
    steps = len(train_loader)
    peak = config.lr * dist_info.world
    scheduler = CosineLRScheduler(optimizer, t_initial=config.epochs * steps, lr_min=peak * 1e-2,
                                  warmup_t=int(config.warmup_epochs * steps), warmup_lr_init=peak * 1e-2,
                                  t_in_epochs=False)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    ema = ModelEmaV3(model, decay=config.ema_decay, use_warmup=True) if config.ema_decay else None
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    start_epoch, best, history = 0, {"top1": -1.0, "epoch": -1, "source": "model"}, []
    if resume is not None:
        tensors, state, meta = load_checkpoint(resume, model)
        model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("ema.")})
        if ema is not None and any(k.startswith("ema.") for k in tensors):
            ema.module.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch = int(meta["epoch"]) + 1
        # the schedule is this run's (e.g. more --epochs extend the cosine), continued at the resumed step
        for group in optimizer.param_groups:
            group["initial_lr"] = peak
        scheduler.base_values = [peak] * len(optimizer.param_groups)
        scheduler.step_update(start_epoch * steps)
        _warn_changed(json.loads(meta.get("config", "{}")), config, int(meta.get("world", dist_info.world)),
                      dist_info.world)
        best = json.loads(meta["best"])
        history = _read_history(Path(resume).parent if Path(resume).is_file() else Path(resume), start_epoch,
                                rewrite=dist_info.main)
        if start_epoch >= config.epochs:
            warnings.warn(f"{resume} already finished epoch {start_epoch}/{config.epochs}; nothing left to train",
                          UserWarning, stacklevel=2)

    net = model
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model, device_ids=[dist_info.local_rank] if device.type == "cuda" else None)

    began = time.perf_counter()
    seen_total, train_time = 0.0, 0.0
    for epoch in range(start_epoch, config.epochs):
        if dist_info.world > 1:
            train_loader.sampler.set_epoch(epoch)
        else:
            train_loader.generator.manual_seed(config.seed + epoch)
        _seed_everything(config.seed + epoch + 1)  # augmentation (torch and python RNGs), dropout
        net.train()
        loss_sum = seen = 0.0
        tic = time.perf_counter()
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                   disable=not (config.progress and dist_info.main))
        for step, (images, targets) in enumerate(bar):
            images, targets = images.to(device, non_blocking=pin), targets.to(device, non_blocking=pin)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = criterion(net(images), targets)
            if not torch.isfinite(loss):
                raise TinyNetZooError(f"training diverged at epoch {epoch + 1}, step {step + 1} (loss {loss.item()});"
                                      f" lower the learning rate (now {config.lr})")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            scheduler.step_update(epoch * steps + step + 1)
            if ema is not None:
                ema.update(model, step=epoch * steps + step)
            loss_sum += loss.item() * targets.numel()
            seen += targets.numel()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        epoch_train_s = time.perf_counter() - tic
        loss_sum, seen = _all_sum([loss_sum, seen], dist_info, device)
        train_time += epoch_train_s
        seen_total += seen
        _sync_buffers(model, ema, dist_info)
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_sum / max(seen, 1),
               "train_images_per_s": seen / max(epoch_train_s, 1e-9)}
        row.update({f"val_{k}": v for k, v in _evaluate(model, val_loader, device, dtype, channels_last,
                                                       dist_info).items()})
        if ema is not None:
            row.update({f"ema_val_{k}": v for k, v in _evaluate(ema.module, val_loader, device, dtype,
                                                               channels_last, dist_info).items()})
        row["epoch_s"] = time.perf_counter() - tic
        history.append(row)
        candidates = [("model", row["val_top1"], model)] + ([("ema", row["ema_val_top1"], ema.module)] if ema else [])
        source, top1, winner = max(candidates, key=lambda c: c[1])
        improved = top1 > best["top1"]
        if improved:
            best = {"top1": top1, "epoch": epoch + 1, "source": source}
        if out is not None and dist_info.main:
            _append_jsonl(out / "metrics.jsonl", row)
            _plot(out / "curves.png", history)
            if improved:
                from .hub import save_pretrained
                save_pretrained(winner, out / "best", metrics={"val_top1": top1, "epoch": epoch + 1,
                                                              "weights": source}, extra=extra_meta)
            save_checkpoint(out, model, ema, optimizer, scaler, epoch, best, config, dist_info.world)
        if dist_info.world > 1:
            import torch.distributed as dist
            dist.barrier()
        if config.progress and dist_info.main:
            ema_text = f", ema {row['ema_val_top1']:.2f}%" if ema is not None else ""
            tqdm.write(f"epoch {epoch + 1}/{config.epochs}: loss {row['train_loss']:.4f}, "
                       f"val top-1 {row['val_top1']:.2f}%{ema_text}, {row['train_images_per_s']:.0f} img/s")

    files = {}
    if out is not None:
        files = {name: str(out / name) for name in ("metrics.jsonl", "curves.png", "last.safetensors", "best")
                 if (out / name).exists()}
    result = TrainResult(
        best_top1=best["top1"], best_epoch=best["epoch"], best_source=best["source"],
        final_top1=history[-1]["val_top1"] if history else best["top1"], history=history,
        images_per_s=seen_total / max(train_time, 1e-9) if train_time else 0.0,
        wall_s=time.perf_counter() - began, world_size=dist_info.world, files=files)
    if dist_info.started_here:
        import torch.distributed as dist
        dist.destroy_process_group()
    model.to(memory_format=torch.contiguous_format)
    return result


def _warn_changed(old: dict[str, Any], new: TrainConfig, old_world: int, world: int) -> None:
    """Say which settings differ from the checkpoint's run (the schedule then differs from an unbroken run)."""
    ignore = {"epochs", "progress", "workers"}
    changed = sorted(k for k, v in asdict(new).items() if k not in ignore and k in old and old[k] != v)
    if old_world != world:
        changed.append(f"processes ({old_world} -> {world})")
    if changed:
        warnings.warn(f"resuming with changed settings: {', '.join(changed)}; training continues, but not as the "
                      "original run would have", UserWarning, stacklevel=3)


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InvalidArgumentError(f"output folder {out} is not writable: {exc.strerror or exc}") from exc


def _append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _read_history(folder: Path, epochs: int, rewrite: bool = True) -> list[dict[str, Any]]:
    """Rows of metrics.jsonl up to the resumed epoch (later ones were from a run that did not checkpoint)."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("epoch", 0) <= epochs:
            rows.append(row)
    rows = {r["epoch"]: r for r in rows}  # a repeated epoch keeps its latest row
    if rewrite:
        write_atomic(path, lambda p: p.write_text("".join(json.dumps(r) + "\n" for r in rows.values())))
    return list(rows.values())


def _plot(path: Path, history: list[dict[str, Any]]) -> None:
    """Loss and top-1 curves per epoch as a PNG (skipped quietly when matplotlib is not installed)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    left.plot(epochs, [r["val_loss"] for r in history], "o-", label="val")
    left.set(xlabel="epoch", ylabel="loss", title="loss")
    right.plot(epochs, [r["val_top1"] for r in history], "o-", label="model")
    if history and "ema_val_top1" in history[0]:
        right.plot(epochs, [r["ema_val_top1"] for r in history], "o-", label="EMA")
    right.set(xlabel="epoch", ylabel="top-1 (%)", title="validation top-1")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    write_atomic(path, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
