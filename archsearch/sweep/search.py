"""Which trials a run starts, through Ray Tune's ``Searcher`` interface, with Optuna choosing.

The space is Optuna define-by-run (``SearchSpace.suggest``), so conditional fields (a symbol's
options, asked only when the pattern uses the symbol) work with every sampler. The study lives in
the sweep folder's journal (journal.py), readable by ``optuna-dashboard``.

``SweepSearch`` hands Tune, in order:
- the trials the run's plan continues (plan.py): each keeps its Optuna trial, its parameters and
  its stable id, and starts from its newest checkpoint;
- then new trials: asked from Optuna (the sampler sees every earlier trial in the journal), or,
  for grid search, the plan's remaining grid points, each enqueued just before it is asked.
Every trial's config carries ``config[RUN_KEY]``: its stable id, where to resume and a note.

When a trial ends it tells Optuna: its objective values, or FAIL if it diverged or errored (never
COMPLETE with whatever it reported last), and a ``fidelity`` user attribute (ASHA-stopped trials
are COMPLETE with partial losses: filter on fidelity 1 before reading a Pareto front off the
study). Errors are marked ``retryable`` (``resume --retry-errored`` runs them again); a divergence
or a user error is not, since it would fail the same way.
"""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from typing import Any

from ray.tune.search import Searcher

from archsearch.space import SearchSpace
from archsearch.sweep.journal import tell, trial_key
from archsearch.sweep.plan import RunPlan
from archsearch.sweep.trainable import RUN_KEY


def num_samples(space: SearchSpace) -> int:
    """Trials a sweep runs: search.samples, capped at the grid size for grid search."""
    search = space.spec.search
    if search.algorithm == "grid":
        return min(search.samples, len(space.grid()))
    return search.samples


def grid_points(space: SearchSpace) -> list[dict[str, Any]]:
    """The grid points the sweep runs: all of them, or a seeded random subset of ``samples``."""
    points = space.grid()
    search = space.spec.search
    if search.samples < len(points):
        points = random.Random(search.seed).sample(points, search.samples)
    return points


def make_sampler(space: SearchSpace) -> Any:
    import optuna
    from optuna.exceptions import ExperimentalWarning

    search = space.spec.search
    seed = search.seed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # group=True is "experimental"
        if search.algorithm == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
        if search.algorithm == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed)
        if search.algorithm == "gp":
            # symbol options are conditional by design; GP samples those independently
            return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    # random; and grid, where every parameter of every trial comes from an enqueued point
    return optuna.samplers.RandomSampler(seed=seed)


@dataclass
class _Live:
    number: int  # the Optuna trial
    tell: bool  # False: Optuna already knows how it ended


class SweepSearch(Searcher):
    """Continued trials first, then new ones from Optuna; tells Optuna how each ended."""

    def __init__(self, space: SearchSpace, study: Any, plan: RunPlan) -> None:
        super().__init__()
        self._space, self._study = space, study
        self._metrics = [o.metric for o in space.spec.objectives]
        self._continued = list(plan.reruns)
        self._new_left = plan.new
        self._grid = list(plan.grid) if plan.grid is not None else None
        self._live: dict[str, _Live] = {}  # Ray's trial id -> its Optuna trial

    def suggest(self, trial_id: str) -> dict | None:
        if self._continued:
            rerun = self._continued.pop(0)
            self._live[trial_id] = _Live(rerun.number, rerun.tell)
            run = {"trial_id": rerun.trial_id, "resume_from": rerun.resume_from,
                   "note": rerun.note}
            return {**rerun.params, RUN_KEY: run}
        if self._new_left <= 0:
            return Searcher.FINISHED
        if self._grid is not None:
            self._study.enqueue_trial(self._grid.pop(0))
        asked = self._study.ask()
        self._space.suggest(asked)
        self._new_left -= 1
        self._live[trial_id] = _Live(asked.number, True)
        run = {"trial_id": trial_key(asked.number, {}), "resume_from": None, "note": None}
        return {**asked.params, RUN_KEY: run}

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        live = self._live.pop(trial_id, None)
        if live is None or not live.tell:
            return
        tell(self._study, live.number, self._metrics, result, error)
