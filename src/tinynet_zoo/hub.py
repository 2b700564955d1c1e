"""Sharing models: a folder of model.safetensors + config.json (twist, base, classes, data config) that
re-creates any size exactly, pushed to or pulled from the Hugging Face hub (`create("hf-hub:user/repo")`)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CheckpointNotFoundError, IncompatibleCheckpointError, InvalidArgumentError
from .files import umask
from .twist import Twist

if TYPE_CHECKING:
    import torch.nn as nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = 1
HUB_PREFIX = "hf-hub:"


def model_config(model: "nn.Module") -> dict[str, Any]:
    """What config.json records for a model made by `tinynet_zoo.create` (or fine-tuned from one)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if "twist" not in cfg:
        raise InvalidArgumentError("only models made by tinynet_zoo.create can be saved this way (their "
                                   "pretrained_cfg records the twist); got one without it")
    if not hasattr(model, "classifier"):
        raise InvalidArgumentError("save the classifier model, not a features_only backbone")
    size = cfg["input_size"]
    return {
        "library": "tinynet_zoo", "format": FORMAT,
        "architecture": cfg.get("architecture"), "twist": cfg["twist"],
        "num_classes": model.num_classes, "in_chans": size[0],
        "classes": cfg.get("label_names"),
        "data_config": {"resolution": size[-1], "crop_pct": cfg["crop_pct"], "interpolation": cfg["interpolation"],
                        "mean": list(cfg["mean"]), "std": list(cfg["std"])},
    }


def cpu_state(module: "nn.Module", prefix: str = "") -> dict[str, Any]:
    """The module's state as contiguous CPU tensors (what safetensors can write), keys optionally prefixed."""
    return {f"{prefix}{k}": v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def save_pretrained(model: "nn.Module", folder: "str | Path", metrics: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write model.safetensors, config.json and a model card README.md into `folder` (replaced atomically)."""
    from safetensors.torch import save_file

    from . import __version__

    config = model_config(model)
    config.update(version=__version__, metrics=metrics or {}, **(extra or {}))
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(cpu_state(model), str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=1) + "\n")
        (staging / "README.md").write_text(_card(config))
        _share(staging)
        old = folder.with_name(f".{folder.name}.old.{os.getpid()}")
        if folder.exists():
            os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _share(folder: Path) -> None:
    """Give the folder and its files the permissions the umask allows (mkdtemp and safetensors use 0700/0600)."""
    mask = umask()
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.iterdir():
        os.chmod(path, 0o666 & ~mask)


def _card(config: dict[str, Any]) -> str:
    twist = Twist.from_dict(config["twist"])
    lines = ["---", "library_name: tinynet_zoo", "tags: [image-classification, tinynet, timm]", "---", "",
             f"# {config.get('architecture') or 'TinyNet twist'}", "",
             f"A tinynet_zoo model: {twist} ({twist.macs / 1e6:.1f}M MACs, {twist.params / 1e6:.2f}M params "
             f"at 1000 classes), {config['num_classes']} classes.", "",
             "```python", "import tinynet_zoo as tz", 'model = tz.create("hf-hub:USER/REPO")', "```", ""]
    if config.get("metrics"):
        lines += ["Metrics: " + ", ".join(f"{k} = {v}" for k, v in config["metrics"].items()), ""]
    return "\n".join(lines)


def read_config(folder: "str | Path") -> dict[str, Any]:
    """The config.json of a saved model folder, checked."""
    path = Path(folder) / CONFIG_NAME
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointNotFoundError(f"{path} is missing: not a folder written by save_pretrained") from exc
    except json.JSONDecodeError as exc:
        raise IncompatibleCheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if config.get("library") != "tinynet_zoo" or "twist" not in config:
        raise IncompatibleCheckpointError(f"{path} was not written by tinynet_zoo (no library/twist fields)")
    if config.get("format", 0) > FORMAT:
        raise IncompatibleCheckpointError(f"{path} has format {config['format']}; this tinynet_zoo reads up to "
                                          f"{FORMAT}: pip install -U tinynet-zoo")
    return config


def load_pretrained(folder: "str | Path", num_classes: int | None = None, in_chans: int | None = None,
                    **kwargs: Any) -> "nn.Module":
    """Re-create a saved model exactly (twist, classes, data config, weights); num_classes swaps the head."""
    from .build import build_module, finish
    from .pretrained import load_state
    from .registry import DataConfig
    from .weights import read_state_dict

    folder = Path(folder)
    config = read_config(folder)
    twist = Twist.from_dict(config["twist"])
    saved_classes = config["num_classes"]
    num_classes = saved_classes if num_classes is None else num_classes
    in_chans = config["in_chans"] if in_chans is None else in_chans
    model = build_module(twist.arch, num_classes=num_classes, in_chans=in_chans, **kwargs)
    state = read_state_dict(folder / WEIGHTS_NAME)
    if in_chans != config["in_chans"] and config["in_chans"] != 3:
        raise IncompatibleCheckpointError(f"{folder} has {config['in_chans']} input channels; it can be loaded "
                                          f"with in_chans={config['in_chans']} (or 3-channel weights adapted)")
    load_state(model, state, 3 if in_chans == config["in_chans"] else in_chans)  # adapt only 3-channel weights
    data = config["data_config"]
    finish(model, twist, config.get("architecture") or "twist", num_classes, in_chans,
           DataConfig(resolution=data["resolution"], crop_pct=data["crop_pct"],
                      interpolation=data["interpolation"], mean=tuple(data["mean"]), std=tuple(data["std"])),
           label_names=config.get("classes") if num_classes == saved_classes else None)
    return model


def from_hub(repo: str, revision: str | None = None, cache_dir: "str | Path | None" = None,
             **kwargs: Any) -> "nn.Module":
    """Download (or read from the local cache when offline) a saved model from the hub and re-create it."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id = repo[len(HUB_PREFIX):] if repo.startswith(HUB_PREFIX) else repo
    if "@" in repo_id and revision is None:
        repo_id, revision = repo_id.split("@", 1)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise InvalidArgumentError(f"expected 'hf-hub:user/repo' (optionally '@revision'), got {repo!r}")
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME],
                                   cache_dir=str(cache_dir) if cache_dir else None)
    except LocalEntryNotFoundError as exc:
        raise CheckpointNotFoundError(f"{repo_id}@{revision or 'main'} is not in the Hugging Face cache and the hub "
                                      "cannot be reached (HF_HUB_OFFLINE set or no network); download it once "
                                      "online") from exc
    return load_pretrained(folder, **kwargs)


def push_to_hub(model: "nn.Module", repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload tinynet_zoo model", metrics: dict[str, Any] | None = None) -> str:
    """Save the model (safetensors + config.json + card) and upload it to `repo_id`; returns the commit URL."""
    from huggingface_hub import HfApi

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise InvalidArgumentError(f"repo_id must be 'user/name', got {repo_id!r}")
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(model, Path(tmp) / "model", metrics=metrics)
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message)
    return str(getattr(info, "commit_url", info))
