"""Per-category loss gaps of every pattern against a reference pattern (Ai2's token analysis).

gap = loss(reference) - loss(candidate), so a positive gap means the candidate predicts that
category better. The default reference is the all-attention stack (Ai2 compared the hybrid against
Olmo 3 this way: docs/BACKGROUND.md, "Olmo Hybrid").

Intervals: with at least two full-budget trials on each side, Welch's t-interval over seeds.
With one trial on a side, the two evaluation intervals (bootstrap over validation tokens) are
combined in quadrature; both runs are scored on the same tokens, whose losses are positively
correlated, so this overstates the width: a gap whose interval excludes 0 is a real one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from archsearch.analysis import columns as C
from archsearch.analysis.intervals import difference_interval, t_quantile
from archsearch.analysis.pareto import full_budget
from archsearch.errors import ArchsearchError
from archsearch.pattern import normalize

GAP_COLUMNS = ["pattern", "metric", "label", "order", "gap", "lo", "hi", "n", "n_reference",
               "method"]


def reference_pattern(trials: pd.DataFrame, reference: str | None = None) -> str:
    """The canonical spelling of ``reference``, or the all-attention pattern when None.

    Several all-attention patterns (full and sliding-window attention): the one with the most
    full-budget trials, then the shortest spelling, then alphabetical.
    """
    done = full_budget(trials)
    present = sorted(set(done[C.PATTERN].dropna())) if C.PATTERN in done else []
    if not present:
        raise ArchsearchError("no completed full-budget trials to compare")
    if reference is not None:
        wanted = _canonical(reference)
        if wanted not in present:
            raise ArchsearchError(f"reference pattern {reference!r} has no completed full-budget "
                                  f"trial; patterns: {', '.join(present)}")
        return wanted
    if C.ATTENTION_FRACTION in done.columns:
        pure = done[done[C.ATTENTION_FRACTION].astype(float) >= 1.0]
    else:  # without the column, trust the built-in symbols: A and S are attention
        pure = done[done[C.PATTERN].map(lambda p: set(_letters(p)) <= {"A", "S"})]
    if not len(pure):
        raise ArchsearchError("no all-attention pattern among the completed trials; pass a "
                              f"reference pattern (one of: {', '.join(present)})")
    counts = pure[C.PATTERN].value_counts()
    return min(counts.index, key=lambda p: (-counts[p], len(p), p))


def category_gaps(
    trials: pd.DataFrame,
    reference: str | None = None,
    *,
    categories: Sequence[str] | None = None,
    level: float = 0.95,
) -> pd.DataFrame:
    """Gap per (pattern, category) for the ``<category>_loss`` columns; the reference excluded.

    Columns: pattern, metric, label (the category), order, gap, lo, hi, n (candidate trials),
    n_reference, method ("seeds" or "evaluation").
    """
    names = categories if categories is not None else C.CATEGORIES
    metrics = [(C.category_metric(c), i, c) for i, c in enumerate(names)]
    return _gaps(trials, reference, metrics, level)


def copy_run_gaps(
    trials: pd.DataFrame, reference: str | None = None, *, level: float = 0.95
) -> pd.DataFrame:
    """Gap per (pattern, copy run-length bucket): labels "4-7", "8-15", "16+", ordered by run."""
    metrics = [(column, lo, label) for column, lo, label in C.copy_buckets(trials.columns)]
    return _gaps(trials, reference, metrics, level)


def _gaps(
    trials: pd.DataFrame, reference: str | None, metrics: list[tuple[str, int, str]], level: float
) -> pd.DataFrame:
    ref = reference_pattern(trials, reference)
    done = full_budget(trials)
    base = done[done[C.PATTERN] == ref]
    rows = []
    for pattern, group in done.groupby(C.PATTERN, sort=True):
        if pattern == ref:
            continue
        for metric, order, label in metrics:
            if metric not in done.columns:
                continue
            gap = _gap(base, group, metric, level)
            rows.append({"pattern": pattern, "metric": metric, "label": label, "order": order,
                         **gap})
    return _frame(rows, ref)


def _frame(rows: list[dict[str, object]], reference: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=GAP_COLUMNS)
    frame.attrs["reference"] = reference  # for titles: "gap against A*8"
    return frame


def _gap(base: pd.DataFrame, group: pd.DataFrame, metric: str, level: float) -> dict[str, object]:
    ref_values = base[metric].astype(float).to_numpy()
    values = group[metric].astype(float).to_numpy()
    ref_values, values = ref_values[np.isfinite(ref_values)], values[np.isfinite(values)]
    n, n_ref = len(values), len(ref_values)
    if n >= 2 and n_ref >= 2:
        interval = difference_interval(ref_values, values, level)
        return {"gap": interval.estimate, "lo": interval.lo, "hi": interval.hi, "n": n,
                "n_reference": n_ref, "method": "seeds"}
    gap = float(ref_values.mean() - values.mean()) if n and n_ref else math.nan
    half = math.sqrt(_half_width(base, metric, level) ** 2 + _half_width(group, metric, level) ** 2)
    return {"gap": gap, "lo": gap - half, "hi": gap + half, "n": n, "n_reference": n_ref,
            "method": "evaluation"}


def _half_width(rows: pd.DataFrame, metric: str, level: float) -> float:
    """Half-width of one side's mean: its evaluation interval, or the t-interval over seeds."""
    values = rows[metric].astype(float).to_numpy()
    finite = np.isfinite(values)
    if finite.sum() >= 2:
        return t_quantile(finite.sum() - 1, level) * float(values[finite].std(ddof=1)) / math.sqrt(
            finite.sum())
    lo, hi = C.lower(metric), C.upper(metric)
    if finite.sum() == 1 and lo in rows.columns and hi in rows.columns:
        return float(rows[hi].astype(float).to_numpy()[finite][0]
                     - rows[lo].astype(float).to_numpy()[finite][0]) / 2
    return math.nan


def _letters(pattern: str) -> list[str]:
    return [c for c in str(pattern) if c.isalpha()]


def _canonical(pattern: str) -> str:
    try:
        return normalize(pattern, set(_letters(pattern)))
    except ArchsearchError as err:
        raise ArchsearchError(f"reference pattern: {str(err).splitlines()[0]}") from None
