"""A run's per-epoch record: metrics.jsonl (one fsync'd line per epoch) and curves.png (loss and top-1)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ExtraNotInstalledError
from ..files import append_line, json_text, write_atomic, write_text_atomic
from ..system import pyplot

METRICS_NAME, CURVES_NAME = "metrics.jsonl", "curves.png"


def append_row(folder: Path, row: dict[str, Any]) -> None:
    """Add one epoch's metrics to folder/metrics.jsonl (strict JSON, one line)."""
    append_line(folder / METRICS_NAME, json_text(row))


def read_history(folder: Path, epochs: int) -> list[dict[str, Any]]:
    """Rows of metrics.jsonl up to the resumed epoch (later ones were from a run that did not checkpoint)."""
    path = folder / METRICS_NAME
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
    return list({r["epoch"]: r for r in rows}.values())  # a repeated epoch keeps its latest row


def write_history(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Replace folder/metrics.jsonl with `rows` (atomically): a resumed run drops rows past its checkpoint."""
    write_text_atomic(folder / METRICS_NAME, "".join(json_text(r) + "\n" for r in rows))


def plot_curves(folder: Path, history: list[dict[str, Any]]) -> "Path | None":
    """Loss and top-1 curves per epoch as folder/curves.png; None (no file) when matplotlib is not installed."""
    try:
        plt = pyplot("the training curves")
    except ExtraNotInstalledError:
        return None  # curves are a convenience of the run folder: metrics.jsonl holds the same numbers
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
    path = write_atomic(folder / CURVES_NAME, lambda p: fig.savefig(p, format="png", dpi=100))
    plt.close(fig)
    return path
