"""Multi-query associative recall (Zoology's MQAR).

``MARK k1 v1 ... kn vn`` then a query region of ``2n`` two-token slots. ``n`` slots hold the
``n`` keys (shuffled) each followed by its value; the others hold ``FILL FILL``. Query slots are
drawn without replacement with probability proportional to ``(slot + 1) ** -power``, so gaps
between a pair and its query follow a power law, as in Zoology. Scored: the value after each
queried key. Keys are symbols ``0 .. keys-1``, values ``keys .. keys+values-1``.
Difficulty is the number of pairs: ``min_pairs .. max_pairs`` in training, and
``max_pairs + 1 .. long_pairs`` in the ``long`` split (more pairs than trained: a fixed-size
recurrent state runs out of room to store them, attention's cache does not; Zoology).
"""

from __future__ import annotations

import random

import numpy as np

from archsearch.data.probes.base import (
    Probe,
    ProbeSequence,
    ProbeVocab,
    clamp_range,
    next_token_sequence,
)


class MQARProbe(Probe):
    name = "mqar"

    def __init__(self, vocab: ProbeVocab, max_len: int, keys: int = 64, values: int = 64,
                 min_pairs: int = 2, max_pairs: int | None = None,
                 long_pairs: int | None = None, power: float = 1.0) -> None:
        super().__init__(vocab, max_len)
        self.keys, self.values, self.power = keys, values, power
        self.min_pairs = min_pairs
        self.long_pairs = long_pairs if long_pairs is not None else max(
            min_pairs, min(keys, max_len // 6))
        self.max_pairs = max_pairs if max_pairs is not None else max(
            min_pairs, self.long_pairs // 2)
        if self.long_pairs > keys:
            raise ValueError(f"mqar: {self.long_pairs} pairs need as many keys, have {keys}")

    def example(self, rng: random.Random, room: int, split: str = "in") -> ProbeSequence | None:
        cap = room // 6  # inputs: 6n tokens
        span = (clamp_range(self.min_pairs, self.max_pairs, cap) if split == "in"
                else clamp_range(self.max_pairs + 1, self.long_pairs, cap))
        if span is None:
            return None
        n = rng.randint(*span)
        v = self.vocab
        keys = rng.sample(range(self.keys), n)
        vals = [rng.randrange(self.values) for _ in range(n)]
        full = [self.marker]
        for k, val in zip(keys, vals, strict=True):
            full += [v.sym(k), v.sym(self.keys + val)]
        n_slots = 2 * n
        slots = _weighted_sample(rng, [(s + 1) ** -self.power for s in range(n_slots)], n)
        order = rng.sample(range(n), n)
        query_at = dict(zip(sorted(slots), order, strict=True))
        scored = []
        for s in range(n_slots):
            if s in query_at:
                q = query_at[s]
                scored.append(len(full))
                full += [v.sym(keys[q]), v.sym(self.keys + vals[q])]
            else:
                full += [v.special("FILL"), v.special("FILL")]
        return next_token_sequence(full, scored, split)

    def candidates(self) -> np.ndarray:
        return np.asarray([self.vocab.sym(self.keys + i) for i in range(self.values)],
                          dtype=np.int64)


def _weighted_sample(rng: random.Random, weights: list[float], k: int) -> list[int]:
    """``k`` distinct indices, drawn one by one in proportion to ``weights`` (no replacement)."""
    w = list(weights)
    out = []
    for _ in range(k):
        x = rng.random() * sum(w)
        acc = 0.0
        for i, wi in enumerate(w):
            acc += wi
            if x < acc and wi > 0:
                break
        else:
            i = max(j for j, wj in enumerate(w) if wj > 0)
        out.append(i)
        w[i] = 0.0
    return out


PROBE = MQARProbe
