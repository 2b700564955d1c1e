"""One trial, run where a backend puts it: the proxy training (the fine-tune loop) and a latency probe."""
from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any, Callable

from ..core.twist import Twist
from ..deploy.timing import time_calls
from ..factory import create
from ..preprocess import transforms
from ..training.config import TrainConfig
from ..training.data import ImageDataset, scan_folder
from ..training.loop import train
from .config import SearchConfig

TrainFn = Callable[[Twist, SearchConfig], dict]
LATENCY_WARMUP, LATENCY_RUNS = 3, 10
PROXY_WARMUP_EPOCHS = 0.3


def limit_threads(threads: int) -> None:
    """Keep one trial to `threads` CPU threads (so parallel trials do not oversubscribe the cores)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        import torch
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def measure_latency(twist: Twist, num_classes: int = 1000, runs: int = LATENCY_RUNS) -> float:
    """Median milliseconds of one batch-1 forward pass on the CPU, with the threads this process has."""
    import torch

    model = create(twist, num_classes=num_classes).eval()
    image = torch.randn(1, 3, twist.resolution, twist.resolution)
    with torch.inference_mode():
        return time_calls(lambda: model(image), LATENCY_WARMUP, runs).median_ms


def proxy_train(twist: Twist, config: SearchConfig) -> dict[str, Any]:
    """Train a twist with the fine-tune loop on the search's data for its proxy schedule; the metrics.

    The proxy schedule: `config.epochs` of AdamW at `config.lr` (warm-up 0.3 epoch, cosine decay, no EMA),
    from scratch unless `config.pretrained` is 'inherit'; training images get timm's augmentation only when
    `config.augment` (the evaluation transform otherwise, which suits small images such as digits).
    """
    import torch

    splits = scan_folder(config.data, val_fraction=config.val_fraction, seed=config.seed)
    torch.manual_seed(config.seed)  # the same network starts from the same weights, whichever worker builds it
    net = create(twist, pretrained=config.pretrained, num_classes=len(splits.classes))
    train_set = ImageDataset(splits.train, transforms(net, train=config.augment))
    val_set = ImageDataset(splits.val, transforms(net, train=False))
    schedule = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                           warmup_epochs=PROXY_WARMUP_EPOCHS, ema_decay=None, progress=False, workers=0)
    result = train(net, train_set, val_set, schedule)
    return {"top1": result.best_top1, "final_top1": result.final_top1, "images_per_s": result.images_per_s,
            "train_s": result.wall_s, "latency_ms": measure_latency(twist, len(splits.classes)),
            "threads": torch.get_num_threads()}


def execute_trial(spec: dict[str, Any], config: SearchConfig, train_fn: TrainFn | None, threads: int) -> dict[str, Any]:
    """Run one trial (spec: id and twist as a dict) and return its metrics; exceptions go to the backend."""
    if train_fn is None:
        import torch  # noqa: F401  (loaded first, so that the thread limit applies to it)
    limit_threads(threads)
    twist = Twist.from_dict(spec["twist"])
    tic = time.perf_counter()
    metrics = dict((train_fn or proxy_train)(twist, config))
    if "top1" not in metrics:
        raise ValueError(f"the trial function returned {sorted(metrics)}; it must return at least 'top1'")
    metrics.setdefault("wall_s", time.perf_counter() - tic)
    metrics["host"] = f"{socket.gethostname()}:{os.getpid()}"
    return metrics
