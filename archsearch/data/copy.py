"""Copy tokens: tokens that continue a verbatim run already seen earlier in the same document.

Why: Ai2 found the hybrid's advantage shrinks toward zero on tokens that continue a verbatim repeat,
the more so the longer the run (docs/BACKGROUND.md, "Olmo Hybrid"). Attention copies such tokens
almost for free, so their loss measures recall, not language modelling, and must be scored apart.

Definition. In a document ``x``, token ``t`` is a copy token when, for some ``n >= k``
(``k = copy_min_run``), the ``n`` tokens before it plus itself, ``x[t-n .. t]``, occurred
earlier: ending at some ``j < t``. Its *run length* is the largest such ``n``: how many
tokens of the repeat precede it (the first ``k`` tokens of a repeated span are not copies; the
token after them has run ``k``). Its *source* is that ``j``: the earlier token it repeats, the
most recent one when several earlier occurrences match as long (``x[j] == x[t]``). Matches never
cross documents: call once per document.

A source can itself be a copy (a span seen three times: the third copies the second, which
copies the first). ``first_sources`` follows such chains back to the *first occurrence*, the
source that is not a copy: there the span was new, so a model could not copy it, which makes its
loss the baseline of ``copy_gain`` (``data/evaluate.py``).

Algorithm (linear in practice, no quadratic scan): every (k+1)-gram is hashed into a dict of
its earlier end positions. The run can grow by at most one per token, so when the occurrence
that matched at ``t-1`` also continues at ``t``, the run is ``run(t-1) + 1`` and nothing is
searched; otherwise the earlier occurrences of the (k+1)-gram ending at ``t`` are compared
backwards (at most ``max_candidates`` most recent ones, so pathological repetition stays
linear; run lengths are then exact for every occurrence checked).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from archsearch.errors import ArchsearchError
from archsearch.metrics import copy_bucket_names


@dataclass(frozen=True)
class CopyMatches:
    """Per token of one document: run length (0 = not a copy) and source position (-1 = none)."""

    run: np.ndarray  # int32
    source: np.ndarray  # int32, an earlier position of the same document


def copy_runs(tokens: Sequence[int] | np.ndarray, min_run: int = 4,
              max_candidates: int = 64) -> np.ndarray:
    """Run length per token (0 = not a copy token) for one document's token ids.

    ``run[t] >= min_run`` exactly when token ``t`` is a copy token (see module docstring).
    """
    return copy_matches(tokens, min_run, max_candidates).run


def copy_matches(tokens: Sequence[int] | np.ndarray, min_run: int = 4,
                 max_candidates: int = 64) -> CopyMatches:
    """Run length and source of every token of one document (see the module docstring)."""
    if min_run < 1:
        raise ArchsearchError(f"evaluation.copy_min_run: must be at least 1, got {min_run}")
    x = np.asarray(tokens, dtype=np.int64).tolist()
    n = len(x)
    runs = np.zeros(n, dtype=np.int32)
    sources = np.full(n, -1, dtype=np.int32)
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
        if run:
            # The continued occurrence is also the most recent one as long: a later j' with
            # run + 1 would have matched t-1 with run at j'-1 > prev_end, the most recent there.
            sources[t] = end
        prev_run, prev_end = run, end
        seen.setdefault(gram, []).append(t)
    return CopyMatches(runs, sources)


def copy_runs_reference(tokens: Sequence[int], min_run: int = 4) -> np.ndarray:
    """Quadratic brute force of ``copy_runs``, for tests."""
    return copy_matches_reference(tokens, min_run).run


def copy_matches_reference(tokens: Sequence[int], min_run: int = 4) -> CopyMatches:
    """Quadratic brute force of ``copy_matches``, for tests: compare every earlier end position
    and keep the longest match, the most recent among equals."""
    x = list(tokens)
    n = len(x)
    runs = np.zeros(n, dtype=np.int32)
    sources = np.full(n, -1, dtype=np.int32)
    for t in range(n):
        best, where = 0, -1
        for j in range(t):
            m = 0
            while j - m >= 0 and x[j - m] == x[t - m]:
                m += 1
            if m - 1 >= best and m > 0:  # m tokens matched including itself -> n = m - 1
                best, where = m - 1, j
        if best >= min_run:
            runs[t], sources[t] = best, where
    return CopyMatches(runs, sources)


def first_sources(source: np.ndarray) -> np.ndarray:
    """The first occurrence of every copy token: its source's source ..., until one that is not
    a copy (``source == -1``); -1 for tokens that are not copies.

    ``source`` holds, per item, the index of its source among the same items (-1: not a copy);
    sources always point backwards, so the chains end. Pointer doubling: each pass halves every
    remaining chain, so a pathological repetition (``5 5 5 ...``) costs log passes, not one
    pass per link.
    """
    src = np.asarray(source, dtype=np.int64)
    items = np.arange(len(src))
    parent = np.where(src >= 0, src, items)  # a non-copy is its own root
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            break
        parent = grand
    return np.where(src >= 0, parent, -1)


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
