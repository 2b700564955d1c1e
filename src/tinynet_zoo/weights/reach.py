"""Reaching the Hugging Face hub: one request without retries says whether the hub answers; when it does not, the
files come from the hub's cache or a clear error names the hub, the cache and how to work offline (instead of
huggingface_hub's retries with back-off, about half a minute per file).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from ..errors import CheckpointNotFoundError

# modules whose exceptions are a failed connection, not a bad request
_TRANSPORT_MODULES = ("httpx", "httpx2", "httpcore", "requests", "urllib3")
OFFLINE_HELP = ("to work offline, fetch it once with network access, then set HF_HUB_OFFLINE=1 "
                "(HF_ENDPOINT picks another hub or mirror)")


def offline() -> bool:
    """Whether HF_HUB_OFFLINE asks for the cache only."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def endpoint() -> str:
    """The hub's address (HF_ENDPOINT, https://huggingface.co by default)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def cache_dir_of(cache_dir: "str | Path | None") -> str:
    """The hub cache a download uses: `cache_dir`, or HF_HUB_CACHE."""
    from huggingface_hub import constants

    return str(cache_dir) if cache_dir else constants.HF_HUB_CACHE


def unreachable_reason(exc: BaseException) -> "str | None":
    """A short reason when `exc` means a server could not be reached (no network, refused, timed out, HTTP 5xx);
    None for any other error."""
    import socket
    import urllib.error

    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set"
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return f"HTTP {status}" if status is not None and (status >= 500 or status in (408, 429)) else None
    if isinstance(exc, BrokenPipeError):  # our own output went to a closed pipe: no server involved
        return None
    transport = type(exc).__module__.split(".")[0] in _TRANSPORT_MODULES
    if transport or isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror, urllib.error.URLError)):
        return f"{type(exc).__name__}: {str(exc).strip() or 'no answer'}"
    return None


def probe(repo_id: str, filename: str, revision: "str | None") -> "str | None":
    """One request for a file's metadata, no retries: None when the hub answers, else why it could not be reached."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision))
    except Exception as exc:  # a missing repo or file is the download's own error to give
        return unreachable_reason(exc)
    return None


def hub_download(download: Callable[..., str], repo_id: str, revision: "str | None", probe_file: str,
                 cache_dir: "str | Path | None", what: str, how: str = OFFLINE_HELP) -> Path:
    """Run `download(revision=, cache_dir=, local_files_only=)` (hf_hub_download or snapshot_download bound to a
    repo): from the hub when it answers a first request, else from the cache, else a CheckpointNotFoundError
    saying `what` is missing, naming the hub, the cache and `how` to get it."""
    reason = "HF_HUB_OFFLINE is set" if offline() else probe(repo_id, probe_file, revision)
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError
    from huggingface_hub.errors import RevisionNotFoundError

    missing = None
    try:
        return Path(download(revision=revision, cache_dir=str(cache_dir) if cache_dir else None,
                             local_files_only=reason is not None))
    except LocalEntryNotFoundError:
        reason = reason or "no answer"
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        missing = str(exc).strip().splitlines()[0]
    except Exception as exc:
        reason = unreachable_reason(exc)
        if reason is None:
            raise
    if missing is not None:  # the hub answered: no such repo, revision or file (or private without a token)
        raise CheckpointNotFoundError(f"{what}: the hub ({endpoint()}) has no such repo, revision or file "
                                      f"({missing}); check the name, or log in for a private repo")
    raise CheckpointNotFoundError(f"{what} is not in the Hugging Face cache ({cache_dir_of(cache_dir)}) and the hub "
                                  f"({endpoint()}) cannot be reached ({reason}); {how}")
