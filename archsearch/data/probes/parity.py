"""Parity (S2 state tracking): ``MARK b1 ... bn`` with bits, target the running XOR.

At the position of ``b_i`` the target is ``b_1 xor ... xor b_i`` (symbols 0 and 1). A linear
RNN needs negative eigenvalues to track it past the training length (Grazzi et al., ICLR 2025):
the ``long`` split (lengths ``train_max + 1 .. long_max``, scored past ``train_max``) is where
that shows.
"""

from __future__ import annotations

import random

import numpy as np

from archsearch.data.probes.base import (
    IGNORE,
    ProbeSequence,
    StateTrackingProbe,
    make_sequence,
)


class ParityProbe(StateTrackingProbe):
    name = "parity"

    def example(self, rng: random.Random, room: int, split: str = "in") -> ProbeSequence | None:
        n = self.length(rng, room, split)
        if n is None:
            return None
        v = self.vocab
        first = self.scored_from(split)
        state = 0
        inputs, targets = [self.marker], [IGNORE]
        for step in range(1, n + 1):
            bit = rng.randrange(2)
            state ^= bit
            inputs.append(v.sym(bit))
            targets.append(v.sym(state) if step >= first else IGNORE)
        return make_sequence(inputs, targets, split)

    def candidates(self) -> np.ndarray:
        return np.asarray([self.vocab.sym(0), self.vocab.sym(1)], dtype=np.int64)


PROBE = ParityProbe
