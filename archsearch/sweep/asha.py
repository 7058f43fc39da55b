"""ASHA (asynchronous successive halving) that a resumed sweep seeds from its own curves.

Ray's ``AsyncHyperBandScheduler`` keeps its rungs in memory and saves them only as a pickle; a
sweep continued from plain files (runner.py) would start with empty rungs and judge resumed trials
against nobody. This scheduler keeps the same rule, and a new run fills its rungs from
``curves.parquet`` first.

The rule (Li et al. 2018; as Ray implements it): rungs sit at ``grace * rf**k`` evaluations, below
``max_t``. When a trial first reaches a rung, it is stopped if its value is worse than the
``1 - 1/rf`` quantile of the values recorded at that rung so far, and its value is recorded. Time
counts evaluations, ``ceil(step / evaluation.every)``, from the trial's own step, so a trial that
resumes at step 40 is at its fifth evaluation, not its first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from archsearch.space import SearchSpace
from archsearch.space.distributions import Choice, IntRange, Uniform
from archsearch.space.trial import Budget
from archsearch.sweep.trainable import RUN_KEY


class Rungs:
    """The bookkeeping of one ASHA bracket, keyed by stable trial ids (no Ray objects)."""

    def __init__(self, grace: int, max_t: int, reduction_factor: float, mode: str) -> None:
        grace = max(1, min(grace, max_t))
        count = int(math.log(max_t / grace) / math.log(reduction_factor) + 1)
        self.milestones = [grace * reduction_factor**k for k in range(count)]
        self.recorded: dict[float, dict[str, float]] = {m: {} for m in self.milestones}
        self.max_t, self.rf = max_t, reduction_factor
        self.sign = 1.0 if mode == "max" else -1.0  # larger score = better

    def decide(self, trial_id: str, t: int, value: float) -> bool:
        """Record a result at ``t`` evaluations; False if the trial should stop."""
        if t >= self.max_t:
            return False  # its full budget: nothing left to decide
        if not isinstance(value, int | float) or not math.isfinite(value):
            return True
        score = self.sign * value
        for milestone in reversed(self.milestones):
            seen = self.recorded[milestone]
            if t < milestone or trial_id in seen:
                continue
            keep = not seen or score >= np.percentile(list(seen.values()),
                                                      (1 - 1 / self.rf) * 100)
            seen[trial_id] = score
            return keep
        return True


class ResumableASHA(FIFOScheduler):
    """Ray Tune scheduler around ``Rungs``; trials are known by the sweep's stable ids."""

    def __init__(self, space: SearchSpace, rungs: Rungs, metric: str) -> None:
        super().__init__()
        self.space, self.rungs, self.watched = space, rungs, metric

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self.watched not in result or "step" not in result:
            return TrialScheduler.CONTINUE
        t = evaluation_index(self.space, trial.config, result["step"])
        keep = self.rungs.decide(trial.config[RUN_KEY]["trial_id"], t, result[self.watched])
        return TrialScheduler.CONTINUE if keep else TrialScheduler.STOP


def evaluation_index(space: SearchSpace, params: Mapping[str, Any], step: int) -> int:
    """How many evaluations a trial has made by ``step`` (the trainer evaluates every
    ``evaluation.every`` steps and at the end)."""
    every = space.resolve(params).evaluation.every
    return math.ceil(int(step) / int(every))


def make_scheduler(space: SearchSpace,
                   history: Iterable[tuple[str, Mapping[str, Any], Mapping[str, Any]]] = (),
                   ) -> ResumableASHA | None:
    """ASHA on ``search.asha.metric``, or None without ``search.asha``.

    ``history``: (trial id, sampled params, curve row) of every earlier evaluation of the sweep,
    in step order per trial: they fill the rungs before any trial of this run reports.
    """
    asha = space.spec.search.asha
    if asha is None:
        return None
    rungs = Rungs(asha.grace_period, evaluations_per_trial(space), asha.reduction_factor,
                  asha.mode)
    for trial_id, params, row in history:
        value, step = row.get(asha.metric), row.get("step")
        if step is None or value is None:
            continue
        try:
            t = evaluation_index(space, params, step)
        except (KeyError, ValueError, TypeError):  # a row from another space version: skip
            continue
        rungs.decide(trial_id, t, value)
    return ResumableASHA(space, rungs, asha.metric)


def evaluations_per_trial(space: SearchSpace) -> int:
    """The most evaluations any trial of the space makes (ASHA's max_t).

    ``Budget.evaluations`` at the extremes of every size the space may sample.
    """
    spec = space.spec
    most = 1
    for tokens in _extremes(spec.training.tokens):
        for batch in _extremes(spec.training.batch_size):
            for seq_len in _extremes(spec.data.seq_len):
                for every in _extremes(spec.evaluation.every):
                    budget = Budget.from_sizes(tokens, batch, seq_len)
                    most = max(most, budget.evaluations(every))
    return most


def _extremes(value: Any) -> list[Any]:
    if isinstance(value, Choice):
        return list(value.values)
    if isinstance(value, IntRange | Uniform):
        return [value.low, value.high]
    return [value]
