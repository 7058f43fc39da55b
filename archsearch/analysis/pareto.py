"""Pareto fronts, non-dominated ranks and hypervolume over any objectives with directions.

ASHA-stopped trials report losses at a fraction of the budget (docs/BACKGROUND.md, "Search tools"),
and failed trials report none, so fronts are computed on completed, full-budget trials only:
``full_budget`` is applied to every frame that has status and fidelity columns. A per-pattern table
(from ``by_pattern``) has neither and is used as given.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from archsearch.analysis import columns as C
from archsearch.errors import ArchsearchError
from archsearch.space.schema import Objective
from archsearch.sweep.status import FULL_BUDGET_TOLERANCE

ObjectiveLike = Objective | tuple[str, str] | str  # a bare metric name is minimised


def as_objectives(objectives: Sequence[ObjectiveLike]) -> list[Objective]:
    """Objectives from ``Objective``s, ``(metric, "min"|"max")`` pairs or bare metric names."""
    out = []
    for item in objectives:
        if isinstance(item, Objective):
            objective = item
        elif isinstance(item, str):
            objective = Objective(item, "min")
        else:
            metric, mode = item
            objective = Objective(str(metric), mode)  # type: ignore[arg-type]
        if objective.mode not in ("min", "max"):
            raise ArchsearchError(f"objective {objective.metric}: mode must be 'min' or 'max', "
                                  f"got {objective.mode!r}")
        out.append(objective)
    if not out:
        raise ArchsearchError("give at least one objective")
    return out


def full_budget(trials: pd.DataFrame) -> pd.DataFrame:
    """Completed trials that reached the full token budget (all rows if the columns are absent).

    A supernet folder's table (``archsearch supernet``, docs/SUPERNET.md) holds subnet estimates
    (``source`` supernet) and, after ``--top-k``, real proxies of the best of them (``source``
    sweep): where both are present only the proxies count, so an answer rests on trained models.
    """
    keep = pd.Series(True, index=trials.index)
    if C.SOURCE in trials.columns:
        estimates = trials[C.SOURCE] == C.SUPERNET_SOURCE
        if estimates.any() and not estimates.all():
            keep &= ~estimates
    if C.STATUS in trials.columns:
        keep &= trials[C.STATUS] == C.COMPLETED
    if C.FIDELITY in trials.columns:
        keep &= trials[C.FIDELITY].astype(float) >= 1.0 - FULL_BUDGET_TOLERANCE
    return trials[keep]


def pareto_front(frame: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> pd.DataFrame:
    """The non-dominated rows, sorted by the first objective (best first)."""
    ranks = pareto_ranks(frame, objectives)
    front = frame.loc[ranks.index[ranks == 1]]
    first = as_objectives(objectives)[0]
    return front.sort_values(first.metric, ascending=first.mode == "min", kind="stable")


def pareto_ranks(frame: pd.DataFrame, objectives: Sequence[ObjectiveLike]) -> pd.Series:
    """Non-dominated sorting: 1 for the front, 2 for the front of the rest, and so on.

    Indexed like the usable rows of ``frame`` (full budget, every objective present).
    """
    usable = _usable(frame, as_objectives(objectives))
    costs = _costs(usable, as_objectives(objectives))
    ranks = np.zeros(len(costs), dtype=int)
    # dominates[i, j]: row i is no worse than j everywhere and better somewhere
    le = (costs[:, None, :] <= costs[None, :, :]).all(axis=2)
    lt = (costs[:, None, :] < costs[None, :, :]).any(axis=2)
    dominates = le & lt
    remaining = np.ones(len(costs), dtype=bool)
    rank = 0
    while remaining.any():
        rank += 1
        dominated = (dominates[remaining][:, remaining]).any(axis=0)
        current = np.flatnonzero(remaining)[~dominated]
        ranks[current] = rank
        remaining[current] = False
    return pd.Series(ranks, index=usable.index, name="rank")


def hypervolume(
    frame: pd.DataFrame,
    objectives: Sequence[ObjectiveLike],
    reference: Sequence[float] | None = None,
) -> float:
    """Exact hypervolume dominated by the rows, bounded by ``reference`` (in the metrics' units).

    Default reference: each objective's worst value plus 10% of its range (1% of its magnitude
    when all rows agree), so that every front point contributes. Points not strictly better than
    the reference in every objective contribute nothing. Exact in any dimension by slicing along
    the last objective (cheap for the tens of points a sweep has).
    """
    objs = as_objectives(objectives)
    usable = _usable(frame, objs)
    costs = _costs(usable, objs)
    if not len(costs):
        return 0.0
    if reference is None:
        worst, best = costs.max(axis=0), costs.min(axis=0)
        span = np.where(worst > best, worst - best, np.maximum(np.abs(worst), 1.0) * 0.1)
        ref = worst + 0.1 * span
    else:
        if len(reference) != len(objs):
            raise ArchsearchError(f"reference point has {len(reference)} values for "
                                  f"{len(objs)} objectives")
        ref = np.array([v if o.mode == "min" else -v for v, o in zip(reference, objs, strict=True)],
                       dtype=float)
    inside = costs[(costs < ref).all(axis=1)]
    return float(_volume(inside, ref))


def _volume(points: np.ndarray, ref: np.ndarray) -> float:
    if not len(points):
        return 0.0
    if points.shape[1] == 1:
        return float(ref[0] - points[:, 0].min())
    if points.shape[1] == 2:
        order = np.argsort(points[:, 0], kind="stable")
        total, best_y = 0.0, ref[1]
        xs = np.append(points[order, 0], ref[0])
        for i, idx in enumerate(order):
            best_y = min(best_y, points[idx, 1])
            total += (xs[i + 1] - xs[i]) * (ref[1] - best_y)
        return total
    # Slice along the last objective: between consecutive values, the cross-section is the
    # (m-1)-dimensional volume of the points at or below the slice.
    order = np.argsort(points[:, -1], kind="stable")
    levels = np.append(points[order, -1], ref[-1])
    total = 0.0
    for i in range(len(order)):
        height = levels[i + 1] - levels[i]
        if height > 0:
            total += height * _volume(points[order[: i + 1], :-1], ref[:-1])
    return total


def _usable(frame: pd.DataFrame, objectives: list[Objective]) -> pd.DataFrame:
    missing = [o.metric for o in objectives if o.metric not in frame.columns]
    if missing:
        raise ArchsearchError(f"no column {', '.join(missing)} in the results (columns: "
                              f"{', '.join(map(str, frame.columns[:40]))})")
    usable = full_budget(frame)
    values = usable[[o.metric for o in objectives]].astype(float)
    return usable[np.isfinite(values.to_numpy()).all(axis=1)]


def _costs(frame: pd.DataFrame, objectives: list[Objective]) -> np.ndarray:
    """Objective values as costs: maximised objectives are negated, so lower is always better."""
    values = frame[[o.metric for o in objectives]].to_numpy(dtype=float)
    signs = np.array([1.0 if o.mode == "min" else -1.0 for o in objectives])
    return values * signs
