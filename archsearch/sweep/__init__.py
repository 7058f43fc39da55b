"""Sweeps: train many proxies with Ray Tune, sample patterns with Optuna, record parquet results.

``run_sweep`` starts one from a search-space file, ``resume_sweep`` continues one from its folder.
docs/SWEEPS.md describes the folder layout, the result columns and running on a cluster.
"""

from archsearch.sweep.runner import SweepError, SweepOptions, SweepOutcome, resume_sweep, run_sweep

__all__ = ["SweepError", "SweepOptions", "SweepOutcome", "resume_sweep", "run_sweep"]
