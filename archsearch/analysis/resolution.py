"""Which patterns a sweep can tell apart: a ranking with intervals, and the patterns tied with
the best.

A trial's metric is modelled as its pattern's true value plus seed noise whose standard
deviation is the same for every pattern of the sweep (same data, budget and recipe, matched
sizes). Every pattern that ran two or more seeds measures that noise; pooling them gives one
estimate with far more degrees of freedom than any one pattern's two or three seeds:

    s^2 = sum_p sum_i (y_pi - mean_p)^2 / df,    df = sum_p (n_p - 1)   over patterns with n_p >= 2

and it applies to every pattern, the ones that ran once included. Against the best pattern b
(lowest mean of a minimised metric, highest of a maximised one):

    d_p = mean_p - mean_b,    interval d_p +- t(df, level) * s * sqrt(1/n_p + 1/n_b)

A pattern whose interval includes 0 is *tied* with the best: the sweep cannot tell it apart from
the best. One whose interval excludes 0 is *behind*. The ranking is *resolved* when every other
pattern is behind; only then is the best a winner. With no pattern run twice the noise is
unknown: the order is kept, every status is *unknown*, and the only interval left is each
trial's evaluation bootstrap (``<metric>_lo`` / ``_hi``), which measures validation sampling,
not seed-to-seed noise. docs/ANALYSIS.md ("Resolution") explains the choices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from archsearch.analysis import columns as C
from archsearch.analysis.intervals import (
    Interval,
    SeedNoise,
    pooled_difference_interval,
    pooled_mean_interval,
    pooled_noise,
)
from archsearch.analysis.pareto import full_budget
from archsearch.errors import ArchsearchError

BEST, TIED, BEHIND, UNKNOWN = "best", "tied", "behind", "unknown"
SEED_PARAM = "param.training.seed"
TABLE_COLUMNS = [C.PATTERN, "n", "mean", "lo", "hi", "diff", "diff_lo", "diff_hi", "status"]
ONE_SEED_ADVICE = ("give training.seed two or more values (seed: {choices: [0, 1]} with grid "
                   "search) to tell noise from effect")
EVALUATION_ONLY = ("a trial's evaluation bootstrap interval measures validation sampling only, "
                   "not seed-to-seed noise")


@dataclass(frozen=True)
class Resolution:
    """The patterns ranked on one metric (best first), with what the seeds can resolve.

    ``table`` columns: ``pattern``, ``n`` (seeds), ``mean``, ``lo`` / ``hi`` (the interval of
    the mean: pooled t, or the evaluation bootstrap of a single trial when the noise is
    unknown), ``diff`` / ``diff_lo`` / ``diff_hi`` (pattern minus best, metric units), and
    ``status`` (best, tied, behind, unknown).
    """

    metric: str
    mode: str  # "min" or "max"
    level: float
    noise: SeedNoise
    table: pd.DataFrame = field(repr=False)
    varying: tuple[str, ...] = ()  # tuned settings besides the seed that differ within a pattern

    @property
    def best(self) -> str | None:
        return str(self.table[C.PATTERN].iloc[0]) if len(self.table) else None

    @property
    def runner_up(self) -> str | None:
        return str(self.table[C.PATTERN].iloc[1]) if len(self.table) > 1 else None

    @property
    def tied(self) -> list[str]:
        """The patterns that cannot be told apart from the best, the best first (every pattern
        when the seed noise is unknown)."""
        keep = self.table["status"].isin([BEST, TIED, UNKNOWN])
        return [str(p) for p in self.table.loc[keep, C.PATTERN]]

    @property
    def resolved(self) -> bool:
        """Whether the best is ahead of every other pattern beyond seed noise."""
        return self.noise.known and len(self.table) >= 2 and len(self.tied) == 1

    def row(self, pattern: str) -> pd.Series:
        match = self.table[self.table[C.PATTERN] == pattern]
        if not len(match):
            raise KeyError(pattern)
        return match.iloc[0]

    def difference(self, a: str, b: str) -> Interval:
        """mean(a) - mean(b) with its pooled interval (NaN bounds when the noise is unknown)."""
        ra, rb = self.row(a), self.row(b)
        return pooled_difference_interval(float(ra["mean"]), int(ra["n"]), float(rb["mean"]),
                                          int(rb["n"]), self.noise, self.level)

    def gap(self, pattern: str) -> Interval:
        """How far ``pattern`` is behind the best, positive = worse, whatever the mode."""
        sign = 1.0 if self.mode == "min" else -1.0
        d = self.difference(pattern, str(self.best))
        lo, hi = sorted((sign * d.lo, sign * d.hi)) if math.isfinite(d.lo) else (d.lo, d.hi)
        return Interval(sign * d.estimate, lo, hi, d.n)


def resolve(trials: pd.DataFrame, metric: str, mode: str = "min", *,
            level: float = 0.95) -> Resolution:
    """Rank the patterns of ``trials`` on ``metric`` over their full-budget completed trials.

    Trials of a pattern are its seeds. Other tuned settings that differ within a pattern are
    listed in ``varying``: their effect is counted as noise.
    """
    if mode not in ("min", "max"):
        raise ArchsearchError(f"{metric}: mode must be 'min' or 'max', got {mode!r}")
    done = full_budget(trials)
    if metric not in done.columns:
        raise ArchsearchError(f"no column {metric} in the results")
    done = done[np.isfinite(done[metric].astype(float).to_numpy())]
    groups = [(str(p), g) for p, g in done.groupby(C.PATTERN, sort=True)]
    noise = pooled_noise(g[metric].astype(float).to_numpy() for _, g in groups)
    rows = []
    for pattern, group in groups:
        values = group[metric].astype(float).to_numpy()
        interval = pooled_mean_interval(float(values.mean()), len(values), noise, level)
        lo, hi = interval.lo, interval.hi
        if not noise.known and len(values) == 1:
            lo, hi = _evaluation_interval(group, metric)
        rows.append({C.PATTERN: pattern, "n": len(values), "mean": interval.estimate,
                     "lo": lo, "hi": hi})
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS[:5])
    sign = 1.0 if mode == "min" else -1.0
    table = (table.assign(_key=sign * table["mean"])
             .sort_values(["_key", C.PATTERN], kind="stable").drop(columns="_key")
             .reset_index(drop=True))
    diffs, lows, highs, statuses = [], [], [], []
    for i, row in table.iterrows():
        best = table.iloc[0]
        d = pooled_difference_interval(float(row["mean"]), int(row["n"]), float(best["mean"]),
                                       int(best["n"]), noise, level)
        diffs.append(d.estimate)
        lows.append(d.lo if i else math.nan)
        highs.append(d.hi if i else math.nan)
        statuses.append(BEST if i == 0 else UNKNOWN if not noise.known
                        else TIED if d.lo <= 0.0 <= d.hi else BEHIND)
    table = table.assign(diff=diffs, diff_lo=lows, diff_hi=highs, status=statuses)
    return Resolution(metric, mode, level, noise, table, varying_settings(done))


def varying_settings(trials: pd.DataFrame) -> tuple[str, ...]:
    """Tuned settings (``param.*`` but the pattern and the seed) that take more than one value
    among the trials of some pattern, by name without the ``param.`` prefix."""
    names = [c for c in trials.columns if str(c).startswith(C.PARAM_PREFIX)
             and c not in ("param.pattern", SEED_PARAM)]
    out = []
    for name in names:
        keyed = trials[name].map(lambda v: None if _missing(v) else repr(v))
        if (keyed.groupby(trials[C.PATTERN]).nunique(dropna=True) > 1).any():
            out.append(str(name)[len(C.PARAM_PREFIX):])
    return tuple(out)


def statement(res: Resolution, what: str | None = None, advice: bool = True) -> str:
    """One sentence a newcomer can act on: resolved (the winner and its margin), not resolved
    (who is tied with the best), or unknown (one seed each). ``advice``: end with what to run
    to resolve it."""
    what = what or res.metric
    if not len(res.table):
        return f"{what}: no full-budget completed trial has it"
    if len(res.table) == 1:
        return f"only {res.best} has a full-budget result on {what}: nothing to compare it with"
    caveat = ""
    if res.varying:
        caveat = (f"; trials of a pattern also differ in {join(res.varying)}, whose effect is "
                  "counted as noise here")
    if not res.noise.known:
        return (f"not resolved: every pattern ran one seed, so the tool cannot tell seed noise "
                f"from a real difference and the order on {what} may be noise ({EVALUATION_ONLY}"
                f"){'; ' + ONE_SEED_ADVICE if advice else ''}{caveat}")
    if res.resolved:
        gap = res.gap(str(res.runner_up))
        return (f"resolved: {res.best} is best on {what}, ahead of the runner-up "
                f"{res.runner_up} by {with_interval(gap)} ({res.level:.0%} interval, pooled seed "
                f"noise){caveat}")
    return (f"not resolved at this size: {join(res.tied)} cannot be told apart on {what} (each "
            f"is within seed noise of the best-measured {res.best})"
            f"{'; run more seeds or larger proxies' if advice else ''}{caveat}")


def noise_note(res: Resolution) -> str:
    """Where the intervals come from, for a table's caption."""
    if not res.noise.known:
        return ("one seed per pattern, so no seed-noise estimate; the intervals are each trial's "
                "evaluation bootstrap (validation sampling only, not seed-to-seed noise)")
    return (f"means over seeds with {res.level:.0%} intervals from the seed noise pooled over "
            f"the {res.noise.groups} pattern{'s' if res.noise.groups != 1 else ''} with 2+ seeds "
            f"({res.noise.df} degree{'s' if res.noise.df != 1 else ''} of freedom)")


def join(names: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = [str(n) for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def with_interval(interval: Interval, signed: bool = False) -> str:
    """``0.1000 [0.0411, 0.1589]``: as many decimals as show the interval's width to two or
    three digits (two to six); the bare estimate when there are no bounds."""
    decimals = decimals_for(interval.hi - interval.lo)
    text = number(interval.estimate, decimals, signed)
    if math.isfinite(interval.lo) and math.isfinite(interval.hi):
        text += f" [{number(interval.lo, decimals, signed)}, {number(interval.hi, decimals, signed)}]"
    return text


def decimals_for(width: float) -> int:
    if not math.isfinite(width) or width <= 0:
        return 4
    return min(6, max(2, 2 - math.floor(math.log10(width / 2))))


def number(value: float, decimals: int = 4, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def _evaluation_interval(group: pd.DataFrame, metric: str) -> tuple[float, float]:
    if C.lower(metric) in group.columns and C.upper(metric) in group.columns:
        return float(group[C.lower(metric)].iloc[0]), float(group[C.upper(metric)].iloc[0])
    return math.nan, math.nan


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
