"""The search algorithm (Optuna through Ray Tune's OptunaSearch) and the optional ASHA scheduler.

The space is Optuna define-by-run (``SearchSpace.suggest``), so conditional fields (a symbol's
options, asked only when the pattern uses the symbol) work with every sampler. The study lives in
a journal file in the sweep folder, readable by ``optuna-dashboard``.

``SweepSearch`` adds four things to OptunaSearch:
- grid search: each point of ``space.grid()`` is enqueued just before the trial that runs it, from
  a queue saved with the searcher's state, so a resumed sweep runs every point exactly once;
- a trial that diverged (its last report carries ``meta.failed``) or errored is told FAIL, never
  COMPLETE with whatever it reported last;
- each finished Optuna trial gets a ``fidelity`` user attribute (ASHA-stopped trials are COMPLETE
  with partial losses: filter on fidelity 1 before reading a Pareto front off the study);
- on restore, trials the killed driver had asked for but Ray never saved are marked FAIL.
"""

from __future__ import annotations

import math
import random
import warnings
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from archsearch.space import SearchSpace
from archsearch.space.distributions import Choice, IntRange, Uniform
from archsearch.sweep.trainable import FAILED, META

STUDY_NAME = "archsearch"
_FAILED_KEY = f"{META}/{FAILED}"  # Tune flattens nested results with "/"


def num_samples(space: SearchSpace) -> int:
    """Trials to run: search.samples, capped at the grid size for grid search."""
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


def journal_storage(path: Path) -> Any:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


class SweepSearch(OptunaSearch):
    """OptunaSearch with exactly-once grid points, failure-aware tells and orphan cleanup."""

    def __init__(self, space: SearchSpace, journal: Path) -> None:
        objectives = space.spec.objectives
        super().__init__(
            space=space.suggest,
            metric=[o.metric for o in objectives],
            mode=[o.mode for o in objectives],
            sampler=make_sampler(space),
            study_name=STUDY_NAME,
            storage=journal_storage(journal),
        )
        grid = space.spec.search.algorithm == "grid"
        self._grid_queue: list[dict[str, Any]] | None = grid_points(space) if grid else None

    def suggest(self, trial_id: str) -> dict | None:
        if self._grid_queue is not None and trial_id not in self._ot_trials:
            if not self._grid_queue:
                return Searcher.FINISHED
            # Enqueue right before asking: the queue and the trial that pops its point are saved
            # together in the searcher state, so a restore never loses or repeats a point.
            self._ot_study.enqueue_trial(self._grid_queue.pop(0))
        return super().suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if _FAILED_KEY in result or not all(m in result for m in self._metrics()):
            return
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        if self._finished_in_study(ot_trial):  # told before the driver died; Ray re-ran its end
            self._completed_trials.add(trial_id)
            return
        if result and "fidelity" in result:
            ot_trial.set_user_attr("fidelity", float(result["fidelity"]))
        if error or (result is not None and not self._usable(result)):
            from optuna.trial import TrialState

            if result and _FAILED_KEY in result:
                ot_trial.set_user_attr("error", str(result[_FAILED_KEY])[:500])
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
            self._completed_trials.add(trial_id)
            return
        super().on_trial_complete(trial_id, result=result, error=error)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self._fail_orphans()

    # ---------------------------------------------------------------- helpers

    def _metrics(self) -> list[str]:
        return self._metric if isinstance(self._metric, list) else [self._metric]

    def _usable(self, result: dict) -> bool:
        if _FAILED_KEY in result:
            return False
        values = [result.get(m) for m in self._metrics()]
        return all(isinstance(v, int | float) and math.isfinite(v) for v in values)

    def _finished_in_study(self, ot_trial: Any) -> bool:
        frozen = self._ot_study._storage.get_trial(ot_trial._trial_id)
        return frozen.state.is_finished()

    def _fail_orphans(self) -> None:
        """Mark FAIL the study's trials that no saved Ray trial owns (asked after the last save)."""
        from optuna.trial import TrialState

        owned = {t._trial_id for t in self._ot_trials.values()}
        storage = self._ot_study._storage
        for frozen in self._ot_study.get_trials(deepcopy=False,
                                                states=(TrialState.RUNNING, TrialState.WAITING)):
            if frozen._trial_id not in owned:
                storage.set_trial_user_attr(frozen._trial_id, "error",
                                            "orphaned: the sweep driver stopped before saving it")
                storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)


def evaluations_per_trial(space: SearchSpace) -> int:
    """The most reports any trial of the space makes (ASHA's max_t, in training iterations).

    Mirrors ``archsearch.trainer.Budget``: steps = max(1, tokens // (batch_size * seq_len)),
    one evaluation every ``evaluation.every`` steps and one at the end.
    """
    spec = space.spec
    most = 1
    for tokens in _extremes(spec.training.tokens):
        for batch in _extremes(spec.training.batch_size):
            for seq_len in _extremes(spec.data.seq_len):
                for every in _extremes(spec.evaluation.every):
                    steps = max(1, int(tokens) // (int(batch) * int(seq_len)))
                    most = max(most, math.ceil(steps / int(every)))
    return most


def make_scheduler(space: SearchSpace) -> Any | None:
    """ASHA on ``search.asha.metric``, counting evaluations; None without ``search.asha``."""
    asha = space.spec.search.asha
    if asha is None:
        return None
    from ray.tune.schedulers import AsyncHyperBandScheduler

    max_t = evaluations_per_trial(space)
    return AsyncHyperBandScheduler(
        time_attr="training_iteration",  # one iteration = one evaluation report
        metric=asha.metric,
        mode=asha.mode,
        max_t=max_t,
        grace_period=min(asha.grace_period, max_t),
        reduction_factor=asha.reduction_factor,
    )


def _extremes(value: Any) -> list[Any]:
    if isinstance(value, Choice):
        return list(value.values)
    if isinstance(value, IntRange | Uniform):
        return [value.low, value.high]
    return [value]
