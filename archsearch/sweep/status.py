"""A trial's status in ``trials.parquet``, and when a trial ran its full budget.

The sweep writes these values (``sweep/results.py``); analysis, report, scaling and the CLI read
them. One definition each, here, below all of them:

- ``completed``: the trial reached its full token budget;
- ``stopped``: ASHA ended it early (its losses are from a smaller budget);
- ``failed``: it raised an error or diverged (its ``error`` column says why);
- ``running``: it has reported but not ended (the sweep is running, or was interrupted).
"""

from __future__ import annotations

COMPLETED = "completed"
STOPPED = "stopped"
FAILED = "failed"
RUNNING = "running"
ENDED = (COMPLETED, STOPPED, FAILED)

# The trainer reports fidelity = steps done / budget steps, exactly 1.0 at the end of the
# budget; the tolerance only absorbs float rounding (a trial one step short is not finished).
FULL_BUDGET_TOLERANCE = 1e-9


def is_full_budget(fidelity: float) -> bool:
    """Whether a trial with this ``fidelity`` (fraction of the token budget) ran all of it."""
    return fidelity >= 1.0 - FULL_BUDGET_TOLERANCE


def ended_status(fidelity: float, failed: bool) -> str:
    """The status of a trial that ended: failed, else completed at full budget, else stopped."""
    if failed:
        return FAILED
    return COMPLETED if is_full_budget(fidelity) else STOPPED
