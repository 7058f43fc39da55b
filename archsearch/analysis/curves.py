"""Learning curves per pattern, and the evaluation at which copying emerged.

``curves.parquet`` holds one row per evaluation of a trial: ``trial_id``, ``step``,
``tokens_seen`` and every metric the trainer reported. ``pattern_curves`` averages a metric over
a pattern's trials (seeds) at each token count, with a t-interval over them; a pattern trained
once keeps that evaluation's own bootstrap interval, as ``by_pattern`` does at the end of
training. Trials are matched to patterns through ``trials.parquet``; by default only completed
full-budget trials count, so that a curve's tail is not an average over whichever seeds ASHA
happened to keep.

Copying emerged. Every evaluation carries the verdict ``copy_emerged`` (1.0 when the
``copy_gain`` interval lies above ``metrics.COPY_EMERGED_NATS``; docs/ANALYSIS.md). A trial's
copying emerged at its first evaluation with the verdict 1.0; ``held`` says whether every later
evaluation agreed. A pattern's copying emerged at the latest of its trials' first emergences
when every trial's did (from then on every seed copies); otherwise it is "k of n seeds" or
"not yet".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from archsearch.analysis import columns as C
from archsearch.analysis.aggregate import metric_summary
from archsearch.analysis.pareto import full_budget

EMERGENCE_COLUMNS = [C.TRIAL_ID, C.PATTERN, C.SEED, "evaluations", "known", "emerged", C.STEP,
                     C.TOKENS_SEEN, "held", C.COPY_GAIN]
PATTERN_EMERGENCE_COLUMNS = [C.PATTERN, "n", "n_emerged", C.STEP, C.TOKENS_SEEN,
                             "earliest_tokens", "verdict"]


def curve_metrics(columns: pd.Index | Sequence[str]) -> list[str]:
    """The per-category losses present, in category order, then ``copy_gain`` if present."""
    present = set(map(str, columns))
    names = [C.category_metric(c) for c in C.CATEGORIES if C.category_metric(c) in present]
    return names + ([C.COPY_GAIN] if C.COPY_GAIN in present else [])


def trial_curves(curves: pd.DataFrame, trials: pd.DataFrame, *,
                 full_budget_only: bool = True) -> pd.DataFrame:
    """``curves`` with each row's ``pattern`` (and ``seed``) from ``trials``; only the rows of
    full-budget completed trials unless ``full_budget_only`` is False."""
    if not len(curves) or not len(trials) or C.TRIAL_ID not in curves:
        return curves.iloc[:0].assign(**{C.PATTERN: pd.Series(dtype=str)})
    chosen = full_budget(trials) if full_budget_only else trials
    keys = [k for k in (C.SWEEP, C.TRIAL_ID) if k in curves.columns and k in chosen.columns]
    facts = [c for c in (C.PATTERN, C.SEED) if c in chosen.columns and c not in curves.columns]
    joined = curves.merge(chosen[keys + facts].drop_duplicates(keys), on=keys, how="inner")
    return joined.sort_values([*keys, C.TOKENS_SEEN], kind="stable").reset_index(drop=True)


def pattern_curves(curves: pd.DataFrame, trials: pd.DataFrame,
                   metrics: Sequence[str] | None = None, *, level: float = 0.95,
                   full_budget_only: bool = True) -> pd.DataFrame:
    """One row per (pattern, tokens seen): ``n`` trials, ``step``, and for each metric its mean
    over those trials with ``<metric>_lo`` / ``<metric>_hi``.

    Default metrics: every ``<category>_loss`` present and ``copy_gain`` (``curve_metrics``).
    """
    rows_in = trial_curves(curves, trials, full_budget_only=full_budget_only)
    names = list(metrics) if metrics is not None else curve_metrics(rows_in.columns)
    names = [m for m in names if m in rows_in.columns]
    out = []
    if len(rows_in):
        for (pattern, tokens), group in rows_in.groupby([C.PATTERN, C.TOKENS_SEEN], sort=True):
            row: dict[str, object] = {C.PATTERN: pattern, C.TOKENS_SEEN: tokens,
                                      C.STEP: group[C.STEP].min(), "n": len(group)}
            for metric in names:
                row.update(metric_summary(group, metric, level))
            out.append(row)
    columns = [C.PATTERN, C.TOKENS_SEEN, C.STEP, "n",
               *[c for m in names for c in (m, C.lower(m), C.upper(m))]]
    return pd.DataFrame(out, columns=columns)


def copy_emergence(curves: pd.DataFrame, trials: pd.DataFrame, *,
                   full_budget_only: bool = True) -> pd.DataFrame:
    """Per trial: when its copying emerged (first evaluation with ``copy_emerged`` 1.0).

    Columns: trial_id, pattern, seed, evaluations, known (some evaluation scored copy tokens),
    emerged, step and tokens_seen of the first such evaluation (NaN if none), held (every later
    evaluation agreed), copy_gain at the last evaluation.
    """
    rows_in = trial_curves(curves, trials, full_budget_only=full_budget_only)
    if not len(rows_in) or C.COPY_EMERGED not in rows_in.columns:
        return pd.DataFrame(columns=EMERGENCE_COLUMNS)
    keys = [k for k in (C.SWEEP, C.TRIAL_ID) if k in rows_in.columns]
    out = []
    for _, group in rows_in.groupby(keys, sort=True):
        group = group.sort_values(C.TOKENS_SEEN, kind="stable")
        verdict = group[C.COPY_EMERGED].astype(float).to_numpy()
        yes = np.nonzero(verdict == 1.0)[0]
        first = int(yes[0]) if len(yes) else None
        gain = group[C.COPY_GAIN].astype(float).to_numpy() if C.COPY_GAIN in group else [np.nan]
        out.append({
            C.TRIAL_ID: group[C.TRIAL_ID].iloc[0], C.PATTERN: group[C.PATTERN].iloc[0],
            C.SEED: group[C.SEED].iloc[0] if C.SEED in group else np.nan,
            "evaluations": len(group), "known": bool(np.isfinite(verdict).any()),
            "emerged": first is not None,
            C.STEP: group[C.STEP].iloc[first] if first is not None else np.nan,
            C.TOKENS_SEEN: group[C.TOKENS_SEEN].iloc[first] if first is not None else np.nan,
            "held": first is not None and bool((verdict[first:] == 1.0).all()),
            C.COPY_GAIN: float(gain[-1]),
        })
    return pd.DataFrame(out, columns=EMERGENCE_COLUMNS)


def emergence_by_pattern(emergence: pd.DataFrame) -> pd.DataFrame:
    """Per pattern, from ``copy_emergence``: ``n`` trials, ``n_emerged``, the step and tokens
    by which every trial's copying had emerged (NaN unless all did), the earliest trial's
    tokens, and a ``verdict``: "yes", "k of n seeds", "not yet", or "unknown" (no evaluation
    scored a copy token)."""
    out = []
    for pattern, group in emergence.groupby(C.PATTERN, sort=True):
        n, done = len(group), group[group["emerged"].astype(bool)]
        every = len(done) == n
        latest = done.loc[done[C.TOKENS_SEEN].astype(float).idxmax()] if every else None
        if not group["known"].astype(bool).any():
            verdict = "unknown"
        elif every:
            verdict = "yes"
        elif len(done):
            verdict = f"{len(done)} of {n} seeds"
        else:
            verdict = "not yet"
        out.append({
            C.PATTERN: pattern, "n": n, "n_emerged": len(done),
            C.STEP: latest[C.STEP] if latest is not None else np.nan,
            C.TOKENS_SEEN: latest[C.TOKENS_SEEN] if latest is not None else np.nan,
            "earliest_tokens": done[C.TOKENS_SEEN].min() if len(done) else np.nan,
            "verdict": verdict,
        })
    return pd.DataFrame(out, columns=PATTERN_EMERGENCE_COLUMNS)
