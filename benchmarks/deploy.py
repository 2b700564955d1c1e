"""Deploy-path benchmark: batch-1 latency and batch-32 throughput on every backend vs timm eager, same run.

    python benchmarks/deploy.py                       # tinynet_e, tinynet_c, tinynet_a, efficientnet_b0
    python benchmarks/deploy.py --latency 3,8         # also for_latency at 3 ms and 8 ms
    python benchmarks/deploy.py --int8                # also int8 post-training quantisation of real Lite0 weights

Backends: eager (timm's module as built), onnxruntime-plain / openvino-plain (torch.onnx.export defaults, then
InferenceSession(path) / compile_model(model, "CPU") defaults), torch/onnxruntime/openvino (tinynet_zoo's
configuration of each) and auto (runtime(..., backend="auto")). Ratios are eager median / backend median.
"""
from __future__ import annotations

import argparse
import json
import platform

import tinynet_zoo as tz
from tinynet_zoo.deploy.autoselect import machine_fingerprint
from tinynet_zoo.deploy.bench import BACKENDS, bench, format_rows

MODELS = ("tinynet_e", "tinynet_c", "tinynet_a", "efficientnet_b0")
TARGETS = {"tinynet_e": 6.0, "tinynet_a": 3.0}  # issue 4: deploy path (auto) vs timm eager at batch 1


def target_lines(rows: list[dict]) -> list[str]:
    """Per model: auto vs eager against the target, and auto vs the faster plain export."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        by = {r["backend"]: r for r in rows if r["model"] == model}
        if "auto" not in by:
            continue
        plain = [by[b]["median_ms"] for b in ("onnxruntime-plain", "openvino-plain") if b in by]
        text = f"{model}: auto ({by['auto']['config']}) {by['auto']['speedup']:.2f}x eager"
        if model in TARGETS:
            text += f" (target {TARGETS[model]:g}x: {'met' if by['auto']['speedup'] >= TARGETS[model] else 'MISSED'})"
        if plain:
            text += f"; vs faster plain export {min(plain) / by['auto']['median_ms']:.2f}x"
        lines.append(text)
    return lines


def latency_rows(budgets: list[float]) -> list[dict]:
    """for_latency at each budget: the twist, its MACs, measured ms and how many measurements it took."""
    rows = []
    for budget in budgets:
        result = tz.for_latency(budget, tolerance=0.1)
        rows.append({**result.to_dict(), "count": len(result.measurements)})
        t = result.twist
        print(f"for_latency({budget:g} ms) -> r={t.r:.3f} d={t.d:.3f} w={t.w:.3f} {t.resolution}px, "
              f"{t.macs / 1e6:.1f}M MACs, {result.median_ms:.2f} ms on {result.backend}, "
              f"{len(result.measurements)} measurements", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(MODELS))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--latency", default="", help="comma-separated for_latency budgets in ms")
    parser.add_argument("--int8", action="store_true", help="int8 quantisation agreement on real Lite0 weights")
    parser.add_argument("--json", default=None, help="also write all results to this file")
    args = parser.parse_args()
    machine = machine_fingerprint()
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {platform.system()}; "
          + ", ".join(f"{k} {machine[k]}" for k in ("torch", "onnxruntime", "openvino")), flush=True)
    rows = bench(args.models, args.backends.split(","), runs=args.runs, warmup=30, batch=32, batch_runs=10)
    print(format_rows(rows))
    print("\n".join(target_lines(rows)), flush=True)
    results = {"machine": machine, "bench": rows}
    if args.latency:
        results["for_latency"] = latency_rows([float(b) for b in args.latency.split(",")])
    if args.int8:
        from quantize import int8_report
        results["int8"] = int8_report()
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
