"""Copy tokens: tokens that continue a verbatim run already seen earlier in the same document.

Why: Ai2 found the hybrid's advantage shrinks toward zero on tokens that continue a verbatim
repeat, the more so the longer the run (REFERENCE.md §1). Attention copies such tokens almost
for free, so their loss measures recall, not language modelling, and must be scored apart.

Definition. In a document ``x``, token ``t`` is a copy token when, for some ``n >= k``
(``k = copy_min_run``), the ``n`` tokens before it plus itself, ``x[t-n .. t]``, occurred
earlier: ending at some ``j < t``. Its *run length* is the largest such ``n``: how many
tokens of the repeat precede it (the first ``k`` tokens of a repeated span are not copies; the
token after them has run ``k``). Matches never cross documents: call once per document.

Algorithm (linear in practice, no quadratic scan): every (k+1)-gram is hashed into a dict of
its earlier end positions. The run can grow by at most one per token, so when the occurrence
that matched at ``t-1`` also continues at ``t``, the run is ``run(t-1) + 1`` and nothing is
searched; otherwise the earlier occurrences of the (k+1)-gram ending at ``t`` are compared
backwards (at most ``max_candidates`` most recent ones, so pathological repetition stays
linear; run lengths are then exact for every occurrence checked).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from archsearch.errors import ArchsearchError
from archsearch.metrics import copy_bucket_names


def copy_runs(tokens: Sequence[int] | np.ndarray, min_run: int = 4,
              max_candidates: int = 64) -> np.ndarray:
    """Run length per token (0 = not a copy token) for one document's token ids.

    ``run[t] >= min_run`` exactly when token ``t`` is a copy token (see module docstring).
    """
    if min_run < 1:
        raise ArchsearchError(f"evaluation.copy_min_run: must be at least 1, got {min_run}")
    x = np.asarray(tokens, dtype=np.int64).tolist()
    n = len(x)
    runs = np.zeros(n, dtype=np.int32)
    k = min_run
    seen: dict[tuple[int, ...], list[int]] = {}
    prev_run = 0
    prev_end = -1  # end position of the occurrence matched at t-1 (when prev_run >= k)
    for t in range(k, n):
        gram = tuple(x[t - k: t + 1])
        run = 0
        end = -1
        if prev_run >= k and prev_end + 1 < t and x[prev_end + 1] == x[t]:
            run, end = prev_run + 1, prev_end + 1
        else:
            cands = seen.get(gram)
            if cands:
                cap = prev_run + 1 if prev_run >= k else k
                for j in reversed(cands[-max_candidates:]):
                    m = k  # the (k+1)-gram itself matched: n >= k
                    while m < cap and j - m - 1 >= 0 and x[j - m - 1] == x[t - m - 1]:
                        m += 1
                    if m > run:
                        run, end = m, j
                        if m == cap:
                            break
        runs[t] = run
        prev_run, prev_end = run, end
        seen.setdefault(gram, []).append(t)
    return runs


def copy_runs_reference(tokens: Sequence[int], min_run: int = 4) -> np.ndarray:
    """Quadratic brute force of ``copy_runs``, for tests: compare every earlier end position."""
    x = list(tokens)
    n = len(x)
    out = np.zeros(n, dtype=np.int32)
    for t in range(n):
        best = 0
        for j in range(t):
            m = 0
            while j - m >= 0 and x[j - m] == x[t - m]:
                m += 1
            best = max(best, m - 1)  # m tokens matched including itself -> n = m - 1
        out[t] = best if best >= min_run else 0
    return out


def bucket_of(runs: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """Bucket index per run length (-1 = below the first edge or not a copy token).

    Edges [4, 8, 16] give buckets 4..7, 8..15, 16+, named by ``metrics.copy_bucket_names``.
    """
    e = np.asarray(sorted(edges), dtype=np.int64)
    if len(e) == 0:
        return np.full(len(runs), -1, dtype=np.int64)
    idx = np.searchsorted(e, np.asarray(runs, dtype=np.int64), side="right") - 1
    return np.where(np.asarray(runs) >= e[0], idx, -1)


def bucket_names(edges: Sequence[int]) -> list[str]:
    """Names of the buckets of ``bucket_of``, as metrics use them (``4_7``, ``16_plus``)."""
    return copy_bucket_names(list(edges))
