"""The one argparse tree of `tinynet-zoo`: every command and every flag is declared here; the handlers live in
the modules named after their command group (catalog, training, search, deploy). Building it imports no torch."""
from __future__ import annotations

import argparse
import importlib
from typing import Any, Callable

from .. import __version__
from ..core.bases import DEFAULT_BASE
from ..deploy.backends import BACKENDS, BENCH_ROWS as BENCH_BACKENDS
from ..deploy.engines import FORMATS
from ..training.config import AMP_MODES, AUGMENTATIONS, BATCHNORM_MODES, CHANNELS_LAST_MODES, TrainConfig
from ..training.distill import DISTILL_WEIGHT, TEMPERATURE


def _auto(kind: Any) -> Any:
    """An argparse type that takes 'auto' or a value of `kind`."""
    def convert(text: str) -> Any:
        return text if text == "auto" else kind(text)
    convert.__name__ = kind.__name__
    return convert


def _handler(module: str, name: str) -> Callable[[argparse.Namespace], Any]:
    """A command's handler, imported only when that command runs (so `list` or `formula` load no training code)."""
    def run(args: argparse.Namespace) -> Any:
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)(args)
    run.__name__ = name
    return run


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits with code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _catalog(sub: Any) -> None:
    p = sub.add_parser("list", help="catalogued model names")
    p.add_argument("pattern", nargs="?", default="*", help="shell wildcard, e.g. 'tinynet_*'")
    p.set_defaults(func=_handler("catalog", "cmd_list"))
    p = sub.add_parser("info", help="everything known about one model")
    p.add_argument("name", metavar="MODEL", help="a name, name.tag, budget, model folder or hf-hub:user/repo")
    p.set_defaults(func=_handler("catalog", "cmd_info"))
    p = sub.add_parser("table", help="the catalogue with r, d, w, resolution, MACs, params, top-1")
    p.set_defaults(func=_handler("catalog", "cmd_table"))
    p = sub.add_parser("formula", help="(r, d, w, resolution) for a MAC budget, tiny vs inverse giant formula")
    p.add_argument("budget", help="MACs: 100e6, 100M or 0.1G")
    p.add_argument("--base", default=DEFAULT_BASE)
    p.add_argument("--formula", default="tiny", help="tiny, giant or a formula .json file")
    p.set_defaults(func=_handler("catalog", "cmd_formula"))
    p = sub.add_parser("download", help="prefetch a checkpoint into the cache and verify its sha256")
    p.add_argument("name", help="model name (its default checkpoint) or a tag such as tinynet_b.in1k")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=_handler("catalog", "cmd_download"))
    p = sub.add_parser("predict", help="top ImageNet classes of an image with a pretrained model")
    p.add_argument("name", metavar="MODEL")
    p.add_argument("image")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=_handler("catalog", "cmd_predict"))


def _finetune(sub: Any) -> None:
    p = sub.add_parser("finetune", help="fine-tune a model or MAC budget on an image folder (torchrun for DDP)",
                       description="Fine-tune MODEL (a catalogued name, name.tag, a MAC budget like 50M built with "
                                   "the tiny formula, a model folder or 'hf-hub:user/repo') on an ImageFolder. Under "
                                   "`torchrun --nproc_per_node N` it trains with DistributedDataParallel.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--data", required=True, help="folder of class sub-folders, or train/ and val/ folders")
    p.add_argument("--out", default=None, help="run folder: run.json, metrics.jsonl, curves.png, checkpoints/, best/")
    p.add_argument("--resume", default=None, help="a run folder (its newest checkpoint) or a checkpoint generation")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a folder that holds one (removes only that run's files)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--pretrained", default=None,
                         help="True (default for names), inherit (default for budgets) or a checkpoint tag")
    weights.add_argument("--scratch", action="store_true", help="random initialisation")
    defaults = TrainConfig()
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="default: fits the folder's size (3 to 30)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="per process")
    p.add_argument("--lr", type=float, default=defaults.lr, help="the classifier's learning rate")
    p.add_argument("--backbone-lr-scale", type=_auto(float), default=defaults.backbone_lr_scale,
                   help="backbone rate = lr * this (default auto: 0.1 on trained weights, 1 from scratch)")
    p.add_argument("--layer-decay", type=_auto(float), default=defaults.layer_decay,
                   help="per block further from the head (default auto: 0.85 on trained weights, none from scratch)")
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    p.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps, help="default: 10%% of steps, <= 50")
    p.add_argument("--warmup-epochs", type=float, default=defaults.warmup_epochs, help="instead of --warmup-steps")
    p.add_argument("--ema-decay", type=_auto(float), default=defaults.ema_decay,
                   help="0 turns EMA off; default auto: 0.999 for runs of 1000 steps or more")
    p.add_argument("--batchnorm", choices=BATCHNORM_MODES, default=defaults.batchnorm,
                   help="auto: statistics frozen on trained weights with under 5000 images")
    p.add_argument("--augment", choices=AUGMENTATIONS, default=defaults.augment)
    p.add_argument("--no-warm-start", action="store_true",
                   help="do not fit a new head on the frozen features first (the linear probe)")
    p.add_argument("--teacher", default=None, help="distil from this model (e.g. a folder fine-tuned on the data)")
    p.add_argument("--distill-weight", type=float, default=DISTILL_WEIGHT, help="share of the loss from the teacher")
    p.add_argument("--temperature", type=float, default=TEMPERATURE, help="distillation temperature")
    p.add_argument("--amp", choices=AMP_MODES, default=defaults.amp)
    p.add_argument("--channels-last", choices=CHANNELS_LAST_MODES, default=defaults.channels_last)
    p.add_argument("--workers", type=int, default=defaults.workers)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--resolution", type=int, default=None, help="input pixels (default: the model's own)")
    p.add_argument("--freeze-until", default=None, help="e.g. blocks.4: freeze the stem through that part")
    p.add_argument("--drop-rate", type=float, default=None, help="default: 0 on trained weights, 0.2 from scratch")
    p.add_argument("--drop-path-rate", type=float, default=None, help="default: 0 on trained weights, 0.1 from "
                                                                          "scratch")
    p.add_argument("--qat", action="store_true",
                   help="quantization-aware: train through the int8 .pte export's fake quantization (needs the "
                        "mobile extra), then export best/ with --int8 --calibration")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_handler("training", "cmd_finetune"))


def _search(sub: Any) -> None:
    p = sub.add_parser("search", help="Rubik's-cube search: train random twists under budgets, fit a formula",
                       description="Run (or resume) a search: `search --data DIR --budgets 25M,50M --trials 24 "
                                   "--out runs/x`; analyse it: `search report runs/x`.")
    p.add_argument("action", nargs="?", choices=["report"], help="'report DIR': analyse a search folder")
    p.add_argument("dir", nargs="?", help="the search folder to report on")
    p.add_argument("--data", help="image folder (class sub-folders, or train/ and val/)")
    p.add_argument("--base", default=DEFAULT_BASE)
    p.add_argument("--rules", default="tinynet")
    p.add_argument("--budgets", help="comma-separated MACs at the trained resolutions, e.g. 25M,50M,100M")
    p.add_argument("--trials", type=int, default=24, help="trials in all, spread over the budgets")
    p.add_argument("--epochs", type=int, default=3, help="proxy schedule: epochs per trial")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate of the proxy training")
    p.add_argument("--augment", action="store_true", help="timm's training augmentation (off: eval transform)")
    p.add_argument("--inherit", action="store_true", help="start each trial from weights cut from a pretrained net")
    p.add_argument("--base-resolution", type=int, default=None, help="pixels r is relative to (default: the base's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="search folder (results.jsonl; re-running resumes it)")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--workers", type=int, default=None, help="local: parallel trials (0: in this process)")
    p.add_argument("--threads", type=int, default=1, help="local: CPU threads per trial")
    p.add_argument("--address", default=None, help="ray: cluster to join, e.g. auto")
    p.add_argument("--cpus-per-trial", type=float, default=1)
    p.add_argument("--gpus-per-trial", type=float, default=0)
    p.add_argument("--retry-failed", action="store_true", help="run trials recorded as failed again")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-plot", action="store_true", help="report: skip the PNG")
    p.set_defaults(func=_handler("search", "cmd_search"))


def _shrink(sub: Any) -> None:
    p = sub.add_parser("shrink", help="a small network for your images: teacher, tiny-formula student, inheritance, "
                                      "distillation, export, report card",
                       description="Shrink a teacher to a student of --budget MACs (or --latency ms) for the images "
                                   "in --data; re-running the same command resumes an interrupted run.")
    p.add_argument("--data", required=True, help="folder of class sub-folders, or train/ and val/ folders")
    p.add_argument("--out", required=True, help="shrink folder: teacher/, student/, report.json, report.png, ...")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--budget", help="the student's MACs at the data's resolution, e.g. 8M")
    target.add_argument("--latency", help="the student's batch-1 latency on this CPU, e.g. 3ms")
    p.add_argument("--teacher", default="efficientnet_lite0", help="a model spec, or a folder fine-tuned on the data")
    p.add_argument("--epochs", type=int, default=None, help="per training step (default: fits the data's size)")
    p.add_argument("--resolution", type=int, default=None, help="input pixels (default: the images' own size)")
    p.add_argument("--no-compare", action="store_true", help="skip the scratch and plain-inheritance students")
    p.add_argument("--distill-weight", type=float, default=None,
                   help="the teacher's share of the student's loss (0: labels only; default 0.3)")
    p.add_argument("--backend", default="auto",
                   help="engine that times teacher and student: auto (races every installed engine) or one of "
                        + ", ".join(BACKENDS))
    p.add_argument("--int8", action="store_true",
                   help="also write student.int8.onnx calibrated on the training split of --data and checked on its "
                        "val split, kept only if its top-1 drops <= 1 point (a refusal is recorded in the report)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true",
                   help="start again a run recorded in --out with other options (each step replaces only its files)")
    p.set_defaults(func=_handler("shrinking", "cmd_shrink"))


def _deploy(sub: Any) -> None:
    p = sub.add_parser("bench", help="batch-1 latency and batch-32 throughput per backend vs timm eager",
                       description="Every row of each model is built, then all are timed in interleaved rounds; "
                                   "progress (model, row, round) goes to stderr; the plain rows and auto share each model's "
                                   "engine conversions (one per engine and settings). Time: --quick takes under 2 "
                                   "minutes on `bench tinynet_e tinynet_a` (1 min 54 s on 2 idle cores, 2 min 16 s "
                                   "before those were shared); the default builds 12 rows per model, "
                                   "torch.compile twice, and times 5x more calls (see docs/performance.md).")
    p.add_argument("models", nargs="*", default=["tinynet_e"], metavar="MODEL",
                   help="model names, budgets or folders (default: tinynet_e)")
    p.add_argument("--backends", default=None,
                   help=f"comma-separated, from {', '.join(BENCH_BACKENDS)} (default: eager, the plain recipes and "
                        "engines whose packages are installed, auto)")
    p.add_argument("--quick", action="store_true",
                   help="rows eager, the plain recipes but compile-plain, and auto (a 3 s race); 20 timed calls, "
                        "no throughput (ignores --runs, --warmup, --batch-runs)")
    p.add_argument("--runs", type=int, default=100, help="timed batch-1 calls (after --warmup)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch", type=int, default=32, help="batch size for throughput")
    p.add_argument("--batch-runs", type=int, default=5, help="timed calls at --batch (0: skip throughput)")
    p.add_argument("--plot", default=None, help="write latency-vs-MACs to this PNG (needs matplotlib)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file at --plot")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_handler("deploy", "cmd_bench"))
    p = sub.add_parser("export", help="a verified ONNX, OpenVINO IR or ExecuTorch (.pte) file of a model",
                       description="Export MODEL (a name, name.tag, MAC budget, model folder or hf-hub:user/repo) "
                                   "with BatchNorm folded, verified against the eager model before it is written.")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--out", required=True, help="the file to write: " + ", ".join(
        f"{f.suffix} ({f.name})" for f in FORMATS.values()))
    p.add_argument("--format", default=None, help=f"{', '.join(FORMATS)} (default: from the --out extension)")
    p.add_argument("--batch", type=int, default=1, help="fixed batch size; 0 makes the batch axis dynamic")
    p.add_argument("--resolution", type=int, default=None, help="input pixels (default: the model's own)")
    p.add_argument("--pretrained", default=None,
                   help="weights: True (the checkpoint; default for catalogued names), inherit, a tag, or False")
    p.add_argument("--variant", default="fp32", help="pte only: fp32 or fp16")
    p.add_argument("--int8", action="store_true",
                   help="int8, calibrated on --calibration and written only if it keeps accuracy on held-out images")
    p.add_argument("--calibration", default=None, metavar="DIR",
                   help="--int8: images like the model will see (class sub-folders named like its classes, or "
                        "train/ and val/, make the check use labels); without it, scikit-image's generic sample "
                        "photos")
    p.add_argument("--max-drop", type=float, default=1.0, help="--int8 with labels: top-1 points it may lose")
    p.add_argument("--min-agreement", type=float, default=0.98,
                   help="--int8 without labels: share of held-out images whose top-1 must equal float's")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file at --out")
    p.set_defaults(func=_handler("deploy", "cmd_export"))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (building it loads neither torch nor timm)."""
    parser = Parser(prog="tinynet-zoo", description="TinyNet model zoo: catalogue, MACs and the tiny formula.")
    parser.add_argument("--version", action="version", version=f"tinynet-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in (_catalog, _finetune, _search, _shrink, _deploy):
        group(sub)
    for p in sub.choices.values():
        p.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    return parser
