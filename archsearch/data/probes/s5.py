"""State tracking on S5 (Merrill et al., "The Illusion of State").

``MARK g1 ... gn``: each ``g`` is one of the 120 permutations of five elements (symbol = its
index in lexicographic order, ``S5_ELEMENTS``). At the position of ``g_i`` the target is the
running product ``p_i = g_i o p_(i-1)`` (apply ``g_1`` first), i.e. ``p_i[x] = g_i[p_(i-1)[x]]``,
with ``p_0`` the identity. Non-solvable S5 cannot be tracked by constant-depth circuits, so
accuracy past the training lengths separates recurrent state from attention.
Training lengths ``min_len .. train_max``; ``long`` split ``train_max + 1 .. long_max``, scored
past ``train_max``.
"""

from __future__ import annotations

import itertools
import random

import numpy as np

from archsearch.data.probes.base import (
    IGNORE,
    ProbeSequence,
    StateTrackingProbe,
    make_sequence,
)

S5_ELEMENTS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(5)))
S5_INDEX: dict[tuple[int, ...], int] = {p: i for i, p in enumerate(S5_ELEMENTS)}


def compose(g: tuple[int, ...], p: tuple[int, ...]) -> tuple[int, ...]:
    """``g o p``: apply ``p`` then ``g``."""
    return tuple(g[p[x]] for x in range(len(p)))


class S5Probe(StateTrackingProbe):
    name = "s5"

    def example(self, rng: random.Random, room: int, split: str = "in") -> ProbeSequence | None:
        n = self.length(rng, room, split)
        if n is None:
            return None
        v = self.vocab
        first = self.scored_from(split)
        state = S5_ELEMENTS[0]
        inputs, targets = [self.marker], [IGNORE]
        for step in range(1, n + 1):
            g = rng.randrange(len(S5_ELEMENTS))
            state = compose(S5_ELEMENTS[g], state)
            inputs.append(v.sym(g))
            targets.append(v.sym(S5_INDEX[state]) if step >= first else IGNORE)
        return make_sequence(inputs, targets, split)

    def candidates(self) -> np.ndarray:
        return np.asarray([self.vocab.sym(i) for i in range(len(S5_ELEMENTS))], dtype=np.int64)


PROBE = S5Probe
