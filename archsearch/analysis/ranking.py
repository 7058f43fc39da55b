"""Rank the patterns of a sweep: the best weighted score, and the knee of the Pareto front.

``rank_patterns`` works on a trials table (one proxy size, as measured); what the ``recommend``
verb prints is ``scaling.recommend``, which uses this ranking for a sweep folder and power-law
fits for a scale folder.

Weighted score: per-pattern means (``by_pattern``) of each objective are min-max normalised
across the patterns to [0, 1] with 0 the best (a maximised objective is flipped), then summed
with the weights (default equal; they are rescaled to sum to 1). Lowest score is best, but it
is a winner only when the seeds resolve it: each trial gets a score with the same normalisation
constants (the patterns' means of a trial's scores are then exactly their scores), and
``resolution.resolve`` compares them with the pooled seed noise. ``PatternRanking.resolved``
says whether the best is ahead of every other pattern; ``tied`` lists those it cannot be told
apart from. Each objective is resolved the same way on its own.

Knee: on the Pareto front of the per-pattern means, normalised so that each objective spans
[0, 1] over the front, the point farthest from the hyperplane through the front's extreme points
(the best point of each objective), on the side of the ideal point. For two objectives that is
the classic "maximum distance to the line between the two ends of the front": the point where
trading one objective for the other stops paying. With no interior point (a front of at most one
point per objective, or extremes that do not span a hyperplane) it falls back to the point
closest to the ideal point.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from archsearch.analysis import columns as C
from archsearch.analysis.aggregate import by_pattern
from archsearch.analysis.intervals import Interval
from archsearch.analysis.pareto import (
    ObjectiveLike,
    _costs,
    as_objectives,
    full_budget,
    pareto_front,
)
from archsearch.analysis.resolution import Resolution, resolve, statement
from archsearch.errors import ArchsearchError
from archsearch.space.schema import Objective


@dataclass(frozen=True)
class PatternRanking:
    """The patterns ranked by weighted score, best first, and the evidence. ``pattern`` is the
    best *measured*: a winner only when ``resolved``."""

    pattern: str
    score: float  # weighted normalised score, 0 = best on every objective
    weights: dict[str, float]  # by metric, summing to 1
    runner_up: str | None
    margin: float  # runner-up's score minus the best's (NaN without a runner-up)
    knee: str | None  # the knee of the front (None when the front is empty)
    on_front: bool  # whether the best is on the Pareto front of the pattern means
    differences: dict[str, float]  # runner-up minus best, per objective, in the metric's units
    # per-pattern means, normalised objectives, score, rank; intervals and statuses (below)
    table: pd.DataFrame = field(repr=False)
    resolution: Resolution | None = field(default=None, repr=False)  # of the weighted score
    by_objective: dict[str, Resolution] = field(default_factory=dict, repr=False)
    difference_intervals: dict[str, Interval] = field(default_factory=dict)  # runner-up - best

    @property
    def resolved(self) -> bool:
        """Whether the seeds tell the best score apart from every other pattern's."""
        return self.resolution is not None and self.resolution.resolved

    @property
    def tied(self) -> list[str]:
        """Patterns whose score cannot be told apart from the best's (the best first)."""
        return self.resolution.tied if self.resolution is not None else [self.pattern]

    @property
    def margin_interval(self) -> Interval | None:
        """The runner-up's score minus the best's, with its interval (None without one)."""
        if self.resolution is None or self.runner_up is None:
            return None
        return self.resolution.difference(self.runner_up, self.pattern)

    def statement(self) -> str:
        """The verdict in one sentence (``resolution.statement`` on the weighted score)."""
        assert self.resolution is not None
        return statement(self.resolution, "the weighted score")


def weighted_scores(
    table: pd.DataFrame,
    objectives: Sequence[ObjectiveLike],
    weights: Mapping[str, float] | Sequence[float] | None = None,
) -> pd.DataFrame:
    """``table`` (one row per candidate) with ``norm.<metric>``, ``score`` and ``rank`` columns,
    sorted best first. Rows missing an objective are dropped."""
    objs = as_objectives(objectives)
    w = _weights(objs, weights)
    metrics = [o.metric for o in objs]
    usable = table.dropna(subset=metrics).copy()
    costs = _costs(usable, objs)
    lo, span = _normaliser(costs)
    normalised = (costs - lo) / span if len(costs) else costs
    for i, metric in enumerate(metrics):
        usable[f"norm.{metric}"] = normalised[:, i] if len(costs) else []
    usable["score"] = normalised @ np.array([w[m] for m in metrics]) if len(costs) else []
    usable = usable.sort_values("score", kind="stable")
    usable["rank"] = np.arange(1, len(usable) + 1)
    return usable


def trial_scores(
    trials: pd.DataFrame,
    table: pd.DataFrame,
    objectives: Sequence[ObjectiveLike],
    weights: Mapping[str, float] | Sequence[float] | None = None,
) -> pd.Series:
    """Each trial's weighted score, normalised with the constants of ``table`` (the per-pattern
    means ``weighted_scores`` normalises), so that a pattern's mean trial score is its score.
    NaN where a trial misses an objective."""
    objs = as_objectives(objectives)
    w = _weights(objs, weights)
    metrics = [o.metric for o in objs]
    lo, span = _normaliser(_costs(table.dropna(subset=metrics), objs))
    normalised = (_costs(trials, objs) - lo) / span
    return pd.Series(normalised @ np.array([w[m] for m in metrics]), index=trials.index,
                     name="score")


def _normaliser(costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min-max constants per objective: (lowest cost, span; 1 where every value agrees)."""
    lo, hi = costs.min(axis=0, initial=np.inf), costs.max(axis=0, initial=-np.inf)
    return lo, np.where(hi > lo, hi - lo, 1.0)


def knee_point(front: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> Hashable | None:
    """Index label of the knee of ``front`` (a set of non-dominated rows); None if empty."""
    objs = as_objectives(objectives)
    if not len(front):
        return None
    costs = _costs(front, objs)
    lo, hi = costs.min(axis=0), costs.max(axis=0)
    points = (costs - lo) / np.where(hi > lo, hi - lo, 1.0)
    labels = list(front.index)
    closest = labels[int(np.argmin(np.linalg.norm(points, axis=1)))]
    m = len(objs)
    if len(points) <= m or m < 2:
        return closest
    extremes = points[np.argmin(points, axis=0)]
    try:
        # The hyperplane n . x = 1 through the m extreme points.
        normal = np.linalg.solve(extremes, np.ones(m))
    except np.linalg.LinAlgError:
        return closest
    norm = float(np.linalg.norm(normal))
    if not np.isfinite(norm) or norm == 0:
        return closest
    distance = (1.0 - points @ normal) / norm  # positive on the ideal point's side
    best = int(np.argmax(distance))
    return labels[best] if distance[best] > 1e-12 else closest


def rank_patterns(
    trials: pd.DataFrame,
    objectives: Sequence[ObjectiveLike],
    weights: Mapping[str, float] | Sequence[float] | None = None,
    *,
    level: float = 0.95,
) -> PatternRanking:
    """The patterns ranked by their weighted score over its seeds' means, with the evidence and
    whether the seeds resolve it (module docstring).

    Only full-budget completed trials with every objective count, so that the score of a
    pattern's means and the mean of its trials' scores are the same number.
    """
    objs = as_objectives(objectives)
    metrics = [o.metric for o in objs]
    missing = [m for m in metrics if m not in trials.columns]
    if missing:
        raise ArchsearchError(f"no column {', '.join(missing)} in the results")
    done = full_budget(trials)
    done = done[np.isfinite(done[metrics].astype(float).to_numpy()).all(axis=1)]
    table = by_pattern(done, metrics, level=level)
    scored = weighted_scores(table, objs, weights)
    if not len(scored):
        raise ArchsearchError("no completed full-budget trial has every objective "
                              f"({', '.join(metrics)})")
    per_trial = done.assign(score=trial_scores(done, table, objs, weights))
    score = resolve(per_trial, "score", "min", level=level)
    by_objective = {o.metric: resolve(done, o.metric, o.mode, level=level) for o in objs}
    scored = _with_resolution(scored, score, by_objective)
    front = pareto_front(scored, objs)
    knee = knee_point(front, objs)
    best = scored.iloc[0]
    second = scored.iloc[1] if len(scored) > 1 else None
    differences, intervals = {}, {}
    if second is not None:
        for o in objs:
            differences[o.metric] = float(second[o.metric] - best[o.metric])
            intervals[o.metric] = by_objective[o.metric].difference(
                str(second[C.PATTERN]), str(best[C.PATTERN]))
    return PatternRanking(
        pattern=str(best[C.PATTERN]),
        score=float(best["score"]),
        weights=_weights(objs, weights),
        runner_up=None if second is None else str(second[C.PATTERN]),
        margin=float("nan") if second is None else float(second["score"] - best["score"]),
        knee=None if knee is None else str(front.loc[knee, C.PATTERN]),
        on_front=bool(scored.index[0] in front.index),
        differences=differences,
        table=scored,
        resolution=score,
        by_objective=by_objective,
        difference_intervals=intervals,
    )


def _with_resolution(scored: pd.DataFrame, score: Resolution,
                     by_objective: Mapping[str, Resolution]) -> pd.DataFrame:
    """``scored`` in the score resolution's order, with its intervals and statuses.

    Added columns: ``score_lo`` / ``score_hi``, ``score_vs_best`` (+ ``_lo`` / ``_hi``),
    ``score_status``; per objective ``<metric>_vs_best`` (+ ``_lo`` / ``_hi``) and
    ``<metric>_status``. Each objective's ``<metric>_lo`` / ``_hi`` become its resolution's
    interval of the mean (pooled over seeds when the seed noise is known).
    """
    out = scored.set_index(C.PATTERN, drop=False)
    # (no plain ``status`` column: full_budget would read it as a trial's status)
    parts = [(score, "score")] + [(r, m) for m, r in by_objective.items()]
    for res, name in parts:
        t = res.table.set_index(C.PATTERN)
        if name == "score":  # its order; the scores themselves agree to rounding error
            out = out.loc[[p for p in t.index if p in out.index]]
        out[C.lower(name)] = t["lo"].reindex(out.index)
        out[C.upper(name)] = t["hi"].reindex(out.index)
        out[f"{name}_vs_best"] = t["diff"].reindex(out.index)
        out[f"{name}_vs_best_lo"] = t["diff_lo"].reindex(out.index)
        out[f"{name}_vs_best_hi"] = t["diff_hi"].reindex(out.index)
        out[f"{name}_status"] = t["status"].reindex(out.index)
    out["rank"] = np.arange(1, len(out) + 1)
    return out.reset_index(drop=True)


def normalise_weights(
    weights: Mapping[str, float] | Sequence[float] | None, metrics: Sequence[str],
    known_as: str = "objectives",
) -> dict[str, float]:
    """Weights per metric of ``metrics``, rescaled to sum to 1 (default: equal).

    A mapping may leave metrics out (weight 0) but not name others (``known_as`` says what the
    metrics are, for the error); a sequence gives one weight per metric in order. Weights must
    be finite, non-negative and not all zero."""
    metrics = list(metrics)
    if weights is None:
        raw = dict.fromkeys(metrics, 1.0)
    elif isinstance(weights, Mapping):
        unknown = [m for m in weights if m not in metrics]
        if unknown:
            raise ArchsearchError(f"weights for {', '.join(unknown)}, which are not "
                                  f"{known_as} ({', '.join(metrics)})")
        raw = {m: float(weights.get(m, 0.0)) for m in metrics}
    else:
        if len(weights) != len(metrics):
            raise ArchsearchError(f"{len(weights)} weights for {len(metrics)} {known_as}")
        raw = {m: float(v) for m, v in zip(metrics, weights, strict=True)}
    if any(not math.isfinite(v) or v < 0 for v in raw.values()) or sum(raw.values()) <= 0:
        raise ArchsearchError("weights must be non-negative, finite and not all zero")
    total = sum(raw.values())
    return {m: v / total for m, v in raw.items()}


def _weights(
    objectives: list[Objective], weights: Mapping[str, float] | Sequence[float] | None
) -> dict[str, float]:
    return normalise_weights(weights, [o.metric for o in objectives])
