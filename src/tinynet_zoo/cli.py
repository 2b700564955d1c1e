"""`tinynet-zoo` command line: thin subcommands over the public API, each with --json."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import Any, Sequence

from .errors import TinyNetZooError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit code 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def _table_rows() -> list[dict[str, Any]]:
    from .info import model_info
    from .registry import list_models

    rows = []
    for name in list_models():
        info = model_info(name)
        t = info.twist
        rows.append(dict(name=name, r=t.r, d=t.d, w=t.w, resolution=t.resolution, rules=t.rules, macs=info.macs,
                         params=info.params, paper_macs=info.paper.macs, paper_top1=info.paper.top1,
                         timm_top1=info.measured.top1))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The catalogue as a Markdown table (also used to generate docs/models.md)."""
    lines = ["| model | r | d | w | resolution | MACs | paper MACs | params | paper top-1 | timm top-1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        paper_macs = _fmt(row["paper_macs"] and row["paper_macs"] / 1e6, ".0f") + ("M" if row["paper_macs"] else "")
        lines.append(
            f"| {row['name']} | {row['r']:.3g} | {row['d']:.3g} | {row['w']:.3g} | {row['resolution']} | "
            f"{row['macs'] / 1e6:.1f}M | {paper_macs} | {row['params'] / 1e6:.2f}M | {_fmt(row['paper_top1'])} | "
            f"{_fmt(row['timm_top1'])} |")
    return "\n".join(lines)


MODELS_MD_HEADER = """# Models

Generated from the registry by `python scripts/gen_models_md.py`; a test fails when this file is stale.
MACs are multiply-accumulates of conv and linear layers (torch's flop counter / 2), counted analytically.
"Paper MACs" are the paper's "FLOPs"; TinyNet-E's 24M is rounded to two figures and EfficientNet-B0's 390M
also counts squeeze-excite scaling and pooling, hence gaps of 1.5% and 1.1%; the others agree within 1%.
The shrunken EfficientNet-B^-k follow the inverse giant formula at a continuous phi, landed on the MACs of the
TinyNet they are compared with (B^-1 with B, ..., B^-4 with E); only B^-4 has a published top-1.
"timm top-1" is timm's ImageNet evaluation of the released weights.

"""


def models_markdown() -> str:
    """docs/models.md: the catalogue table generated from the registry."""
    return MODELS_MD_HEADER + format_table(_table_rows()) + "\n"


def _cmd_list(args: argparse.Namespace) -> Any:
    from .registry import list_models
    names = list_models(args.pattern)
    return names, "\n".join(names)


def _cmd_info(args: argparse.Namespace) -> Any:
    from .info import model_info
    data = model_info(args.name).to_dict()
    text = "\n".join(f"{k}: {v}" for k, v in data.items())
    return data, text


def _cmd_table(args: argparse.Namespace) -> Any:
    rows = _table_rows()
    return rows, format_table(rows)


def _twist_row(label: str, twist: Any) -> dict[str, Any]:
    return dict(formula=label, **twist.to_dict(), macs=twist.macs, params=twist.params)


def _cmd_formula(args: argparse.Namespace) -> Any:
    from .budget import parse_budget
    from .formula import for_flops

    budget = parse_budget(args.budget)
    rows = [_twist_row(args.formula, for_flops(budget, base=args.base, formula=args.formula))]
    if args.formula != "giant":
        rows.append(_twist_row("giant", for_flops(budget, base=args.base, formula="giant")))
    lines = [f"budget {budget / 1e6:.1f}M MACs on {args.base}",
             "| formula | r | d | w | resolution | MACs | params |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['formula']} | {r['r']:.4g} | {r['d']:.4g} | {r['w']:.4g} | {r['resolution']} | "
              f"{r['macs'] / 1e6:.2f}M ({100 * (r['macs'] / budget - 1):+.2f}%) | {r['params'] / 1e6:.2f}M |" for r in rows]
    return {"budget": budget, "results": rows}, "\n".join(lines)


def _cmd_download(args: argparse.Namespace) -> Any:
    from .manifest import get_checkpoint
    from .pretrained import checkpoint_for
    from .registry import get_entry
    from .weights import fetch, sha256_file

    ckpt = get_checkpoint(args.name) if "." in args.name else checkpoint_for(get_entry(args.name), True)
    path = fetch(ckpt, args.cache_dir)
    data = {"tag": ckpt.tag, "path": str(path), "sha256": sha256_file(path), "verified": ckpt.sha256 is not None}
    return data, f"{ckpt.tag}: {path} (sha256 {data['sha256']})"


def _cmd_predict(args: argparse.Namespace) -> Any:
    from PIL import Image, UnidentifiedImageError
    import torch
    from timm.data import ImageNetInfo, create_transform, resolve_data_config

    from .build import create
    from .errors import InvalidArgumentError

    if args.top < 1 or args.top > 1000:
        raise InvalidArgumentError(f"--top must be in 1..1000, got {args.top}")
    try:
        image = Image.open(args.image).convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise InvalidArgumentError(f"cannot read image {args.image!r}: {exc}") from None
    model = create(args.name, pretrained=True, cache_dir=args.cache_dir).eval()
    batch = create_transform(**resolve_data_config({}, model=model))(image).unsqueeze(0)
    with torch.no_grad():
        probs, indices = model(batch).softmax(-1)[0].topk(args.top)
    info = ImageNetInfo()
    rows = [{"index": int(i), "label": info.index_to_description(int(i)), "probability": float(p)}
            for p, i in zip(probs, indices)]
    return rows, "\n".join(f"{r['probability']:6.3f}  {r['index']:4d}  {r['label']}" for r in rows)


# Modules that register subcommands through `add_cli(subparsers)`; each imports torch only when run.
COMMAND_MODULES: tuple[str, ...] = (".finetuning", ".search.cli", ".deploy.bench")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (importing it loads neither torch nor timm)."""
    from . import __version__

    parser = _Parser(prog="tinynet-zoo", description="TinyNet model zoo: catalogue, MACs and the tiny formula.")
    parser.add_argument("--version", action="version", version=f"tinynet-zoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("list", help="catalogued model names")
    p.add_argument("pattern", nargs="?", default="*", help="shell wildcard, e.g. 'tinynet_*'")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("info", help="everything known about one model")
    p.add_argument("name")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("table", help="the catalogue with r, d, w, resolution, MACs, params, top-1")
    p.set_defaults(func=_cmd_table)
    p = sub.add_parser("formula", help="(r, d, w, resolution) for a MAC budget, tiny vs inverse giant formula")
    p.add_argument("budget", help="MACs: 100e6, 100M or 0.1G")
    p.add_argument("--base", default="efficientnet_b0")
    p.add_argument("--formula", default="tiny", help="tiny, giant or a formula .json file")
    p.set_defaults(func=_cmd_formula)
    p = sub.add_parser("download", help="prefetch a checkpoint into the cache and verify its sha256")
    p.add_argument("name", help="model name (its default checkpoint) or a tag such as tinynet_b.in1k")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=_cmd_download)
    p = sub.add_parser("predict", help="top ImageNet classes of an image with a pretrained model")
    p.add_argument("name")
    p.add_argument("image")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=_cmd_predict)
    for module in COMMAND_MODULES:  # later capabilities add their own subcommands (no torch at parse time)
        importlib.import_module(module, __package__).add_cli(sub)
    for p in sub.choices.values():
        p.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tinynet-zoo` console script."""
    args = build_parser().parse_args(argv)
    try:
        data, text = args.func(args)
    except TinyNetZooError as exc:
        print(f"tinynet-zoo: error: {exc}", file=sys.stderr)
        return 2
    if data is None and not text:  # e.g. a non-zero rank under torchrun: nothing to say
        return 0
    print(json.dumps(data, indent=1, default=str) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
