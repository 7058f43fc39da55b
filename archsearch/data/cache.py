"""Process-safe disk caching: a lock per entry and atomic publication.

Several trials of a sweep may prepare the same data at the same moment, on one machine or on
several sharing a folder. Each cache entry is therefore built under an exclusive file lock (so
the work is done once) and published with an atomic rename (so a reader that does not take the
lock never sees a half-written file). Where ``fcntl`` is missing (Windows) the lock is skipped:
entries are then sometimes built twice, but still never read half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from archsearch.errors import ArchsearchError

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def cache_key(settings: object) -> str:
    """A short stable hash of JSON-able ``settings`` (dict order does not matter)."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=10).hexdigest()


def ensure_dir(path: Path) -> Path:
    """``path`` created if needed; a clear error if it cannot be."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ArchsearchError(f"{path}: cannot create cache folder: {err.strerror or err}") from None
    return path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the ``with`` block."""
    ensure_dir(path.parent)
    with open(path, "a+b") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def new_staging_dir(final: Path) -> Path:
    """A fresh private folder next to ``final`` to build an entry in before publishing it."""
    ensure_dir(final.parent)
    return Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))


def publish_dir(staging: Path, final: Path) -> None:
    """Move a fully written ``staging`` folder to ``final`` in one rename.

    If ``final`` appeared meanwhile (another process without the lock), the staging copy is
    dropped: both hold the same deterministic content.
    """
    try:
        os.replace(staging, final)
    except OSError:
        if final.exists():
            shutil.rmtree(staging, ignore_errors=True)
        else:
            raise
