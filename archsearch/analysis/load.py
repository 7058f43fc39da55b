"""Read sweep folders into pandas: trials, learning curves, and the search space if present."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from archsearch.analysis import columns as C
from archsearch.errors import ArchsearchError
from archsearch.space import SearchSpace
from archsearch.space.schema import Objective

PathLike = str | Path


@dataclass(frozen=True)
class Sweep:
    """One sweep folder, read."""

    path: Path
    trials: pd.DataFrame  # one row per trial, with a ``sweep`` column
    curves: pd.DataFrame  # one row per evaluation report; empty if the sweep wrote none
    space: SearchSpace | None = field(default=None, repr=False)  # None if no readable YAML

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def objectives(self) -> list[Objective]:
        """The space's objectives; semantic vs copy loss when the space file is missing."""
        if self.space is not None:
            return list(self.space.spec.objectives)
        return [Objective("semantic_loss", "min"), Objective("copy_loss", "min")]


def load_sweep(path: PathLike) -> Sweep:
    """Read one sweep folder; raises ``ArchsearchError`` (one line) if it is not one."""
    folder = _sweep_folder(Path(path))
    trials = _read(folder / C.TRIALS_FILE, folder.name)
    curves_file = folder / C.CURVES_FILE
    curves = _read(curves_file, folder.name) if curves_file.exists() else pd.DataFrame()
    return Sweep(folder, trials, curves, _space(folder))


def load_trials(paths: PathLike | Iterable[PathLike]) -> pd.DataFrame:
    """The trials of one or several sweep folders in one frame, tagged by a ``sweep`` column."""
    return _concat([s.trials for s in _sweeps(paths)])


def load_curves(paths: PathLike | Iterable[PathLike]) -> pd.DataFrame:
    """The learning curves of one or several sweep folders, tagged by a ``sweep`` column."""
    return _concat([s.curves for s in _sweeps(paths)])


def _sweeps(paths: PathLike | Iterable[PathLike]) -> list[Sweep]:
    items: Sequence[PathLike] = [paths] if isinstance(paths, str | Path) else list(paths)
    if not items:
        raise ArchsearchError("no sweep folders given")
    sweeps = [load_sweep(p) for p in items]
    names = [s.name for s in sweeps]
    if len(set(names)) < len(names):
        # Two folders with one name (two storages, one space): tag by the full path instead.
        sweeps = [Sweep(s.path, s.trials.assign(**{C.SWEEP: str(s.path)}),
                        s.curves.assign(**{C.SWEEP: str(s.path)}) if len(s.curves) else s.curves,
                        s.space) for s in sweeps]
    return sweeps


def _sweep_folder(path: Path) -> Path:
    """``path`` itself, or its only sub-folder holding a sweep (a storage folder was given)."""
    if not path.exists():
        raise ArchsearchError(f"{path}: no such folder")
    if not path.is_dir():
        raise ArchsearchError(f"{path}: not a folder (give the sweep folder)")
    if (path / C.TRIALS_FILE).exists():
        return path
    inner = sorted(p.parent for p in path.glob(f"*/{C.TRIALS_FILE}"))
    if len(inner) == 1:
        return inner[0]
    if inner:
        names = ", ".join(p.name for p in inner)
        raise ArchsearchError(f"{path}: holds several sweeps ({names}); give one of them")
    raise ArchsearchError(f"{path}: no {C.TRIALS_FILE} here (not a sweep folder, or no trial "
                          "has finished yet)")


def _read(file: Path, sweep: str) -> pd.DataFrame:
    import pyarrow as pa

    try:
        frame = pd.read_parquet(file)
    except (OSError, ValueError, pa.ArrowException) as err:  # truncated or not parquet
        raise ArchsearchError(f"{file}: cannot read: {err}") from None
    frame.insert(0, C.SWEEP, sweep)
    return frame


def _space(folder: Path) -> SearchSpace | None:
    """The search space the sweep wrote beside its results, if one loads."""
    for pattern in C.SPACE_GLOBS:
        for file in sorted(folder.glob(pattern)):
            try:
                return SearchSpace.load(file)
            except (ArchsearchError, OSError, ValueError):
                continue  # another YAML (a config dump): keep looking
    return None


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f.columns)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
