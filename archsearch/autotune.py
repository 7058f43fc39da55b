"""Triton's autotune choices, paid for once per node and carried to the next cluster.

fla's GDN kernels are Triton kernels that autotune on first use of each shape: minutes in every
trial process on a fresh machine (docs/GPU.md), because every trial is a new process and Triton
keeps autotune results only in memory unless told otherwise. With ``TRITON_CACHE_AUTOTUNING=1``
it writes them (a ``*.autotune.json`` of about 1-5 KB per kernel and shape) into its cache folder,
and every process of the node that uses the same folder reuses them. So a GPU trial calls
``use_node_cache`` before its first kernel: the second trial of a shape on a node starts without
tuning. Triton's default folder (``~/.triton/cache``) is already node-local and shared by a user's
processes; ``TRITON_CACHE_DIR`` set by the user is kept.

Another machine of the same GPU kind can start warm: ``pack_autotune`` packs the choices into a
tar (a sweep on a local GPU machine leaves one in its folder, docs/GPU.md), the driver reads it
with ``read_archive`` (a few KB, so it travels to every node with the trial's set-up), and
``use_node_cache(seed=...)`` unpacks it. The archive is data from elsewhere, so only regular
``*.autotune.json`` files with plain relative names are taken from it; nothing else in it is
extracted. Choices made on another GPU kind are harmless: Triton files them under a key that
includes the GPU's architecture, so they are never looked up.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path, PurePosixPath

from archsearch.errors import ArchsearchError

AUTOTUNE_ENV = "TRITON_CACHE_AUTOTUNING"
CACHE_DIR_ENV = "TRITON_CACHE_DIR"
SUFFIX = ".autotune.json"
MAX_FILE_BYTES = 1 << 20  # one kernel's choices are a few KB; anything larger is not one


def cache_dir() -> Path:
    """The Triton cache folder this process compiles into: $TRITON_CACHE_DIR or Triton's default."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".triton" / "cache")


def use_node_cache(seed: bytes | None = None) -> Path:
    """Keep autotune choices in the node's Triton cache; optionally seed it from a saved archive.

    Call before the first Triton kernel runs in this process. Returns the cache folder.
    """
    os.environ[AUTOTUNE_ENV] = "1"
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if seed:
        seed_cache(seed, folder)
    return folder


def read_archive(path: str | Path) -> bytes:
    """The bytes of an autotune archive, checked to be a readable tar; a one-line error if not."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ArchsearchError(f"{path}: not a readable autotune archive ({err})") from None
    return checked_archive(data, str(path))


def checked_archive(data: bytes, name: str) -> bytes:
    """``data`` if it is a readable tar; a one-line error naming ``name`` if not."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.getmembers()
    except (OSError, tarfile.TarError) as err:
        raise ArchsearchError(f"{name}: not a readable autotune archive ({err})") from None
    return data


def seed_cache(archive: bytes, folder: Path) -> int:
    """Copy the autotune choices in ``archive`` into ``folder`` (existing files win); how many."""
    added = 0
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            name = _safe_name(member)
            if name is None or (folder / name).exists():
                continue
            source = tar.extractfile(member)
            if source is None:
                continue
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + f".part{os.getpid()}")
            partial.write_bytes(source.read())
            partial.replace(target)  # another trial reading the cache never sees half a file
            added += 1
    return added


def pack_autotune(folder: Path | None = None) -> bytes | None:
    """Every ``*.autotune.json`` under ``folder`` (default: this process's cache) as a tar.

    None when there is none (a CPU sweep, or kernels not yet tuned).
    """
    folder = cache_dir() if folder is None else folder
    files = sorted(p for p in folder.rglob(f"*{SUFFIX}") if p.is_file()) if folder.is_dir() else []
    if not files:
        return None
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in files:
            tar.add(path, arcname=path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _safe_name(member: tarfile.TarInfo) -> str | None:
    """The member's relative name if it is a plain autotune file, else None (it is skipped)."""
    path = PurePosixPath(member.name)
    if (not member.isfile() or member.size > MAX_FILE_BYTES or path.is_absolute()
            or ".." in path.parts or not path.name.endswith(SUFFIX)):
        return None
    parts = [p for p in path.parts if p not in ("", ".")]
    return str(PurePosixPath(*parts)) if parts else None
