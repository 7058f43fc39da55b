"""The Hugging Face hub, used only when a user names something on it (a model, a tokenizer or a
dataset id) and only when it can be reached.

transformers and datasets retry an unreachable hub for half a minute before they fail with a
paragraph; archsearch asks first (the local cache, then one TCP connection with a short timeout)
and says in one line what to do instead.
"""

from __future__ import annotations

import re
import socket
from urllib.parse import urlparse

from archsearch.errors import ArchsearchError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
"""What a hub repository id looks like (``owner/name``); a local path is checked first."""
HUB_TIMEOUT_S = 3.0


def looks_like_hub_id(spec: str) -> bool:
    return bool(HUB_ID.match(spec)) and not spec.startswith((".", "/", "~"))


def cached_snapshot(repo: str, repo_type: str = "model") -> str | None:
    """The folder of ``repo`` already in the local Hugging Face cache, or None."""
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo, repo_type=repo_type, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means "not usable from the cache"
        return None


def hub_reachable() -> bool:
    """Whether the hub's host answers a TCP connection within ``HUB_TIMEOUT_S`` (False when
    ``HF_HUB_OFFLINE`` is set)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=HUB_TIMEOUT_S):
            return True
    except OSError:
        return False


def require_hub(repo: str, what: str, repo_type: str = "model") -> str:
    """``repo``'s cached folder, else ``repo`` itself when the hub answers; an
    ``ArchsearchError`` naming ``what`` (e.g. "REF", "data.tokenizer") when neither."""
    cached = cached_snapshot(repo, repo_type)
    if cached is not None:
        return cached
    if not hub_reachable():
        kind = "" if repo_type == "model" else f" --repo-type {repo_type}"
        raise ArchsearchError(
            f"{what} {repo}: not a local path, not in the Hugging Face cache, and the hub "
            f"cannot be reached; download it where there is network (hf download {repo}{kind} "
            "--local-dir DIR) and give DIR")
    return repo
