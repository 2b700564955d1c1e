"""`weights_manifest.json` (shipped inside the package): checkpoint records, validated once on load."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, UnknownTagError, unknown

SCHEMA_VERSION = 1
KEY_LAYOUTS = ("timm", "tinynet_official", "efficientnet_pytorch")
SOURCES = ("hf_hub", "pypi")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Checkpoint:
    """One hosted checkpoint: where it lives, how to verify it, what it scored. None = not known."""

    tag: str
    model: str
    source: str  # "hf_hub" (hf_repo, revision, filename) or "pypi" (a file inside an installed package)
    hf_repo: str | None
    filename: str
    key_layout: str
    pypi_package: str | None = None
    pypi_file: str | None = None  # path relative to site-packages
    revision: str | None = None
    revision_short: str | None = None
    size: int | None = None
    size_displayed: str | None = None
    sha256: str | None = None
    license: str | None = None
    fallback_url: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)


_OPT_STR = (str, type(None))
_TYPES = {"model": str, "source": str, "pypi_package": _OPT_STR, "pypi_file": _OPT_STR, "metrics": dict,
          "hf_repo": _OPT_STR, "filename": str, "key_layout": str, "revision": _OPT_STR,
          "revision_short": _OPT_STR, "size": (int, type(None)), "size_displayed": _OPT_STR, "sha256": _OPT_STR,
          "license": _OPT_STR, "fallback_url": _OPT_STR, "sources": dict}
_REQUIRED = ("model", "source", "hf_repo", "filename", "key_layout")
METRIC_KEYS = ("imagenet_top1", "imagenet_top5")  # measured on these weights; None where no source gives them


def _check_metrics(where: str, metrics: dict[str, Any]) -> None:
    extra = sorted(set(metrics) - {*METRIC_KEYS, "source"})
    if extra:
        raise InvalidArgumentError(f"{where}: unknown metrics {extra} (accepted: {', '.join(METRIC_KEYS)}, source; "
                                   "the paper's numbers live in the registry)")
    for key in METRIC_KEYS:
        value = metrics.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= 100):
            raise InvalidArgumentError(f"{where}: metrics.{key} must be a percentage or null, got {value!r}")
    if not isinstance(metrics.get("source", ""), str):
        raise InvalidArgumentError(f"{where}: metrics.source must be a string")


def validate(data: Any) -> dict[str, Checkpoint]:
    """Check a parsed manifest against the schema; return its checkpoints by tag."""
    if not isinstance(data, dict) or data.get("$schema_version") != SCHEMA_VERSION:
        raise InvalidArgumentError(f"weights manifest must be an object with \"$schema_version\": {SCHEMA_VERSION}")
    checkpoints = data.get("checkpoints")
    if not isinstance(checkpoints, dict):
        raise InvalidArgumentError("weights manifest needs a \"checkpoints\" object keyed by model.tag")
    out = {}
    for tag, rec in checkpoints.items():
        where = f"weights manifest entry {tag!r}"
        if not isinstance(rec, dict):
            raise InvalidArgumentError(f"{where} must be an object")
        missing, extra = [k for k in _REQUIRED if k not in rec], sorted(set(rec) - set(_TYPES))
        if missing or extra:
            raise InvalidArgumentError(f"{where}: missing fields {missing}, unknown fields {extra}")
        for key, value in rec.items():
            if not isinstance(value, _TYPES[key]) or isinstance(value, bool):
                raise InvalidArgumentError(f"{where}: field {key!r} has the wrong type ({value!r})")
        if not tag.startswith(rec["model"] + "."):
            raise InvalidArgumentError(f"{where}: tag must be '<model>.<tag>' for model {rec['model']!r}")
        if rec["source"] not in SOURCES:
            raise InvalidArgumentError(f"{where}: source must be one of {SOURCES}")
        needs = ("hf_repo",) if rec["source"] == "hf_hub" else ("pypi_package", "pypi_file")
        if any(not rec.get(key) for key in needs):
            raise InvalidArgumentError(f"{where}: a {rec['source']} source needs {', '.join(needs)}")
        if rec["key_layout"] not in KEY_LAYOUTS:
            raise InvalidArgumentError(f"{where}: key_layout must be one of {KEY_LAYOUTS}")
        if rec.get("revision") is not None and not _HEX40.match(rec["revision"]):
            raise InvalidArgumentError(f"{where}: revision must be a full 40-hex commit hash or null")
        if rec.get("sha256") is not None and not HEX64.match(rec["sha256"]):
            raise InvalidArgumentError(f"{where}: sha256 must be 64 lowercase hex digits or null")
        _check_metrics(where, rec.get("metrics", {}))
        out[tag] = Checkpoint(tag=tag, **rec)
    return out


MANIFEST_ENV = "TINYNET_ZOO_MANIFEST"


def checkpoints() -> dict[str, Checkpoint]:
    """All checkpoints: the manifest shipped in the package, or the file $TINYNET_ZOO_MANIFEST names."""
    return _load(os.environ.get(MANIFEST_ENV) or "")


@lru_cache(maxsize=8)
def _load(path: str) -> dict[str, Checkpoint]:
    try:
        text = Path(path).read_text() if path else \
            resources.files("tinynet_zoo").joinpath("weights_manifest.json").read_text()
        data = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidArgumentError(f"cannot read weights manifest {path or '(packaged)'}: {exc}") from None
    return validate(data)


def get_checkpoint(tag: str) -> Checkpoint:
    """The manifest record for a 'model.tag' name; an unknown tag names the model's tags (or close matches)."""
    found = checkpoints()
    if tag not in found:
        model = str(tag).partition(".")[0]
        own = [t for t, c in found.items() if c.model == model]
        raise unknown("checkpoint tag", tag, own or found, UnknownTagError)
    return found[tag]


def tags_for(model: str) -> list[str]:
    """The manifest's checkpoint tags of one model (canonical name), sorted."""
    return sorted(t for t, c in checkpoints().items() if c.model == model)
