"""Which patterns of a finished sweep go up the ladder: the top ``k`` by the space's objectives.

Full-budget completed trials only (ASHA-stopped ones report partial losses). Trials that differ
only in their seed are averaged; other tuned values are kept apart, and each pattern keeps its
best setting. Patterns are ordered by Pareto rank over the objectives (the front first), then, within
a rank, by ``archsearch.analysis.weighted_scores`` (equal weights, min-max normalised objectives).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from archsearch.analysis import columns as C
from archsearch.analysis.aggregate import by_pattern
from archsearch.analysis.load import load_sweep
from archsearch.analysis.pareto import full_budget, pareto_ranks
from archsearch.analysis.ranking import weighted_scores
from archsearch.errors import ArchsearchError
from archsearch.space import SearchSpace

_SEEDS = ("param.training.seed", "param.ladder_point")


def top_patterns(sweep_dir: str, space: SearchSpace, k: int) -> list[dict[str, Any]]:
    """The ``k`` best patterns of the sweep as params mappings (``pattern`` + tuned values)."""
    if k < 1:
        raise ArchsearchError(f"--top-k must be at least 1, got {k}")
    trials = full_budget(load_sweep(sweep_dir).trials)
    objectives = list(space.spec.objectives)
    if not len(trials):
        raise ArchsearchError(f"{sweep_dir}: no completed full-budget trial to choose from")
    params = [c for c in trials.columns
              if c.startswith(C.PARAM_PREFIX) and c not in _SEEDS and c != "param.pattern"]
    # by_pattern groups with dropna=False; stringify so unhashable or mixed cells group cleanly
    keyed = trials.assign(**{c: trials[c].map(_key) for c in params})
    table = by_pattern(keyed, [o.metric for o in objectives], by=[C.PATTERN, *params])
    ranks = pareto_ranks(table, objectives)
    scored = weighted_scores(table.loc[ranks.index], objectives)
    scored["front"] = ranks.reindex(scored.index)
    scored = scored.sort_values(["front", "score"], kind="stable")
    best = scored.drop_duplicates(C.PATTERN, keep="first").head(k)
    out = []
    for _, row in best.iterrows():
        chosen = {"pattern": str(row[C.PATTERN])}
        for column in params:
            original = _original(trials, row, column)
            if original is not None:
                chosen[column[len(C.PARAM_PREFIX):]] = original
        out.append(chosen)
    return out


def _key(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(value)


def _original(trials: pd.DataFrame, row: pd.Series, column: str) -> Any:
    """The un-stringified value of ``column`` on a trial of the chosen group."""
    if row[column] == "":
        return None
    match = trials[(trials[C.PATTERN] == row[C.PATTERN]) & (trials[column].map(_key) == row[column])]
    value = match[column].iloc[0]
    return value.item() if hasattr(value, "item") else value
