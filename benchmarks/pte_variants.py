"""ExecuTorch (.pte) variants of the real EfficientNet-Lite0 weights: fp32, fp16 and int8 against fp32 eager.

fp32 and fp16 are `tz.export(model, "m.pte", variant=...)`; int8 is XNNPACK's static post-training quantisation
(PT2E, `XNNPACKQuantizer`, symmetric per-channel), calibrated on the mirrored scikit-image sample photos and
evaluated on the originals (a different set), then lowered like the others. For each: top-1 agreement and
top-5 overlap with fp32 eager on the 13 original photos, the largest |logit difference|, the file size and the
batch-1 latency on ExecuTorch's runtime (interleaved rounds). A small-sample illustration, not an accuracy claim;
a variant is offered by the package only if its top-1 agrees with fp32 on every photo.

    python benchmarks/pte_variants.py [--json results.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

import tinynet_zoo as tz
from inherit import photos
from quantize import _batches
from tinynet_zoo.deploy.backends import PteForward
from tinynet_zoo.deploy.fold import fold_batchnorm
from tinynet_zoo.deploy.timing import one_round, summarize


def int8_program(model: torch.nn.Module, calibration: np.ndarray) -> bytes:
    """The package's XNNPACK static int8 (PT2E) program of the BatchNorm-folded model for batch 1, lowered to .pte."""
    from tinynet_zoo.deploy.quantize import pte_int8

    return pte_int8(fold_batchnorm(model), torch.from_numpy(calibration), 1, ())


def _latency(programs: dict[str, PteForward], one: np.ndarray, rounds: int = 15) -> dict[str, float]:
    calls = {name: (lambda p=program: p(one)) for name, program in programs.items()}
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in programs}
    for index in range(rounds):
        for name, measured in one_round(calls, 10, reverse=index % 2 == 1).items():
            times[name] += measured
    return {name: summarize(measured).median_ms for name, measured in times.items()}


def variants_report() -> dict:
    """Agreement, size and latency of the fp32, fp16 and int8 programs against fp32 eager on the sample photos."""
    model = tz.create("efficientnet_lite0", pretrained=True).eval()
    images = photos()  # originals at even indices, mirror images at odd ones
    calibration, held_out = _batches(model, images[1::2]), _batches(model, images[0::2])
    with torch.inference_mode():
        reference = model(torch.from_numpy(held_out)).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("fp32", "fp16"):
            tz.export(model, Path(tmp) / f"{variant}.pte", variant=variant)
        (Path(tmp) / "int8.pte").write_bytes(int8_program(model, calibration))
        files = {v: Path(tmp) / f"{v}.pte" for v in ("fp32", "fp16", "int8")}
        programs = {v: PteForward(path) for v, path in files.items()}
        logits = {v: np.concatenate([p(image[None]) for image in held_out]) for v, p in programs.items()}
        latency = _latency(programs, held_out[:1])
        sizes = {v: path.stat().st_size for v, path in files.items()}
    top5 = [set(row) for row in np.argsort(-reference, 1)[:, :5].tolist()]
    report = {}
    for variant, values in logits.items():
        agree = values.argmax(1) == reference.argmax(1)
        overlap = statistics.mean(len(set(r) & t) / 5 for r, t in zip(np.argsort(-values, 1)[:, :5].tolist(), top5))
        report[variant] = {"top1_agreement": int(agree.sum()), "images": len(agree),
                           "disagreeing_photos": [i for i, ok in enumerate(agree) if not ok],
                           "top5_overlap": overlap, "max_abs_logit_diff": float(np.abs(values - reference).max()),
                           "file_bytes": sizes[variant], "median_ms": latency[variant]}
    return report


def markdown(report: dict) -> str:
    """The variants as a Markdown table."""
    lines = ["| variant | top-1 = fp32 eager | top-5 overlap | max abs logit diff | file | batch-1 median |",
             "|---|---|---|---|---|---|"]
    for variant, r in report.items():
        lines.append(f"| {variant} | {r['top1_agreement']}/{r['images']} | {100 * r['top5_overlap']:.0f}% | "
                     f"{r['max_abs_logit_diff']:.3g} | {r['file_bytes'] / 1e6:.1f} MB | {r['median_ms']:.2f} ms |")
    return "\n".join(lines)


def main() -> None:
    """Print the table (and write --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    report = variants_report()
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
