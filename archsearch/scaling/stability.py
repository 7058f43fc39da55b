"""Does the ranking of patterns hold as the proxies grow? Kendall tau and swaps between rungs.

Input: one score per (pattern, rung), lower is better (a mean loss over seeds, or a weighted
score). Output: for each pair of consecutive rungs, Kendall's tau-b between the two rankings
(1 = same order, -1 = reversed; ties handled by tau-b), and every pair of patterns whose order
flips between them. A ranking that still reshuffles at the largest rungs is a warning that the
proxies have not reached the regime where the comparison transfers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy.stats import kendalltau


@dataclass(frozen=True)
class RungPair:
    """Agreement of the rankings at two consecutive rungs."""

    rung_a: int
    rung_b: int
    tau: float  # NaN with fewer than two patterns scored at both rungs
    p_value: float
    n_patterns: int


@dataclass(frozen=True)
class Swap:
    """Two patterns whose order flips between ``rung_a`` and the next rung ``rung_b``."""

    rung_a: int
    rung_b: int
    ahead_before: str  # better (lower) at rung_a
    ahead_after: str  # better at rung_b


@dataclass(frozen=True)
class Stability:
    pairs: tuple[RungPair, ...]
    swaps: tuple[Swap, ...]
    rankings: dict[int, tuple[str, ...]]  # best first, per rung

    @property
    def last_tau(self) -> float:
        """Tau between the two largest rungs: the one that matters for extrapolation."""
        return self.pairs[-1].tau if self.pairs else math.nan

    def as_dict(self) -> dict[str, object]:
        return {
            "pairs": [vars(p) for p in self.pairs],
            "swaps": [vars(s) for s in self.swaps],
            "rankings": {str(k): list(v) for k, v in self.rankings.items()},
        }


def ranking(scores: Mapping[str, float]) -> tuple[str, ...]:
    """Patterns best (lowest score) first; ties broken by name so the order is reproducible."""
    finite = {k: v for k, v in scores.items() if math.isfinite(v)}
    return tuple(sorted(finite, key=lambda k: (finite[k], k)))


def rank_stability(scores: Mapping[str, Mapping[int, float]]) -> Stability:
    """``scores[pattern][rung]`` -> tau and swaps between each pair of consecutive rungs.

    Only patterns scored (finitely) at both rungs of a pair enter that pair's comparison.
    """
    rungs = sorted({r for per_rung in scores.values() for r in per_rung})
    rankings = {r: ranking({p: s[r] for p, s in scores.items() if r in s}) for r in rungs}
    pairs, swaps = [], []
    for a, b in itertools.pairwise(rungs):
        common = [p for p in sorted(scores)
                  if _finite(scores[p].get(a)) and _finite(scores[p].get(b))]
        x = [scores[p][a] for p in common]
        y = [scores[p][b] for p in common]
        pairs.append(_tau(a, b, x, y))
        swaps.extend(_swaps(a, b, common, x, y))
    return Stability(pairs=tuple(pairs), swaps=tuple(swaps), rankings=rankings)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _tau(a: int, b: int, x: Sequence[float], y: Sequence[float]) -> RungPair:
    if len(x) < 2:
        return RungPair(a, b, math.nan, math.nan, len(x))
    result = kendalltau(x, y)  # tau-b: ties in either ranking are accounted for
    return RungPair(a, b, float(result.statistic), float(result.pvalue), len(x))


def _swaps(a: int, b: int, names: Sequence[str], x: Sequence[float],
           y: Sequence[float]) -> list[Swap]:
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            before, after = x[i] - x[j], y[i] - y[j]
            if before * after < 0:  # strictly opposite signs: a tie is not a swap
                first, second = (names[i], names[j]) if before < 0 else (names[j], names[i])
                out.append(Swap(a, b, ahead_before=first, ahead_after=second))
    return out
