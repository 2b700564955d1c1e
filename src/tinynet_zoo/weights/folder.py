"""The model folder: model.safetensors + config.json + a model card, which re-creates any size exactly
(`create(folder)`, `load_pretrained`); the unit shared on the Hugging Face hub. config.json is read and written
through `ModelConfig` (weights/model_config.py).

Saving is atomic and locked: the folder is staged whole beside its target (a hidden folder holding a marker file
that proves it is ours) and swapped in while a lock file beside it keeps other saves into the same folder out.
Only hidden folders holding that marker, naming this target, are ever removed as leftovers.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.module import TIMM_BUILTIN
from ..checks import boolean
from ..errors import IncompatibleCheckpointError, InvalidArgumentError, TinyNetZooError
from ..files import ensure_writable_dir, json_text, path_lock, umask
from .fetch import read_state_dict
from .model_config import CONFIG_NAME, ModelConfig, from_model, read_model_config

if TYPE_CHECKING:
    import torch.nn as nn

WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
OUR_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME)  # everything a model folder of ours holds
MARKER = ".tinynet_zoo-save"  # inside a folder while a save stages or swaps it: proves the folder is ours
_EARLIER = re.compile(r"[^.]+|old\.\d{1,7}")  # an earlier release's unnamed markers: .NAME.XXXXXXXX, .NAME.old.PID


def cpu_state(module: "nn.Module", prefix: str = "") -> dict[str, Any]:
    """The module's state as contiguous CPU tensors (what safetensors can write), keys optionally prefixed."""
    return {f"{prefix}{k}": v.detach().contiguous().cpu() for k, v in module.state_dict().items()}


def is_our_folder(path: "str | Path") -> bool:
    """Whether `path` is a model folder written by this package and holds nothing else."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    if CONFIG_NAME not in names or not names <= {*OUR_FILES, MARKER}:
        return False
    try:
        read_model_config(path)
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
        others = ", ".join(sorted(p.name for p in folder.iterdir() if p.name not in (*OUR_FILES, MARKER))[:3])
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
    Saves into the same folder from several processes take turns (a lock file `.NAME.lock` beside it).
    """
    config = from_model(model).with_notes(metrics, extra)
    folder = _absolute(folder)
    overwrite = boolean("overwrite", overwrite)
    _check_destination(folder, overwrite)  # refuse before anything is created
    ensure_writable_dir(folder.parent, "parent folder")
    with path_lock(folder.parent / f".{folder.name}.lock"):
        _recover(folder)
        whole = _check_destination(folder, overwrite) and not _holds_cwd(folder)
        _write(model, config, folder, whole)
    return folder


def _absolute(folder: "str | Path") -> Path:
    """`folder` with ~ expanded, made absolute and "." / ".." taken out (so its name and parent are real ones)."""
    return Path(os.path.abspath(Path(folder).expanduser()))


def _holds_cwd(folder: Path) -> bool:
    """Whether this process works inside `folder` (then its files are replaced in place: the folder itself stays)."""
    if not folder.is_dir():
        return False
    cwd, real = Path.cwd(), folder.resolve()
    return cwd == real or real in cwd.parents


def _mark(path: Path, folder: Path) -> None:
    """Mark `path` as a working folder of a save into `folder`: the marker names that target (and no other)."""
    (path / MARKER).write_text(json_text({"tinynet_zoo_save": folder.name}) + "\n")


def _marks(path: Path, folder: Path) -> bool:
    """Whether hidden `path` beside `folder` is a marked working folder of a save into `folder` (none other's)."""
    if path.is_symlink() or not path.is_dir() or not (path / MARKER).is_file():
        return False
    try:
        named = json.loads((path / MARKER).read_text()).get("tinynet_zoo_save")
    except (OSError, ValueError, AttributeError):  # an earlier release's marker names no target: match its name
        return bool(_EARLIER.fullmatch(path.name[len(folder.name) + 2:]))
    return named == folder.name


def _write(model: "nn.Module", config: ModelConfig, folder: Path, whole: bool) -> None:
    """Stage the three files in a marked hidden folder beside `folder`, then swap it in (or move the files in)."""
    from safetensors.torch import save_file

    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        _mark(staging, folder)
        save_file(cpu_state(model), str(staging / WEIGHTS_NAME), metadata={"format": "pt"})
        (staging / CONFIG_NAME).write_text(json_text(config.to_dict(), indent=1) + "\n")
        (staging / CARD_NAME).write_text(_card(config))
        _share(staging)
        if whole:
            _swap_in(staging, folder)
        else:
            for name in (WEIGHTS_NAME, CARD_NAME, CONFIG_NAME):  # config last: it marks the folder complete
                os.replace(staging / name, folder / name)
    finally:
        if (staging / MARKER).is_file():
            _remove_ours(staging)


def _swap_in(staging: Path, folder: Path) -> None:
    """Put the staged folder at `folder`: onto a missing or empty folder directly, else (our own previous model
    folder, nothing else in it) via a marked hidden copy of the old one that is removed once the new one is in."""
    if folder.exists() and any(folder.iterdir()):
        _mark(folder, folder)  # marked before it is moved aside: `recover` may put it back or drop it
        old = folder.with_name(f".{folder.name}.old.{os.getpid()}")
        os.replace(folder, old)
        os.replace(staging, folder)  # a process killed right before this leaves `old`, which `recover` puts back
        _remove_ours(old)
    else:
        os.replace(staging, folder)  # rename(2) replaces an empty folder
    (folder / MARKER).unlink(missing_ok=True)


def recover(folder: "str | Path") -> None:
    """Undo an interrupted save into `folder` (taking the save lock): put our model folder that was moved aside
    back in place, and drop our own half-written staging copies (hidden folders holding our marker file)."""
    folder = _absolute(folder)
    if folder.parent.is_dir():
        with path_lock(folder.parent / f".{folder.name}.lock"):
            _recover(folder)


def _recover(folder: Path) -> None:
    ours = [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.") and _marks(p, folder)]
    aside = sorted((p for p in ours if p.name.startswith(f".{folder.name}.old.") and is_our_folder(p)),
                   key=lambda p: p.stat().st_mtime)
    if aside and not folder.exists():
        os.replace(aside[-1], folder)
    for leftover in ours:
        if leftover.exists():
            _remove_ours(leftover)
    if (folder / MARKER).is_file() and is_our_folder(folder):
        (folder / MARKER).unlink()


def _remove_ours(folder: Path) -> None:
    """Remove a marked folder of ours, its marker last: interrupted at any point, what is left is still marked (and
    the next save removes it)."""
    try:
        for path in folder.iterdir():
            if path.name != MARKER:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        (folder / MARKER).unlink(missing_ok=True)
        folder.rmdir()
    except OSError:
        pass


def _share(folder: Path) -> None:
    """Give the folder and its files the permissions the umask allows (mkdtemp and safetensors use 0700/0600)."""
    mask = umask()
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.iterdir():
        os.chmod(path, 0o666 & ~mask)


def _card(config: ModelConfig) -> str:
    twist, architecture = config.twist, config.architecture
    lines = ["---", "library_name: timm", "tags: [image-classification, timm, tinynet_zoo, tinynet]", "---", "",
             f"# {architecture}", "",
             f"A tinynet_zoo model: {twist} ({twist.macs / 1e6:.1f}M MACs, {twist.params / 1e6:.2f}M params "
             f"at 1000 classes), {config.num_classes} classes.", "",
             "```python", "import timm",
             *([] if architecture in TIMM_BUILTIN else ["import tinynet_zoo  # registers its names in timm"]),
             'model = timm.create_model("hf-hub:USER/REPO", pretrained=True)', "```", "",
             "or `tinynet_zoo.create(\"hf-hub:USER/REPO\")`.", ""]
    if config.metrics:
        lines += ["Metrics: " + ", ".join(f"{k} = {v}" for k, v in config.metrics.items()), ""]
    return "\n".join(lines)


def is_model_folder(path: "str | Path") -> bool:
    """Whether `path` is a folder holding a config.json and model.safetensors (written by save_pretrained)."""
    path = Path(path)
    return path.is_dir() and (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def weight_shapes(path: "str | Path") -> dict[str, list[int]]:
    """Each tensor's shape in a .safetensors file, from its header alone (no tensor is read)."""
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 2 <= size <= 100_000_000:
                raise ValueError(f"header size {size}")
            header = json.loads(handle.read(size))
        return {k: list(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise IncompatibleCheckpointError(f"{path} is not a readable safetensors file ({type(exc).__name__}: "
                                          f"{exc}); re-save the model") from None


def read_checked(folder: "str | Path") -> ModelConfig:
    """A model folder's config, checked against its weights' shapes (head, classes, input channels)."""
    config = read_model_config(folder)
    shapes = weight_shapes(Path(folder) / WEIGHTS_NAME)
    arch = config.twist.arch
    expected = {"conv_stem.weight": [arch.stem_chs, config.in_chans, 3, 3],
                "conv_head.weight": [arch.head_chs, arch.blocks[-1].out_chs, 1, 1],
                "classifier.weight": [config.num_classes, arch.head_chs] if config.num_classes else None}
    for key, want in expected.items():
        got = shapes.get(key)
        if want is None and got is None:
            continue
        if got != want:
            raise IncompatibleCheckpointError(
                f"{Path(folder) / WEIGHTS_NAME} does not match its config.json: {key} has shape {got}, but the "
                f"config describes {config.twist} with {config.num_classes} classes and {config.in_chans} input "
                f"channels (expected {want}); the folder is inconsistent")
    return config


def read_folder(folder: "str | Path") -> tuple[ModelConfig, dict[str, Any]]:
    """(config, timm-layout tensors) of a saved model folder, each checked."""
    config = read_checked(folder)
    return config, read_state_dict(Path(folder) / WEIGHTS_NAME)
