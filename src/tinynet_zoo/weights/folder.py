"""The model folder: model.safetensors + config.json (twist, base, classes, data config) + a model card, which
re-creates any size exactly (`create(folder)`, `load_pretrained`); the unit shared on the Hugging Face hub."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..core.registry import DataConfig
from ..core.twist import Twist
from ..errors import CheckpointNotFoundError, IncompatibleCheckpointError, InvalidArgumentError
from ..files import json_text, umask
from .fetch import read_state_dict

if TYPE_CHECKING:
    import torch.nn as nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = 1


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

    config = model_config(model)
    config.update(version=__version__, metrics=metrics or {}, **(extra or {}))
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(cpu_state(model), str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        (staging / CONFIG_NAME).write_text(json_text(config, indent=1) + "\n")
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


def is_model_folder(path: "str | Path") -> bool:
    """Whether `path` is a folder holding a config.json and model.safetensors (written by save_pretrained)."""
    path = Path(path)
    return path.is_dir() and (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def folder_data_config(config: dict[str, Any]) -> DataConfig:
    """The eval preprocessing recorded in a folder's config.json."""
    data = config["data_config"]
    return DataConfig(resolution=data["resolution"], crop_pct=data["crop_pct"], interpolation=data["interpolation"],
                      mean=tuple(data["mean"]), std=tuple(data["std"]))


def read_folder(folder: "str | Path") -> tuple[dict[str, Any], Twist, dict[str, Any]]:
    """(config, twist, timm-layout tensors) of a saved model folder, each checked."""
    config = read_config(folder)
    try:
        twist = Twist.from_dict(config["twist"])
    except InvalidArgumentError as exc:
        raise IncompatibleCheckpointError(f"{Path(folder) / CONFIG_NAME} has an invalid twist: {exc}") from None
    return config, twist, read_state_dict(Path(folder) / WEIGHTS_NAME)
