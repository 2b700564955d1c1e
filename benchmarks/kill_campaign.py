"""Kill campaign: SIGKILL `tinynet-zoo finetune` at random instants, resume each run, and count what was lost.

For each kill: the run is started, killed after a random delay (uniform over the length of an uninterrupted run,
so kills land inside epochs and inside saves alike), then resumed with --resume until it finishes (a run killed
before its first epoch finished has nothing to resume; it is started again with --overwrite). A run counts as
intact when it finishes, metrics.jsonl has one row per epoch and best/ loads; identical when its final weights
equal an uninterrupted run's bit for bit.

    python benchmarks/kill_campaign.py --kills 30
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

import tinynet_zoo as tz
from tinynet_zoo.training.checkpoint import generations
from sample_data import export_digits

EPOCHS = 3


def command(data: Path, model: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "tinynet_zoo.cli", "finetune", str(model), "--data", str(data), "--out", str(out),
            "--epochs", str(EPOCHS), "--batch-size", "16", "--ema-decay", "0.9", "--seed", "1", "--no-progress"]


def final_weights(out: Path) -> dict:
    return load_file(str(generations(out)[-1] / "weights.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    root = Path(tempfile.mkdtemp(prefix="kill_campaign_"))
    data = export_digits(root / "digits", size=32, limit=80)
    model = root / "model"
    torch.manual_seed(0)
    tz.save_pretrained(tz.create(tz.Twist(0.3, 0.4, 0.35, 32), num_classes=10), model)
    tic = time.perf_counter()
    subprocess.run(command(data, model, root / "reference"), env=env, check=True, capture_output=True)
    duration = time.perf_counter() - tic
    reference = final_weights(root / "reference")
    rng = random.Random(args.seed)
    tally = {"kills": 0, "killed_before_first_epoch": 0, "resumed": 0, "identical": 0, "lost": 0}
    for index in range(args.kills):
        out = root / f"run-{index}"
        delay = rng.uniform(0.3, 1.0) * duration
        proc = subprocess.Popen(command(data, model, out), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.kill()
        proc.wait()
        tally["kills"] += 1
        resume = ["--resume", str(out)] if generations(out) else []
        tally["killed_before_first_epoch"] += not resume
        # nothing finished yet: the folder still belongs to the killed run, so starting again takes --overwrite
        again = resume or ["--overwrite"]
        done = subprocess.run(command(data, model, out) + again, env=env, capture_output=True, text=True)
        tally["resumed"] += done.returncode == 0 and bool(resume)
        rows = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] \
            if (out / "metrics.jsonl").is_file() else []
        intact = (done.returncode == 0 and rows == list(range(1, EPOCHS + 1)) and tz.load_pretrained(out / "best")
                  is not None)
        same = intact and all(torch.equal(a, b) for a, b in zip(final_weights(out).values(), reference.values()))
        tally["identical"] += same
        tally["lost"] += not intact
        print(f"kill {index + 1}/{args.kills} at {delay:.2f} s: {'resumed' if resume else 'restarted'}, "
              f"{'identical' if same else 'DIFFERENT' if intact else 'LOST'}", flush=True)
    print(json.dumps({**tally, "run_s": round(duration, 2), "load_average": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
