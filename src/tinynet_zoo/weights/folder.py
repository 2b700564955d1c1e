"""The model folder: model.safetensors + config.json + a model card, which re-creates any size exactly
(`create(folder)`, `load_pretrained`); the unit shared on the Hugging Face hub.

config.json is timm's hub format (format 2): `architecture`, `num_classes`, `num_features`, `label_names`,
`model_args` and a `pretrained_cfg` holding only keys timm accepts, so `timm.create_model("local-dir:DIR")` and
`("hf-hub:user/repo")` load it; the zoo's twist record sits beside them. Catalogued models timm also registers
(tinynet_a..e, efficientnet_b0, efficientnet_lite0) are written under that name and load with plain timm; any other
twist is `tinynet_twist` with the twist in `model_args` (timm needs `tinynet_zoo.register_timm()` for it). Folders of
format 1 (the zoo's own keys: twist, in_chans, classes, data_config) are still read.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..core.module import TIMM_BUILTIN, TWIST_ARCHITECTURE, catalogued, timm_architecture
from ..core.registry import DataConfig
from ..core.twist import Twist
from ..checks import boolean
from ..errors import CheckpointNotFoundError, IncompatibleCheckpointError, InvalidArgumentError, TinyNetZooError
from ..files import ensure_writable_dir, json_text, umask
from .fetch import read_state_dict

if TYPE_CHECKING:
    import torch.nn as nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
OUR_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)  # everything a model folder of ours holds
FORMAT = 2  # 2: timm's hub config plus the twist; 1: the zoo's own keys (still read)


def _pool_type(model: "nn.Module") -> str:
    return getattr(getattr(model, "global_pool", None), "pool_type", "avg")


def model_config(model: "nn.Module") -> dict[str, Any]:
    """What config.json records for a model made by `tinynet_zoo.create` (or fine-tuned from one): timm's hub
    config (architecture, num_classes, num_features, label_names, model_args, pretrained_cfg) and the twist."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if "twist" not in cfg:
        raise InvalidArgumentError("only models made by tinynet_zoo.create can be saved this way (their "
                                   "pretrained_cfg records the twist); got one without it")
    if not hasattr(model, "classifier"):
        raise InvalidArgumentError("save the classifier model, not a features_only backbone")
    size, labels = cfg["input_size"], cfg.get("label_names")
    if labels is not None and len(labels) != model.num_classes:
        raise InvalidArgumentError(f"the model has {model.num_classes} classes but {len(labels)} label names; "
                                   "give one name per class")
    twist = Twist.from_dict(cfg["twist"])
    architecture = timm_architecture(cfg.get("architecture"), twist)
    model_args: dict[str, Any] = {"twist": twist.to_dict()} if architecture == TWIST_ARCHITECTURE else {}
    if size[0] != 3:
        model_args["in_chans"] = size[0]
    if _pool_type(model) != "avg":
        model_args["global_pool"] = _pool_type(model)
    config: dict[str, Any] = {"architecture": architecture, "num_classes": model.num_classes,
                              "num_features": model.num_features}
    if labels is not None:
        config["label_names"] = list(labels)
    if model_args:
        config["model_args"] = model_args
    config["pretrained_cfg"] = {
        "input_size": list(size), "interpolation": cfg["interpolation"], "crop_pct": cfg["crop_pct"],
        "crop_mode": "center", "mean": list(cfg["mean"]), "std": list(cfg["std"]), "num_classes": model.num_classes,
        "fixed_input_size": False, "first_conv": "conv_stem", "classifier": "classifier"}
    return {**config, "library": "tinynet_zoo", "format": FORMAT, "twist": twist.to_dict()}


def cpu_state(module: "nn.Module", prefix: str = "") -> dict[str, Any]:
    """The module's state as contiguous CPU tensors (what safetensors can write), keys optionally prefixed."""
    return {f"{prefix}{k}": v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def is_our_folder(path: "str | Path") -> bool:
    """Whether `path` is a model folder written by this package and holds nothing else."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    if CONFIG_NAME not in names or not names <= set(OUR_FILES):
        return False
    try:
        read_config(path)
    except TinyNetZooError:
        return False
    return True


def _check_destination(folder: Path, overwrite: bool) -> bool:
    """Refuse a destination holding anything but our own model folder (unless overwrite); True if it is ours
    or empty (then it is replaced whole), False if overwrite writes our files among the user's."""
    if folder.is_symlink():
        raise InvalidArgumentError(f"{folder} is a symbolic link; save into the folder it points to instead")
    if folder.exists() and not folder.is_dir():
        raise InvalidArgumentError(f"{folder} is a file, not a folder; choose a new or empty folder path "
                                   "(nothing was written)")
    if not folder.exists() or not any(folder.iterdir()) or is_our_folder(folder):
        return True
    if not overwrite:
        others = ", ".join(sorted(p.name for p in folder.iterdir() if p.name not in OUR_FILES)[:3])
        raise InvalidArgumentError(
            f"{folder} holds files that are not a tinynet_zoo model folder (e.g. {others or 'a foreign config.json'}"
            f"); choose a new or empty folder, or pass overwrite=True (--overwrite) to replace only "
            f"{', '.join(OUR_FILES)} there (nothing was written)")
    return False


def save_pretrained(model: "nn.Module", folder: "str | Path", metrics: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write model.safetensors, config.json and a model card README.md into `folder`.

    A new or empty folder, or a model folder this package wrote before, is replaced atomically; a folder
    holding anything else is refused unless overwrite=True, which replaces only those three files there.
    """
    from safetensors.torch import save_file

    config = model_config(model)
    for name, value in (("metrics", metrics), ("extra", extra)):
        if value is not None and not isinstance(value, dict):
            raise InvalidArgumentError(f"{name} must be a dict of JSON values, got {value!r}")
    config.update(version=__version__, metrics=metrics or {}, **(extra or {}))
    folder = Path(folder)
    recover(folder)
    whole = _check_destination(folder, boolean("overwrite", overwrite))
    ensure_writable_dir(folder.parent, "parent folder")
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_file(cpu_state(model), str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        (staging / CONFIG_NAME).write_text(json_text(config, indent=1) + "\n")
        (staging / CARD_NAME).write_text(_card(config))
        _share(staging)
        if whole:
            _swap_in(staging, folder)
        else:
            for name in (WEIGHTS_NAME, CARD_NAME, CONFIG_NAME):  # config last: it marks the folder complete
                os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _swap_in(staging: Path, folder: Path) -> None:
    """Put the staged folder at `folder`: onto a missing or empty folder directly, else (our own previous model
    folder, nothing else in it) via a hidden copy of the old one that is removed once the new one is in place."""
    if not folder.exists() or not any(folder.iterdir()):
        os.replace(staging, folder)  # rename(2) replaces an empty folder
        return
    old = folder.with_name(f".{folder.name}.old.{os.getpid()}")
    os.replace(folder, old)
    os.replace(staging, folder)  # a process killed right before this leaves `old`, which `recover` puts back
    shutil.rmtree(old, ignore_errors=True)


def recover(folder: "str | Path") -> None:
    """Undo an interrupted swap: put our model folder that was moved aside back in place, and drop our own
    half-written staging copies (hidden folders holding nothing but model-folder files)."""
    folder = Path(folder)
    if not folder.parent.is_dir():
        return
    ours = [p for p in folder.parent.glob(f".{folder.name}.*") if p.is_dir() and not p.is_symlink()
            and {c.name for c in p.iterdir()} <= set(OUR_FILES)]
    aside = sorted((p for p in ours if p.name.startswith(f".{folder.name}.old.") and is_our_folder(p)),
                   key=lambda p: p.stat().st_mtime)
    if aside and not folder.exists():
        os.replace(aside[-1], folder)
    for leftover in ours:
        shutil.rmtree(leftover, ignore_errors=True)


def _share(folder: Path) -> None:
    """Give the folder and its files the permissions the umask allows (mkdtemp and safetensors use 0700/0600)."""
    mask = umask()
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.iterdir():
        os.chmod(path, 0o666 & ~mask)


def _card(config: dict[str, Any]) -> str:
    twist = Twist.from_dict(config["twist"])
    architecture = config["architecture"]
    lines = ["---", "library_name: timm", "tags: [image-classification, timm, tinynet_zoo, tinynet]", "---", "",
             f"# {architecture}", "",
             f"A tinynet_zoo model: {twist} ({twist.macs / 1e6:.1f}M MACs, {twist.params / 1e6:.2f}M params "
             f"at 1000 classes), {config['num_classes']} classes.", "",
             "```python", "import timm",
             *([] if architecture in TIMM_BUILTIN else ["import tinynet_zoo  # registers its names in timm"]),
             'model = timm.create_model("hf-hub:USER/REPO", pretrained=True)', "```", "",
             "or `tinynet_zoo.create(\"hf-hub:USER/REPO\")`.", ""]
    if config.get("metrics"):
        lines += ["Metrics: " + ", ".join(f"{k} = {v}" for k, v in config["metrics"].items()), ""]
    return "\n".join(lines)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CheckpointNotFoundError(f"{path} is missing: not a folder written by save_pretrained") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IncompatibleCheckpointError(f"{path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise IncompatibleCheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_config(folder: "str | Path") -> dict[str, Any]:
    """The config.json of a saved model folder, checked, in the zoo's terms whichever format wrote it: `twist`,
    `architecture` (the zoo's name, or 'twist'), `num_classes`, `in_chans`, `classes`, `data_config`,
    `model_kwargs` (besides everything the file holds)."""
    path = Path(folder) / CONFIG_NAME
    config = _load_json(path)
    if not isinstance(config, dict) or config.get("library") != "tinynet_zoo" or "twist" not in config:
        raise IncompatibleCheckpointError(f"{path} was not written by tinynet_zoo (no library/twist fields)")
    version = config.get("format", 1)
    if not isinstance(version, int) or version > FORMAT:
        raise IncompatibleCheckpointError(f"{path} has format {version!r}; this tinynet_zoo reads up to "
                                          f"{FORMAT}: pip install -U tinynet-zoo")
    if version >= 2:
        config = _from_timm_config(config, path)
    classes = config.get("classes")
    if classes is not None and len(classes) != config.get("num_classes"):
        raise IncompatibleCheckpointError(f"{path} lists {len(classes)} class names for {config.get('num_classes')} "
                                          "classes; the folder is inconsistent")
    return config


def _from_timm_config(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """A format-2 (timm hub) config in the zoo's terms, its architecture checked against its twist."""
    try:
        twist, cfg, args = Twist.from_dict(config["twist"]), config["pretrained_cfg"], config.get("model_args") or {}
        size = cfg["input_size"]
        view = dict(config, in_chans=args.get("in_chans", size[0]), classes=config.get("label_names"),
                    data_config=dict(resolution=size[-1], crop_pct=cfg["crop_pct"], interpolation=cfg["interpolation"],
                                     mean=cfg["mean"], std=cfg["std"]),
                    model_kwargs={k: args[k] for k in ("global_pool",) if k in args})
    except (KeyError, TypeError, IndexError, AttributeError, InvalidArgumentError) as exc:
        raise IncompatibleCheckpointError(f"{path} is not a valid model config ({type(exc).__name__}: {exc})") from None
    architecture = config.get("architecture")
    if architecture == TWIST_ARCHITECTURE and args.get("twist") == config["twist"]:
        return dict(view, architecture="twist")
    entry = catalogued(architecture, twist)
    if entry is None or architecture != entry.timm_name:
        raise IncompatibleCheckpointError(f"{path}: architecture {architecture!r} (with model_args {args}) does not "
                                          f"build its twist {twist}; the folder is inconsistent")
    return dict(view, architecture=entry.name)


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
