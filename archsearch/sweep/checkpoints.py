"""Trial checkpoints in a sweep folder, found again by a later run without any Ray state.

Each run of a sweep (the first ``sweep``, then each ``resume``) is its own Ray experiment in
``runs/<NNN>/``, with one folder per trial named by the trial's stable id, holding the checkpoint
folders Tune copied there (``runs/002/t0003/checkpoint_000001/``). Next to the trainer's own files
each checkpoint holds ``sweep_report.json``: the metrics of the report it came with and the size
of every file in it. A checkpoint whose files are missing or of another size (a copy cut short by
a kill) is not used; the newest complete one is.

Nothing here unpickles anything: the report is JSON and the trainer loads its weights with
safetensors and ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archsearch.sweep.cluster import is_uri

REPORT_FILE = "sweep_report.json"
RUNS_DIR = "runs"
_RUN_NAME = re.compile(r"^\d{3,}$")


@dataclass(frozen=True)
class SavedCheckpoint:
    location: str  # a path or URI of the checkpoint folder
    step: int
    metrics: dict[str, Any]


def write_report(folder: Path, metrics: dict[str, Any]) -> None:
    """Write ``sweep_report.json`` into a checkpoint folder the trainer has finished writing."""
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir())
             if p.is_file() and p.name != REPORT_FILE}
    (folder / REPORT_FILE).write_text(json.dumps({"metrics": metrics, "files": files}))


def read_report(folder: Path) -> dict[str, Any]:
    """The metrics a local checkpoint folder was saved with ({} if it has no readable report)."""
    try:
        report = json.loads((folder / REPORT_FILE).read_text())
        return dict(report["metrics"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def next_run_name(location: str) -> str:
    """The name of the next run folder under ``<location>/runs``: 001, 002, ..."""
    numbers = [int(name) for name in _list_dir(f"{location}/{RUNS_DIR}") if _RUN_NAME.match(name)]
    return f"{max(numbers, default=0) + 1:03d}"


def latest_checkpoints(location: str) -> dict[str, SavedCheckpoint]:
    """trial id -> its newest complete checkpoint, over every run of the sweep at ``location``."""
    best: dict[str, SavedCheckpoint] = {}
    for trial_id, saved in _complete_checkpoints(location):
        if trial_id not in best or saved.step > best[trial_id].step:
            best[trial_id] = saved
    return best


def all_reports(location: str) -> list[tuple[str, dict[str, Any]]]:
    """(trial id, metrics) of the report saved with every complete checkpoint of the sweep."""
    return [(trial_id, saved.metrics) for trial_id, saved in _complete_checkpoints(location)]


def _complete_checkpoints(location: str) -> list[tuple[str, SavedCheckpoint]]:
    folders: dict[tuple[str, str, str], dict[str, int]] = {}
    for relative, size in _list_files(f"{location}/{RUNS_DIR}"):
        parts = relative.split("/")
        if len(parts) == 4 and _RUN_NAME.match(parts[0]):
            folders.setdefault((parts[0], parts[1], parts[2]), {})[parts[3]] = size
    found = []
    for (run, trial_id, name), sizes in sorted(folders.items()):
        saved = _complete(f"{location}/{RUNS_DIR}/{run}/{trial_id}/{name}", sizes)
        if saved is not None:
            found.append((trial_id, saved))
    return found


def _complete(where: str, sizes: dict[str, int]) -> SavedCheckpoint | None:
    if REPORT_FILE not in sizes:
        return None
    try:
        report = json.loads(_read_bytes(f"{where}/{REPORT_FILE}"))
        files, metrics = dict(report["files"]), dict(report["metrics"])
        step = int(metrics["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if any(sizes.get(name) != size for name, size in files.items()):
        return None
    return SavedCheckpoint(where, step, metrics)


# ------------------------------------------------------------------ local paths or URIs


def _list_dir(location: str) -> list[str]:
    if not is_uri(location):
        path = Path(location)
        return [p.name for p in path.iterdir()] if path.is_dir() else []
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(location)
    selector = pyarrow.fs.FileSelector(root, allow_not_found=True)
    return [info.base_name for info in fs.get_file_info(selector)]


def _list_files(location: str) -> list[tuple[str, int]]:
    """(path relative to ``location``, size) of every file below it."""
    if not is_uri(location):
        root = Path(location)
        if not root.is_dir():
            return []
        return [(p.relative_to(root).as_posix(), p.stat().st_size)
                for p in root.rglob("*") if p.is_file()]
    import pyarrow.fs

    fs, base = pyarrow.fs.FileSystem.from_uri(location)
    selector = pyarrow.fs.FileSelector(base, recursive=True, allow_not_found=True)
    return [(info.path[len(base):].lstrip("/"), info.size) for info in fs.get_file_info(selector)
            if info.type == pyarrow.fs.FileType.File]


def _read_bytes(location: str) -> bytes:
    if not is_uri(location):
        return Path(location).read_bytes()
    import pyarrow.fs

    fs, path = pyarrow.fs.FileSystem.from_uri(location)
    with fs.open_input_stream(path) as stream:
        return stream.read()
