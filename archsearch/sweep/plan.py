"""What a run of a sweep must do, worked out from the sweep folder's plain files alone.

A sweep of ``total`` trials may be run in several goes (``sweep``, then ``resume`` after a crash,
a kill or Ctrl-C). Each trial has a stable id, ``t0003`` for the Optuna trial numbered 3 (a
``trial_id`` user attribute overrides it: a retried trial keeps its id under a new Optuna trial).
Given the Optuna study (journal.py), the results tables and the checkpoints on disk,
``plan_run`` decides for every trial the study knows:

- it ended (its row in trials.parquet is completed, stopped or failed): nothing to do. If Optuna
  still has it running (the driver died between the two records), Optuna is told from the row;
- it did not end: it is continued, with the same parameters, from its newest complete
  checkpoint, or from step 0 if none is left (the row's ``note`` says so);
- Optuna has its outcome but the row does not (the driver died between the two records the
  other way round): it is continued without telling Optuna again; from its final checkpoint
  this only repeats the final report;
- it failed with an error (not a divergence) and ``retry_errored``: a new Optuna trial with the
  same parameters and id continues it from its newest checkpoint;
- it was asked but its parameters were not all drawn (the driver stopped inside the space's
  define-by-run ``suggest``; it never reached Tune): it is abandoned, told FAIL for good and left
  out of the count, and a new trial takes its place (for grid search, its grid point).

Then ``total`` minus the trials the study knows are new trials (for grid search, the grid points
no trial has taken). Nothing here reads Ray's state, which is pickled (docs/SWEEPS.md, "Sharing
a sweep folder").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from archsearch.sweep.checkpoints import SavedCheckpoint
from archsearch.sweep.journal import abandon, is_abandoned, tell, trial_key
from archsearch.sweep.status import ENDED, FAILED
from archsearch.sweep.trainable import FAILURE, META


@dataclass(frozen=True)
class Rerun:
    """A trial this run continues."""

    number: int  # the Optuna trial recording it
    trial_id: str
    params: dict[str, Any]
    resume_from: str | None  # checkpoint location; None: step 0
    note: str | None  # shown in the trial's row
    tell: bool  # False: Optuna already has its outcome


@dataclass(frozen=True)
class RunPlan:
    total: int  # trials the sweep runs in all
    ended: int  # trials that ended in earlier runs
    reruns: tuple[Rerun, ...]
    new: int  # trials still to ask Optuna for
    grid: tuple[dict[str, Any], ...] | None  # for grid search, the points the new trials take
    notes: tuple[str, ...]  # what the plan found, one line each, for the user

    @property
    def runs(self) -> int:
        return len(self.reruns) + self.new


def plan_run(study: Any, rows: Mapping[str, Mapping[str, Any]], total: int,
             metrics: Sequence[str], checkpoints: Mapping[str, SavedCheckpoint],
             grid: Sequence[Mapping[str, Any]] | None, retry_errored: bool,
             ask_retry: Any, missing: Callable[[Mapping[str, Any]], list[str]]) -> RunPlan:
    """The plan (module docstring). Brings the study up to date with the tables on the way:
    trials that ended but were never told are told now, trials asked but never fully drawn are
    abandoned, and retried trials are asked.

    ``ask_retry(params)`` asks Optuna for a new trial with exactly ``params``; returns its number.
    ``missing(params)``: the parameters a trial of the space needs that ``params`` lacks.
    """
    from optuna.trial import TrialState

    latest: dict[str, Any] = {}
    notes: list[str] = []
    for frozen in study.get_trials(deepcopy=False):
        if is_abandoned(frozen):
            continue
        trial_id = trial_key(frozen.number, frozen.user_attrs)
        lacks = [] if frozen.state.is_finished() else missing(frozen.params)
        if lacks:
            abandon(study, frozen.number, f"asked as the driver stopped, before {', '.join(lacks)} "
                                          f"could be drawn: it never ran")
            notes.append(f"{trial_id}: abandoned (asked as the driver stopped, without "
                         f"{', '.join(lacks)}); a new trial takes its place")
            continue
        latest[trial_id] = frozen
    reruns: list[Rerun] = []
    ended = 0
    for trial_id, frozen in latest.items():
        row = rows.get(trial_id) or {}
        status = row.get("status")
        if not frozen.state.is_finished():
            if status in ENDED:
                tell(study, frozen.number, list(metrics), _result_of(row))
                notes.append(f"{trial_id}: ended before the driver stopped; Optuna now knows")
                ended += 1
                continue
            reruns.append(_continue(frozen.number, trial_id, frozen.params, row, checkpoints,
                                    tell_optuna=True, notes=notes))
            continue
        if status not in ENDED and frozen.state == TrialState.COMPLETE:
            reruns.append(_continue(frozen.number, trial_id, frozen.params, row, checkpoints,
                                    tell_optuna=False, notes=notes))
            continue
        if (retry_errored and frozen.state == TrialState.FAIL
                and frozen.user_attrs.get("retryable")):
            number = ask_retry(dict(frozen.params), trial_id)
            reruns.append(_continue(number, trial_id, frozen.params, row, checkpoints,
                                    tell_optuna=True, notes=notes))
            continue
        ended += 1
    new = max(0, total - len(latest))
    queue = None
    if grid is not None:
        taken = {_point_key(f.params) for f in latest.values()}
        queue = tuple(dict(p) for p in grid if _point_key(p) not in taken)[:new]
        new = len(queue)
    return RunPlan(total, ended, tuple(reruns), new, queue, tuple(notes))


def _continue(number: int, trial_id: str, params: Mapping[str, Any], row: Mapping[str, Any],
              checkpoints: Mapping[str, SavedCheckpoint], tell_optuna: bool,
              notes: list[str]) -> Rerun:
    saved = checkpoints.get(trial_id)
    reached = int(row.get("step") or 0)
    note = None
    if saved is not None:
        notes.append(f"{trial_id}: continues from its checkpoint at step {saved.step}")
    elif reached > 0:
        note = f"no checkpoint left: restarted from step 0 (it had reached step {reached})"
        notes.append(f"{trial_id}: {note}")
    else:
        notes.append(f"{trial_id}: starts again from step 0 (it had no checkpoint yet)")
    return Rerun(number, trial_id, dict(params), saved.location if saved else None, note,
                 tell_optuna)


def _result_of(row: Mapping[str, Any]) -> dict[str, Any]:
    result = {k: v for k, v in row.items()
              if isinstance(v, int | float) and not isinstance(v, bool)
              and (not isinstance(v, float) or math.isfinite(v))}
    if row.get("status") == FAILED:
        result[f"{META}/{FAILURE}"] = row.get("error") or FAILED
    return result


def _point_key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), repr(v)) for k, v in params.items()))
