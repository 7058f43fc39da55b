"""Per-token labels of scored text: class, first-token flag, copy flag and run, frequency.

One ``TokenLabels`` row per scored token, aligned with the per-token losses ``evaluate``
returns, so metrics, comparisons and the ``tag`` table all read the same arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from archsearch.data.categories import CATEGORIES, classify_tokens
from archsearch.data.copy import copy_runs

LABEL_FIELDS = ("doc", "position", "token", "category", "first", "copy_run", "log_freq")


@dataclass(frozen=True)
class TokenLabels:
    """Parallel arrays, one entry per token.

    ``doc`` numbers documents from 0; ``position`` is the token's index in its document;
    ``category`` is a code into ``categories.CATEGORIES``; ``copy_run`` is 0 for non-copy tokens
    and the run length (>= copy_min_run) for copy tokens; ``log_freq`` is log(1 + count of the
    token id in the training split), the frequency control of ``compare``.
    """

    doc: np.ndarray  # int32
    position: np.ndarray  # int32
    token: np.ndarray  # int64
    category: np.ndarray  # int8
    first: np.ndarray  # bool
    copy_run: np.ndarray  # int32
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
                   np.zeros(0, np.float64))

    def take(self, index: np.ndarray) -> TokenLabels:
        return TokenLabels(**{f: getattr(self, f)[index] for f in LABEL_FIELDS})


def label_document(doc: int, text: str, ids: np.ndarray, offsets: np.ndarray,
                   copy_min_run: int, log_freq: np.ndarray | None = None) -> TokenLabels:
    """Labels of one document's tokens (classes from offsets, copies from ids)."""
    classes = classify_tokens(text, offsets)
    runs = copy_runs(ids, copy_min_run)
    n = len(ids)
    lf = log_freq[ids] if log_freq is not None and n else np.zeros(n, np.float64)
    return TokenLabels(
        doc=np.full(n, doc, dtype=np.int32),
        position=np.arange(n, dtype=np.int32),
        token=np.asarray(ids, dtype=np.int64),
        category=classes.codes.astype(np.int8),
        first=classes.first,
        copy_run=runs.astype(np.int32),
        log_freq=np.asarray(lf, dtype=np.float64),
    )
