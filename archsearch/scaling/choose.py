"""Which patterns of a finished sweep go up the ladder: the first ``k`` of its ranking.

The ranking is the one ``archsearch recommend`` reads from a sweep folder,
``archsearch.analysis.rank_patterns`` over the sweep's own objectives with equal weights, so that
``--from DIR`` means the same for ``scale`` and ``export``: this folder's ranking.

Each chosen pattern keeps its best tuned setting. Full-budget completed trials only (ASHA-stopped
ones report partial losses); trials that differ only in their seed are averaged, other tuned
values are kept apart, and a pattern's settings are ordered by Pareto rank over the objectives
(the front first), then, within a rank, by ``archsearch.analysis.weighted_scores``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from archsearch.analysis import columns as C
from archsearch.analysis.aggregate import by_pattern
from archsearch.analysis.load import load_sweep
from archsearch.analysis.pareto import full_budget, pareto_ranks
from archsearch.analysis.ranking import rank_patterns, weighted_scores
from archsearch.errors import ArchsearchError
from archsearch.space.schema import Objective

_SEEDS = ("param.training.seed", "param.ladder_point")


def top_patterns(sweep_dir: str, k: int) -> list[dict[str, Any]]:
    """The first ``k`` patterns of the sweep's ranking as params mappings (``pattern`` + its
    best tuned values), best first."""
    if k < 1:
        raise ArchsearchError(f"--top-k must be at least 1, got {k}")
    sweep = load_sweep(sweep_dir)
    objectives = list(sweep.objectives)
    trials = full_budget(sweep.trials)
    metrics = [o.metric for o in objectives]
    if len(trials) and set(metrics) <= set(trials.columns):
        # the trials the ranking counts: those with every objective
        trials = trials[np.isfinite(trials[metrics].astype(float).to_numpy()).all(axis=1)]
    if not len(trials):
        raise ArchsearchError(f"{sweep_dir}: no completed full-budget trial to choose from")
    ranking = rank_patterns(sweep.trials, objectives)
    chosen = [str(p) for p in ranking.table[C.PATTERN].head(k)]
    settings = _best_settings(trials, objectives)
    return [settings[pattern] for pattern in chosen]


def _best_settings(trials: pd.DataFrame,
                   objectives: Sequence[Objective]) -> dict[str, dict[str, Any]]:
    """Each pattern's best tuned setting: ``pattern`` plus the values it was trained with."""
    params = [c for c in trials.columns
              if c.startswith(C.PARAM_PREFIX) and c not in _SEEDS and c != "param.pattern"]
    # by_pattern groups with dropna=False; stringify so unhashable or mixed cells group cleanly
    keyed = trials.assign(**{c: trials[c].map(_key) for c in params})
    table = by_pattern(keyed, [o.metric for o in objectives], by=[C.PATTERN, *params])
    ranks = pareto_ranks(table, objectives)
    scored = weighted_scores(table.loc[ranks.index], objectives)
    scored["front"] = ranks.reindex(scored.index)
    scored = scored.sort_values(["front", "score"], kind="stable")
    best = {}
    for _, row in scored.drop_duplicates(C.PATTERN, keep="first").iterrows():
        setting = {"pattern": str(row[C.PATTERN])}
        for column in params:
            original = _original(trials, row, column)
            if original is not None:
                setting[column[len(C.PARAM_PREFIX):]] = original
        best[setting["pattern"]] = setting
    return best


def _key(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(value)


def _original(trials: pd.DataFrame, row: pd.Series, column: str) -> Any:
    """The un-stringified value of ``column`` on a trial of the chosen group."""
    if row[column] == "":
        return None
    match = trials[(trials[C.PATTERN] == row[C.PATTERN]) & (trials[column].map(_key) == row[column])]
    value = match[column].iloc[0]
    return value.item() if hasattr(value, "item") else value
