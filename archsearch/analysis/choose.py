"""Pick a pattern: the best weighted score, and the knee of the Pareto front.

Weighted score: per-pattern means (``by_pattern``) of each objective are min-max normalised
across the patterns to [0, 1] with 0 the best (a maximised objective is flipped), then summed
with the weights (default equal; they are rescaled to sum to 1). Lowest score wins.

Knee: on the Pareto front of the per-pattern means, normalised so that each objective spans
[0, 1] over the front, the point farthest from the hyperplane through the front's extreme points
(the best point of each objective), on the side of the ideal point. For two objectives that is
the classic "maximum distance to the line between the two ends of the front": the point where
trading one objective for the other stops paying. With no interior point (a front of at most one
point per objective, or extremes that do not span a hyperplane) it falls back to the point
closest to the ideal point.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from archsearch.analysis import columns as C
from archsearch.analysis.aggregate import by_pattern
from archsearch.analysis.pareto import ObjectiveLike, _costs, as_objectives, pareto_front
from archsearch.errors import ArchsearchError
from archsearch.space.schema import Objective


@dataclass(frozen=True)
class Recommendation:
    pattern: str
    score: float  # weighted normalised score, 0 = best on every objective
    weights: dict[str, float]  # by metric, summing to 1
    runner_up: str | None
    margin: float  # runner-up's score minus the winner's (NaN without a runner-up)
    knee: str | None  # the knee of the front (None when the front is empty)
    on_front: bool  # whether the winner is on the Pareto front of the pattern means
    differences: dict[str, float]  # runner-up minus winner, per objective, in the metric's units
    table: pd.DataFrame = field(repr=False)  # per-pattern means, normalised objectives, score, rank


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
    lo, hi = costs.min(axis=0, initial=np.inf), costs.max(axis=0, initial=-np.inf)
    span = np.where(hi > lo, hi - lo, 1.0)
    normalised = (costs - lo) / span if len(costs) else costs
    for i, metric in enumerate(metrics):
        usable[f"norm.{metric}"] = normalised[:, i] if len(costs) else []
    usable["score"] = normalised @ np.array([w[m] for m in metrics]) if len(costs) else []
    usable = usable.sort_values("score", kind="stable")
    usable["rank"] = np.arange(1, len(usable) + 1)
    return usable


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


def recommend(
    trials: pd.DataFrame,
    objectives: Sequence[ObjectiveLike],
    weights: Mapping[str, float] | Sequence[float] | None = None,
    *,
    level: float = 0.95,
) -> Recommendation:
    """The pattern with the best weighted score over its seeds' means, with the evidence."""
    objs = as_objectives(objectives)
    table = by_pattern(trials, [o.metric for o in objs], level=level)
    scored = weighted_scores(table, objs, weights)
    if not len(scored):
        raise ArchsearchError("no completed full-budget trial has every objective "
                              f"({', '.join(o.metric for o in objs)})")
    front = pareto_front(scored, objs)
    knee = knee_point(front, objs)
    best = scored.iloc[0]
    second = scored.iloc[1] if len(scored) > 1 else None
    differences = {} if second is None else {
        o.metric: float(second[o.metric] - best[o.metric]) for o in objs}
    return Recommendation(
        pattern=str(best[C.PATTERN]),
        score=float(best["score"]),
        weights=_weights(objs, weights),
        runner_up=None if second is None else str(second[C.PATTERN]),
        margin=float("nan") if second is None else float(second["score"] - best["score"]),
        knee=None if knee is None else str(front.loc[knee, C.PATTERN]),
        on_front=bool(scored.index[0] in front.index),
        differences=differences,
        table=scored.reset_index(drop=True),
    )


def _weights(
    objectives: list[Objective], weights: Mapping[str, float] | Sequence[float] | None
) -> dict[str, float]:
    metrics = [o.metric for o in objectives]
    if weights is None:
        raw = dict.fromkeys(metrics, 1.0)
    elif isinstance(weights, Mapping):
        unknown = set(weights) - set(metrics)
        if unknown:
            raise ArchsearchError(f"weights for {', '.join(sorted(unknown))}, which are not "
                                  f"objectives ({', '.join(metrics)})")
        raw = {m: float(weights.get(m, 0.0)) for m in metrics}
    else:
        if len(weights) != len(metrics):
            raise ArchsearchError(f"{len(weights)} weights for {len(metrics)} objectives")
        raw = {m: float(v) for m, v in zip(metrics, weights, strict=True)}
    if any(v < 0 for v in raw.values()) or sum(raw.values()) <= 0:
        raise ArchsearchError("weights must be non-negative and not all zero")
    total = sum(raw.values())
    return {m: v / total for m, v in raw.items()}
