"""Training throughput of `tinynet_zoo.training` vs a plain timm + torch loop on the same model and data, same run.

Both train the same timm architecture on the same real images (scikit-learn digits exported as an ImageFolder,
timm's training transform at the model's resolution), batch 32, AdamW, one data-loading process. The plain loop
is what a user writes first: `timm.create_model`, NCHW float32, `loss.backward(); optimizer.step()`. Ours adds
channels_last (and autocast where the device has fast low precision), label smoothing, EMA and the cosine
schedule. Rounds alternate plain/ours so a busy machine slows both alike; the ratio is the median over rounds.

    python benchmarks/finetune.py [--models tinynet_e,tinynet_c] [--images 256] [--rounds 3] [--json]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import timm
import torch

import tinynet_zoo as tz
from sample_data import export_digits
from tinynet_zoo.training.data import ImageDataset, scan_folder
from tinynet_zoo.training.config import TrainConfig
from tinynet_zoo.training.distributed import amp_dtype
from tinynet_zoo.training.loop import train


def plain_images_per_s(name: str, dataset: ImageDataset, batch_size: int) -> float:
    """The obvious loop: timm model, NCHW fp32, AdamW, cross-entropy."""
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    seen, tic = 0, time.perf_counter()
    for images, targets in loader:
        loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += targets.numel()
    return seen / (time.perf_counter() - tic)


def ours_images_per_s(name: str, dataset: ImageDataset, val: ImageDataset, batch_size: int) -> float:
    """`tinynet_zoo.training` for one epoch; its own measurement of the training part (evaluation excluded)."""
    torch.manual_seed(0)
    model = tz.create(name, num_classes=10)
    result = train(model, dataset, val, TrainConfig(epochs=1, batch_size=batch_size, warmup_epochs=0,
                                                     progress=False))
    return result.history[0]["train_images_per_s"]


def main() -> None:
    """Run the comparison and print a table (or --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tinynet_e,tinynet_c")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = export_digits(Path(tmp) / "digits", size=64, limit=args.images + 40)
        splits = scan_folder(root, val_fraction=0.1)
        for name in args.models.split(","):
            model = tz.create(name, num_classes=10)
            train_set = ImageDataset(splits.train, tz.transforms(model, train=True))
            val_set = ImageDataset(splits.val[:32], tz.transforms(model))
            ours_runs, plain_runs = [], []
            for _ in range(args.rounds):
                plain_runs.append(plain_images_per_s(name, train_set, args.batch_size))
                ours_runs.append(ours_images_per_s(name, train_set, val_set, args.batch_size))
            ratios = [o / p for o, p in zip(ours_runs, plain_runs)]
            rows.append({"model": name, "resolution": model.pretrained_cfg["input_size"][-1],
                         "plain_images_per_s": statistics.median(plain_runs),
                         "ours_images_per_s": statistics.median(ours_runs), "ratio": statistics.median(ratios),
                         "ratios": ratios})
    machine = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "torch": torch.__version__, "timm": timm.__version__,
               "autocast": str(amp_dtype("auto", torch.device("cpu"))), "batch_size": args.batch_size}
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows}, indent=1))
        return
    print(f"torch {machine['torch']}, timm {machine['timm']}, {machine['threads']} threads, "
          f"autocast on this CPU: {machine['autocast']}, batch {args.batch_size}, {args.images} images")
    print(f"{'model':12} {'px':>4} {'plain img/s':>12} {'ours img/s':>11} {'ratio':>6}  per round")
    for r in rows:
        print(f"{r['model']:12} {r['resolution']:4d} {r['plain_images_per_s']:12.1f} {r['ours_images_per_s']:11.1f} "
              f"{r['ratio']:5.2f}x  {', '.join(f'{x:.2f}' for x in r['ratios'])}")


if __name__ == "__main__":
    main()
