"""Parity (S2 state tracking): ``MARK b1 ... bn`` with bits, target the running XOR.

At the position of ``b_i`` the target is ``b_1 xor ... xor b_i`` (symbols 0 and 1). A linear
RNN needs negative eigenvalues to track it past the training length (Grazzi et al., ICLR 2025):
the ``long`` split (lengths ``train_max + 1 .. long_max``) is where that shows.
"""

from __future__ import annotations

import random

import numpy as np

from archsearch.data.probes.base import (
    IGNORE,
    Probe,
    ProbeSequence,
    ProbeVocab,
    clamp_range,
    make_sequence,
)


class ParityProbe(Probe):
    name = "parity"

    def __init__(self, vocab: ProbeVocab, seq_len: int, min_len: int = 2,
                 train_max: int | None = None, long_max: int | None = None) -> None:
        super().__init__(vocab, seq_len)
        self.min_len = min_len
        self.long_max = long_max if long_max is not None else max(min_len, seq_len - 1)
        self.train_max = train_max if train_max is not None else max(min_len, self.long_max // 2)

    def example(self, rng: random.Random, max_len: int, split: str = "in") -> ProbeSequence | None:
        cap = max_len - 1
        span = (clamp_range(self.min_len, self.train_max, cap) if split == "in"
                else clamp_range(self.train_max + 1, self.long_max, cap))
        if span is None:
            return None
        n = rng.randint(*span)
        v = self.vocab
        state = 0
        inputs, targets = [self.marker], [IGNORE]
        for _ in range(n):
            bit = rng.randrange(2)
            state ^= bit
            inputs.append(v.sym(bit))
            targets.append(v.sym(state))
        return make_sequence(inputs, targets, split)

    def candidates(self) -> np.ndarray:
        return np.asarray([self.vocab.sym(0), self.vocab.sym(1)], dtype=np.int64)


PROBE = ParityProbe
