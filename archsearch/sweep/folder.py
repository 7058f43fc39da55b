"""The sweep folder ``<storage>/<name>/``: where Ray, the Optuna journal and the parquet files live.

Storage is a local (or shared) folder, or a URI pyarrow.fs understands. The driver writes its own
files (parquet, the Optuna journal, the space file) to a local folder first: the sweep folder
itself for a path, or a staging folder for a URI (Optuna's journal needs a local file with
locks), then uploads them. Every write is atomic: a temporary file, then ``os.replace``, so a
reader never sees half a parquet file.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from archsearch.atomic import atomic_write_bytes
from archsearch.errors import ArchsearchError
from archsearch.space.rules import folder_name
from archsearch.sweep.cluster import is_uri
from archsearch.sweep.lock import folder_lock

SPACE_FILE = "space.yaml"
SWEEP_FILE = "sweep.json"
JOURNAL_FILE = "optuna.journal"
TRIALS_FILE = "trials.parquet"
CURVES_FILE = "curves.parquet"
SCALE_FILE = "scale.json"  # present in a scale folder (archsearch scale): its plan
AUTOTUNE_FILE = "autotune.tar"  # Triton autotune choices of the GPU kind the sweep ran on
STAGING_ROOT = Path("~/.cache/archsearch/staging")


@dataclass(frozen=True)
class SweepFolder:
    location: str  # absolute path or URI of <storage>/<name>, as Ray gets it

    @classmethod
    def under(cls, storage: str, name: str) -> SweepFolder:
        """``<storage>/<name>``; ``name`` (the space's or ``--name``) must be one plain folder
        name, so that a sweep never lands outside its storage folder."""
        problem = folder_name(name)
        if problem:
            raise ArchsearchError(f"sweep name {name!r}: {problem}")
        if is_uri(storage):
            return cls(storage.rstrip("/") + "/" + name)
        return cls(str(_local_path(storage) / name))

    @classmethod
    def at(cls, location: str) -> SweepFolder:
        return cls(location.rstrip("/") if is_uri(location) else str(_local_path(location)))

    @property
    def remote(self) -> bool:
        return is_uri(self.location)

    @property
    def name(self) -> str:
        return self.location.rstrip("/").rsplit("/", 1)[-1]

    @property
    def storage(self) -> str:
        """The parent: Ray's ``storage_path``."""
        return self.location.rstrip("/").rsplit("/", 1)[0]

    @property
    def local(self) -> Path:
        """Where the driver writes; computed per machine, so a pickled folder stays valid."""
        if not self.remote:
            return Path(self.location)
        digest = hashlib.sha256(self.location.encode()).hexdigest()[:12]
        return STAGING_ROOT.expanduser() / f"{self.name}-{digest}"

    def exists(self) -> bool:
        """Whether a sweep was already started here (its sweep.json is present)."""
        return self.read_bytes(SWEEP_FILE) is not None

    def write_bytes(self, name: str, data: bytes) -> None:
        """Atomically (re)write ``name``, locally and, for a URI, remotely."""
        atomic_write_bytes(self.local / name, data)
        self.publish(name)

    def publish(self, name: str) -> None:
        """Upload a file the driver wrote locally (no-op for a local sweep folder)."""
        if not self.remote:
            return
        fs, root = _filesystem(self.location)
        with fs.open_output_stream(f"{root}/{name}") as out:  # one PUT: atomic on object stores
            out.write((self.local / name).read_bytes())

    def read_bytes(self, name: str) -> bytes | None:
        """The file's bytes (the remote copy for a URI), or None if it does not exist."""
        if not self.remote:
            path = self.local / name
            return path.read_bytes() if path.is_file() else None
        import pyarrow.fs

        fs, root = _filesystem(self.location)
        if fs.get_file_info(f"{root}/{name}").type != pyarrow.fs.FileType.File:
            return None
        with fs.open_input_stream(f"{root}/{name}") as stream:
            return stream.read()

    @contextlib.contextmanager
    def lock(self, verb: str) -> Iterator[None]:
        """Be this folder's only driver for the ``with`` block (lock.py)."""
        with folder_lock(self.local, verb, self.location):
            yield

    def remove(self, name: str) -> None:
        """Delete ``name`` locally and, for a URI, remotely (absent is fine)."""
        (self.local / name).unlink(missing_ok=True)
        if self.remote:
            import pyarrow.fs

            fs, root = _filesystem(self.location)
            if fs.get_file_info(f"{root}/{name}").type == pyarrow.fs.FileType.File:
                fs.delete_file(f"{root}/{name}")

    def fetch(self, name: str) -> None:
        """Make the local copy of ``name`` current (resume on a URI sweep)."""
        if self.remote:
            data = self.read_bytes(name)
            if data is not None:
                target = self.local / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)


def _local_path(path: str) -> Path:
    path = path.removeprefix("file://")
    return Path(path).expanduser().absolute()


def _filesystem(uri: str):  # -> (pyarrow.fs.FileSystem, str)
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)
