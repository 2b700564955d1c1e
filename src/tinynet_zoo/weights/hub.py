"""Sharing model folders on the Hugging Face hub: `push_to_hub`, and 'hf-hub:user/repo[@revision]' fetched into
the hub's cache (offline from that cache)."""
from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import HubError, InvalidArgumentError
from .folder import CONFIG_NAME, WEIGHTS_NAME, save_pretrained
from .reach import endpoint, hub_download, unreachable_reason

if TYPE_CHECKING:
    import torch.nn as nn

HUB_PREFIX = "hf-hub:"


def parse_repo(spec: str) -> tuple[str, "str | None"]:
    """'hf-hub:user/repo@rev' (or 'user/repo') → ('user/repo', 'rev' or None), checked."""
    repo_id = spec[len(HUB_PREFIX):] if spec.startswith(HUB_PREFIX) else spec
    revision = None
    if "@" in repo_id:
        repo_id, revision = repo_id.split("@", 1)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")) or revision == "":
        raise InvalidArgumentError(f"expected 'hf-hub:user/repo' (optionally '@revision'), got {spec!r}")
    return repo_id, revision


def download_folder(spec: str, cache_dir: "str | Path | None" = None) -> Path:
    """The local snapshot of a hub model folder (config.json and model.safetensors), from the cache when offline."""
    from huggingface_hub import snapshot_download

    repo_id, revision = parse_repo(spec)
    return hub_download(partial(snapshot_download, repo_id, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME]), repo_id,
                        revision, CONFIG_NAME, cache_dir, f"{repo_id}@{revision or 'main'}")


def push_to_hub(model: "nn.Module", repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload tinynet_zoo model", metrics: dict[str, Any] | None = None) -> str:
    """Save the model (safetensors + config.json + card) and upload it to `repo_id`; returns the commit URL."""
    from huggingface_hub import HfApi

    if not isinstance(repo_id, str) or "@" in repo_id:
        raise InvalidArgumentError(f"repo_id must be 'user/name', got {repo_id!r}")
    parse_repo(repo_id)
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(model, Path(tmp) / "model", metrics=metrics)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message)
        except Exception as exc:
            problem = _push_problem(exc)
            if problem is None:
                raise
        else:
            return str(getattr(info, "commit_url", info))
    raise HubError(f"could not push to {repo_id} on the hub ({endpoint()}): {problem}")


def _push_problem(exc: Exception) -> "str | None":
    """What went wrong in an upload, in one line: the hub unreachable, or refused (no token, no write access)."""
    from huggingface_hub.errors import HfHubHTTPError

    reason = unreachable_reason(exc)
    if reason is not None:
        return (f"the hub cannot be reached ({reason}); nothing was uploaded, push again once online"
                + (" and with HF_HUB_OFFLINE unset" if reason == "HF_HUB_OFFLINE is set" else ""))
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, HfHubHTTPError) and status in (401, 403):
        return (f"HTTP {status}, the hub refused the upload: log in with `hf auth login` or pass token= "
                "(a token with write access to the repo)")
    return None
