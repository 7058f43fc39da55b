"""Per-pattern summaries over seeds, and the ratio/placement view of them.

A pattern trained with several seeds gets the mean of each metric and a t-interval over its own
seeds. A pattern trained once keeps its own evaluation interval (``<metric>_lo``/``_hi``, a
bootstrap over validation tokens that the sweep computed): the only uncertainty one run shows,
and it measures validation sampling only, not how much another seed would move the result.
Rankings use ``resolution`` instead, which pools the seed noise over every pattern.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from archsearch.analysis import columns as C
from archsearch.analysis.intervals import mean_interval
from archsearch.analysis.pareto import full_budget

# Pattern facts that are the same for every trial of a pattern: carried, not averaged.
_FACTS = (C.ATTENTION_FRACTION, C.DEPTH, C.ORIGINS)
_ORIGIN = re.compile(r"(\d+:\d+)\s+(\[[^\]]*\]|[A-Za-z_]+)")


def by_pattern(
    trials: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    level: float = 0.95,
    by: Sequence[str] = (C.PATTERN,),
) -> pd.DataFrame:
    """One row per pattern (or per ``by`` group) over its full-budget completed trials.

    Columns: the ``by`` keys, ``n`` (trials), the pattern facts, and for each metric its mean with
    ``<metric>_lo`` / ``<metric>_hi``. Default metrics: every evaluation and cost metric present.
    Pass ``by=["pattern", "param.training.lr"]`` to keep tuned settings apart.
    """
    done = full_budget(trials)
    names = list(metrics) if metrics is not None else C.metric_columns(done.columns)
    names = [m for m in names if m in done.columns]
    rows = []
    for key, group in done.groupby(list(by), sort=True, dropna=False):
        keys = key if isinstance(key, tuple) else (key,)
        row: dict[str, object] = dict(zip(by, keys, strict=True))
        row["n"] = len(group)
        for fact in _FACTS:
            if fact in group.columns:
                row[fact] = group[fact].iloc[0]
        for metric in names:
            row.update(metric_summary(group, metric, level))
        rows.append(row)
    columns = [*by, "n", *[f for f in _FACTS if f in done.columns],
               *[c for m in names for c in (m, C.lower(m), C.upper(m))]]
    return pd.DataFrame(rows, columns=columns)


def metric_summary(group: pd.DataFrame, metric: str, level: float = 0.95) -> dict[str, float]:
    """Mean of ``metric`` over ``group``'s rows with its interval: t over rows (seeds), or the
    row's own evaluation interval when there is one row."""
    values = group[metric].astype(float).to_numpy()
    interval = mean_interval(values, level)
    lo, hi = interval.lo, interval.hi
    if interval.n == 1 and C.lower(metric) in group.columns and C.upper(metric) in group.columns:
        finite = np.isfinite(values)
        lo = float(group[C.lower(metric)].astype(float).to_numpy()[finite][0])
        hi = float(group[C.upper(metric)].astype(float).to_numpy()[finite][0])
    return {metric: interval.estimate, C.lower(metric): lo, C.upper(metric): hi}


def parse_origins(origins: str) -> list[tuple[str, str]]:
    """``"3:1 even_end, list"`` -> ``[("3:1", "even_end")]``: the generator settings only.

    ``list`` (a pattern written out in the space) has no ratio or placement and is dropped.
    """
    return [(m[1], m[2]) for m in _ORIGIN.finditer(str(origins or ""))]


def by_placement(
    trials: pd.DataFrame, metrics: Sequence[str] | None = None, *, level: float = 0.95
) -> pd.DataFrame:
    """``by_pattern`` with one row per (placement, pattern), for loss-vs-ratio lines.

    Placements come from ``origins``. A pure stack (attention fraction 0 or 1) looks the same
    under every placement, so it joins every placement's line as an end point.
    """
    table = by_pattern(trials, metrics, level=level)
    if not len(table) or C.ORIGINS not in table.columns:
        return table.assign(placement=pd.Series(dtype=str), ratio=pd.Series(dtype=str))
    parsed = {p: parse_origins(o) for p, o in zip(table[C.PATTERN], table[C.ORIGINS], strict=True)}
    placements = sorted({place for pairs in parsed.values() for _, place in pairs})
    rows = []
    for _, row in table.iterrows():
        pairs = parsed[row[C.PATTERN]]
        fraction = row.get(C.ATTENTION_FRACTION, np.nan)
        if fraction in (0.0, 1.0):
            ratio = pairs[0][0] if pairs else ("0:1" if fraction == 1.0 else "1:0")
            pairs = [(ratio, place) for place in placements]
        for ratio, place in pairs:
            rows.append({**row.to_dict(), "placement": place, "ratio": ratio})
    out = pd.DataFrame(rows, columns=[*table.columns, "placement", "ratio"])
    sort = ["placement", C.ATTENTION_FRACTION] if C.ATTENTION_FRACTION in out else ["placement"]
    return out.sort_values(sort, kind="stable").reset_index(drop=True)
