"""Sweeps: train many proxies with Ray Tune, sample patterns with Optuna, record parquet results.

``run_sweep`` starts one from a search-space file, ``resume_sweep`` continues one from its folder.
docs/SWEEPS.md describes the folder layout, the result columns and running on a cluster.

The runner (and with it Ray) is imported on first use, so that readers of a sweep folder can
import its light modules (``sweep.folder``: file names; ``sweep.status``: trial statuses)
without starting to import Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from archsearch.sweep.runner import (
        SweepError,
        SweepOptions,
        SweepOutcome,
        resume_sweep,
        run_sweep,
    )

__all__ = ["SweepError", "SweepOptions", "SweepOutcome", "resume_sweep", "run_sweep"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from archsearch.sweep import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'archsearch.sweep' has no attribute {name!r}")
