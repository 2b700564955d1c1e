"""Catalogue commands: list, info, table, formula, download, predict."""
from __future__ import annotations

import argparse
from typing import Any

from ..checks import integer
from ..core.budget import parse_budget
from ..core.formula import for_flops
from ..core.registry import list_models
from ..errors import InvalidArgumentError
from ..factory import create, resolve
from ..images import open_rgb
from ..info import model_info
from ..preprocess import transforms
from ..weights.fetch import fetch, sha256_file
from ..weights.load import checkpoint_for
from ..weights.model_config import ModelConfig


def _fmt(value: Any, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def table_rows() -> list[dict[str, Any]]:
    """One row per catalogued model: twist, MACs, params, the paper's and timm's numbers."""
    rows = []
    for name in list_models():
        info = model_info(name)
        t = info.twist
        rows.append(dict(name=name, r=t.r, d=t.d, w=t.w, resolution=t.resolution, rules=t.rules, macs=info.macs,
                         params=info.params, paper_macs=info.paper.macs, paper_top1=info.paper.top1,
                         timm_top1=info.measured.top1))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The catalogue as a Markdown table."""
    lines = ["| model | r | d | w | resolution | MACs | paper MACs | params | paper top-1 | timm top-1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        paper_macs = _fmt(row["paper_macs"] and row["paper_macs"] / 1e6, ".0f") + ("M" if row["paper_macs"] else "")
        lines.append(
            f"| {row['name']} | {row['r']:.3g} | {row['d']:.3g} | {row['w']:.3g} | {row['resolution']} | "
            f"{row['macs'] / 1e6:.1f}M | {paper_macs} | {row['params'] / 1e6:.2f}M | {_fmt(row['paper_top1'])} | "
            f"{_fmt(row['timm_top1'])} |")
    return "\n".join(lines)


def cmd_list(args: argparse.Namespace) -> Any:
    """`list [PATTERN]`: catalogued names."""
    names = list_models(args.pattern)
    return names, "\n".join(names)


def cmd_info(args: argparse.Namespace) -> Any:
    """`info MODEL`: everything known about one model spec."""
    data = model_info(args.name).to_dict()
    text = "\n".join(f"{k}: {v}" for k, v in data.items())
    return data, text


def cmd_table(args: argparse.Namespace) -> Any:
    """`table`: the whole catalogue."""
    rows = table_rows()
    return rows, format_table(rows)


def _twist_row(label: str, twist: Any) -> dict[str, Any]:
    return dict(formula=label, **twist.to_dict(), macs=twist.macs, params=twist.params)


def cmd_formula(args: argparse.Namespace) -> Any:
    """`formula BUDGET`: the tiny formula's twist beside the inverse giant formula's."""
    budget = parse_budget(args.budget)
    rows = [_twist_row(args.formula, for_flops(budget, base=args.base, formula=args.formula))]
    if args.formula != "giant":
        rows.append(_twist_row("giant", for_flops(budget, base=args.base, formula="giant")))
    lines = [f"budget {budget / 1e6:.1f}M MACs on {args.base}",
             "| formula | r | d | w | resolution | MACs | params |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['formula']} | {r['r']:.4g} | {r['d']:.4g} | {r['w']:.4g} | {r['resolution']} | "
              f"{r['macs'] / 1e6:.2f}M ({100 * (r['macs'] / budget - 1):+.2f}%) | {r['params'] / 1e6:.2f}M |" for r in rows]
    return {"budget": budget, "results": rows}, "\n".join(lines)


def cmd_download(args: argparse.Namespace) -> Any:
    """`download MODEL`: fetch and verify a checkpoint (the name's default, or the tag it carries)."""
    target = resolve(args.name)
    if target.entry is None:
        raise InvalidArgumentError(f"download takes a catalogued name or name.tag, got {args.name!r}")
    ckpt = checkpoint_for(target.entry, target.tag)
    path = fetch(ckpt, args.cache_dir)
    data = {"tag": ckpt.tag, "path": str(path), "sha256": sha256_file(path), "verified": ckpt.sha256 is not None}
    return data, f"{ckpt.tag}: {path} (sha256 {data['sha256']})"


def cmd_predict(args: argparse.Namespace) -> Any:
    """`predict MODEL IMAGE`: the top classes of one image (ImageNet's, or the model folder's own labels)."""
    import torch
    from timm.data import ImageNetInfo

    model = create(args.name, pretrained=True, cache_dir=args.cache_dir).eval()
    classes = ModelConfig.of(model).label_names
    integer("--top", args.top, 1, model.num_classes)
    image = open_rgb(args.image)
    batch = transforms(model)(image).unsqueeze(0)
    with torch.no_grad():
        probs, indices = model(batch).softmax(-1)[0].topk(args.top)
    label = (lambda i: classes[i]) if classes else ImageNetInfo().index_to_description
    rows = [{"index": int(i), "label": label(int(i)), "probability": float(p)} for p, i in zip(probs, indices)]
    return rows, "\n".join(f"{r['probability']:6.3f}  {r['index']:4d}  {r['label']}" for r in rows)
