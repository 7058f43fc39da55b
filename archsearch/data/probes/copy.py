"""Verbatim copy (Jelassi et al. 2024, "Repeat After Me"): ``MARK s SEP s EOS``.

``s`` is a random string over an alphabet of ``alphabet`` symbols; only the second ``s`` is
scored (each of its tokens predicted from the previous one). Training lengths are
``min_len .. train_max``; the ``long`` split uses ``train_max + 1 .. long_max``, lengths never
seen in training, because copying beyond the training length is where fixed-state models fail.
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


class CopyProbe(Probe):
    name = "copy"

    def __init__(self, vocab: ProbeVocab, max_len: int, alphabet: int = 32, min_len: int = 4,
                 train_max: int | None = None, long_max: int | None = None) -> None:
        super().__init__(vocab, max_len)
        self.alphabet = alphabet
        self.min_len = min_len
        self.long_max = long_max if long_max is not None else max(min_len, (max_len - 2) // 2)
        self.train_max = train_max if train_max is not None else max(min_len, self.long_max // 2)

    def example(self, rng: random.Random, room: int, split: str = "in") -> ProbeSequence | None:
        cap = (room - 2) // 2  # inputs are 2L + 2 tokens
        span = (clamp_range(self.min_len, self.train_max, cap) if split == "in"
                else clamp_range(self.train_max + 1, self.long_max, cap))
        if span is None:
            return None
        length = rng.randint(*span)
        v = self.vocab
        s = [v.sym(rng.randrange(self.alphabet)) for _ in range(length)]
        full = [self.marker, *s, v.special("SEP"), *s, v.special("EOS")]
        # position L+1 holds SEP; positions L+1 .. 2L predict the second s
        return next_token_sequence(full, range(length + 1, 2 * length + 1), split)

    def candidates(self) -> np.ndarray:
        return np.asarray([self.vocab.sym(i) for i in range(self.alphabet)], dtype=np.int64)


PROBE = CopyProbe
