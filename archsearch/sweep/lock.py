"""One driver per sweep folder: a second ``sweep``, ``resume`` or ``scale`` on a folder in use is
refused in one line naming the process that holds it.

The lock is an advisory ``flock`` on ``<folder>/.archsearch.lock``, which also holds a line saying
who took it (pid, host, verb, when). The kernel drops a ``flock`` when its process dies, however
it dies, so a lock left by a killed driver is never stale: the next driver simply takes it and
overwrites the line. For a URI storage the lock lives in the local staging folder, so it guards
against a second driver on the same machine only (docs/SWEEPS.md says so).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from archsearch.errors import ArchsearchError

LOCK_FILE = ".archsearch.lock"


class FolderInUse(ArchsearchError):
    """Another live process drives this sweep folder."""


@contextlib.contextmanager
def folder_lock(folder: Path, verb: str, shown_as: str) -> Iterator[None]:
    """Hold the lock of ``folder`` (created if needed) for the duration of the ``with`` block."""
    import fcntl

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # the storage path is a file, or lies under one, or is read-only
        raise ArchsearchError(f"cannot make the sweep folder {shown_as}: {err.strerror} "
                              f"({err.filename}); check --storage / the space's storage") from None
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(f"{shown_as} is in use by {_holder(path)}; wait for it to end or "
                              f"stop that process first") from None
        holder = {"pid": os.getpid(), "host": platform.node(), "verb": verb,
                  "since": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return (f"'archsearch {info['verb']}' (pid {info['pid']} on {info['host']}, "
                f"since {info['since']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
