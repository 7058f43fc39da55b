"""The supernet as a sweep trial: a function with ``train_proxy``'s signature that the sweep's
Ray Tune trainable (``archsearch.sweep.trainable.run_trial``) calls, so the supernet runs on the
same cluster path, with the same checkpoint copying, retries and resume as any proxy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archsearch.space import SearchSpace, TrialConfig
from archsearch.trainer import Report


@dataclass(frozen=True)
class SupernetTrainFn:
    """Trains the supernet of the whole space (``space_text``), whatever one-pattern trial the
    sweep hands it: that trial only carries the run through Ray. Plain data, so Ray pickles it."""

    space_text: str
    space_file: str
    seed: int

    def __call__(self, trial: TrialConfig, report: Report, workdir: Path, data_cache: Path,
                 resume_from: Path | None = None, device: str = "cpu") -> dict[str, Any]:
        from archsearch.supernet.train import train_supernet

        space = SearchSpace.from_text(self.space_text, self.space_file)
        return train_supernet(space, self.seed, report, workdir, data_cache, resume_from, device)
