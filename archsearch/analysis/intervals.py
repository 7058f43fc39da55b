"""Confidence intervals for means and differences of means over a few seeds.

Student-t intervals: sweeps have 1-5 seeds per pattern, too few for a bootstrap to be honest.
Two flavours: each pattern's own spread (``mean_interval``, Welch's ``difference_interval``),
and one seed-noise estimate pooled over every pattern that ran several seeds (``pooled_noise``,
``pooled_mean_interval``, ``pooled_difference_interval``), which is what tells patterns apart
when each has only two or three seeds (docs/ANALYSIS.md, "Resolution"). The t quantile is
``scipy.stats.t``'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval ``[lo, hi]``; NaN bounds when there is none.

    The one interval type of the package: seed t-intervals here, bootstrap percentile intervals
    in ``scaling`` (``n`` counts what it was computed from: seeds, or bootstrap replicates)."""

    estimate: float
    lo: float
    hi: float
    n: int

    @property
    def defined(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)

    def covers(self, value: float) -> bool:
        return self.lo <= value <= self.hi


UNDEFINED = Interval(math.nan, math.nan, math.nan, 0)


def percentile_interval(estimate: float, samples: Sequence[float] | np.ndarray,
                        level: float = 0.95) -> Interval:
    """``estimate`` with the central ``level`` percentile interval of ``samples`` (a bootstrap's
    replicates; NaNs dropped). Undefined below two finite samples."""
    x = np.asarray(samples, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return Interval(estimate, math.nan, math.nan, len(x))
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(x, [tail, 100 - tail])
    return Interval(estimate, float(lo), float(hi), len(x))


def t_quantile(df: float, level: float = 0.95) -> float:
    """The two-sided ``level`` quantile of Student's t with ``df`` degrees of freedom.

    Fractional ``df`` (Welch) is rounded down, which widens the interval slightly.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(stats.t.ppf(0.5 + level / 2, max(1, math.floor(df))))


def mean_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """Mean of ``values`` (NaNs dropped) with its t-interval; lo = hi = NaN below two values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = t_quantile(n - 1, level) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def difference_interval(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, level: float = 0.95
) -> Interval:
    """mean(a) - mean(b) with Welch's t-interval; lo = hi = NaN unless both have two values."""
    x, y = (np.asarray(v, dtype=float) for v in (a, b))
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if not len(x) or not len(y):
        return Interval(math.nan, math.nan, math.nan, min(len(x), len(y)))
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return Interval(diff, math.nan, math.nan, min(len(x), len(y)))
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    if se == 0:
        return Interval(diff, diff, diff, min(len(x), len(y)))
    welch_df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    half = t_quantile(welch_df, level) * se
    return Interval(diff, diff - half, diff + half, min(len(x), len(y)))


@dataclass(frozen=True)
class SeedNoise:
    """The seed-to-seed standard deviation pooled over groups (patterns) with two or more values.

    ``sd`` is NaN and ``df`` 0 when no group has two values: the noise is then unknown.
    """

    sd: float
    df: int  # degrees of freedom: the sum over pooled groups of (values - 1)
    groups: int  # how many groups had two or more values

    @property
    def known(self) -> bool:
        return self.df >= 1 and math.isfinite(self.sd)


UNKNOWN_NOISE = SeedNoise(math.nan, 0, 0)


def pooled_noise(groups: Iterable[Sequence[float] | np.ndarray]) -> SeedNoise:
    """Pool the within-group variance: s^2 = sum of squared deviations from each group's mean
    over sum(n_g - 1), across the groups with at least two finite values."""
    squares, df, pooled = 0.0, 0, 0
    for values in groups:
        x = np.asarray(values, dtype=float)
        x = x[np.isfinite(x)]
        if len(x) < 2:
            continue
        squares += float(((x - x.mean()) ** 2).sum())
        df += len(x) - 1
        pooled += 1
    if df == 0:
        return UNKNOWN_NOISE
    return SeedNoise(math.sqrt(squares / df), df, pooled)


def pooled_mean_interval(mean: float, n: int, noise: SeedNoise, level: float = 0.95) -> Interval:
    """``mean`` of ``n`` seeds with the t-interval of the pooled noise: mean +- t(df) s / sqrt(n).

    lo = hi = NaN when the noise is unknown."""
    if not noise.known or n < 1:
        return Interval(mean, math.nan, math.nan, n)
    half = t_quantile(noise.df, level) * noise.sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def pooled_difference_interval(mean_a: float, n_a: int, mean_b: float, n_b: int,
                               noise: SeedNoise, level: float = 0.95) -> Interval:
    """mean_a - mean_b +- t(df) s sqrt(1/n_a + 1/n_b): the pooled two-sample t-interval, with
    every pooled pattern's seeds lending their degrees of freedom. NaN bounds if the noise is
    unknown; ``n`` is the smaller sample."""
    diff = mean_a - mean_b
    if not noise.known or n_a < 1 or n_b < 1:
        return Interval(diff, math.nan, math.nan, min(n_a, n_b))
    half = t_quantile(noise.df, level) * noise.sd * math.sqrt(1 / n_a + 1 / n_b)
    return Interval(diff, diff - half, diff + half, min(n_a, n_b))
