"""Per-token labels of scored text: class, first-token flag, copy run and source, frequency.

One ``TokenLabels`` row per scored token, aligned with the per-token losses ``evaluate``
returns, so metrics, comparisons and the ``tag`` table all read the same arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from archsearch.data.categories import CATEGORIES, classify_tokens
from archsearch.data.copy import copy_matches, first_sources

LABEL_FIELDS = ("doc", "position", "token", "category", "first", "copy_run", "copy_source",
                "log_freq")


@dataclass(frozen=True)
class TokenLabels:
    """Parallel arrays, one entry per token.

    ``doc`` numbers documents from 0; ``position`` is the token's index in its document;
    ``category`` is a code into ``categories.CATEGORIES``; ``copy_run`` is 0 for non-copy tokens
    and the run length (>= copy_min_run) for copy tokens; ``copy_source`` is the position (in
    the same document) of the earlier token a copy token repeats, -1 for non-copy tokens (see
    ``data/copy.py``); ``log_freq`` is log(1 + count of the token id in the training split), the
    frequency control of ``compare``.
    """

    doc: np.ndarray  # int32
    position: np.ndarray  # int32
    token: np.ndarray  # int64
    category: np.ndarray  # int8
    first: np.ndarray  # bool
    copy_run: np.ndarray  # int32
    copy_source: np.ndarray  # int32
    log_freq: np.ndarray  # float64

    def __len__(self) -> int:
        return int(self.doc.shape[0])

    @property
    def copy(self) -> np.ndarray:
        """Copy flag per token."""
        return self.copy_run > 0

    @property
    def n_docs(self) -> int:
        return int(self.doc.max()) + 1 if len(self) else 0

    def category_mask(self, name: str) -> np.ndarray:
        """Tokens of a class, or of the ``copy`` flag."""
        if name == "copy":
            return self.copy
        return self.category == CATEGORIES.index(name)

    def source_rows(self) -> np.ndarray:
        """Per token, the row (index into these labels) of its copy source; -1 for non-copy
        tokens and for sources not among these labels."""
        n = len(self)
        out = np.full(n, -1, dtype=np.int64)
        is_copy = self.copy_source >= 0
        if not is_copy.any():
            return out
        # rows sorted by (doc, position); a source is found by binary search on that key
        order = np.lexsort((self.position, self.doc))
        span = int(self.position.max()) + 1
        keys = self.doc[order].astype(np.int64) * span + self.position[order]
        wanted = self.doc[is_copy].astype(np.int64) * span + self.copy_source[is_copy]
        at = np.clip(np.searchsorted(keys, wanted), 0, n - 1)
        out[is_copy] = np.where(keys[at] == wanted, order[at], -1)
        return out

    def first_source_rows(self) -> np.ndarray:
        """Per token, the row of the first occurrence it repeats (the end of its chain of
        sources: a token that is not itself a copy); -1 for non-copy tokens."""
        return first_sources(self.source_rows())

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in LABEL_FIELDS}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> TokenLabels:
        return cls(**{f: np.asarray(arrays[f]) for f in LABEL_FIELDS})

    @classmethod
    def concat(cls, parts: Sequence[TokenLabels]) -> TokenLabels:
        if not parts:
            return cls.empty()
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in LABEL_FIELDS})

    @classmethod
    def empty(cls) -> TokenLabels:
        return cls(np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64),
                   np.zeros(0, np.int8), np.zeros(0, bool), np.zeros(0, np.int32),
                   np.zeros(0, np.int32), np.zeros(0, np.float64))

    def take(self, index: np.ndarray) -> TokenLabels:
        return TokenLabels(**{f: getattr(self, f)[index] for f in LABEL_FIELDS})


def label_document(doc: int, text: str, ids: np.ndarray, offsets: np.ndarray,
                   copy_min_run: int, log_freq: np.ndarray | None = None) -> TokenLabels:
    """Labels of one document's tokens (classes from offsets, copies from ids)."""
    classes = classify_tokens(text, offsets)
    matches = copy_matches(ids, copy_min_run)
    n = len(ids)
    lf = log_freq[ids] if log_freq is not None and n else np.zeros(n, np.float64)
    return TokenLabels(
        doc=np.full(n, doc, dtype=np.int32),
        position=np.arange(n, dtype=np.int32),
        token=np.asarray(ids, dtype=np.int64),
        category=classes.codes.astype(np.int8),
        first=classes.first,
        copy_run=matches.run.astype(np.int32),
        copy_source=matches.source.astype(np.int32),
        log_freq=np.asarray(lf, dtype=np.float64),
    )
