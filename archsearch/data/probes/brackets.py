"""Bracket matching (Dyck): nested mixed brackets with filler symbols between them.

``MARK`` then a well-nested sequence over ``types`` bracket pairs (opens are symbols
``0 .. types-1``, the matching closes ``types .. 2*types-1``) and ``fillers`` filler symbols
(from ``2*types``). Scored: every position whose next token is a closing bracket, with that
closing bracket as target; accuracy takes the argmax among the closing brackets only, so it
measures *which* delimiter closes (the innermost open one), not *when*. Training uses depth
``<= max_depth`` and up to ``train_max`` tokens; the ``long`` split is deeper and longer.
"""

from __future__ import annotations

import random

import numpy as np

from archsearch.data.probes.base import (
    Probe,
    ProbeSequence,
    ProbeVocab,
    next_token_sequence,
)


class BracketsProbe(Probe):
    name = "brackets"

    def __init__(self, vocab: ProbeVocab, max_len: int, types: int = 3, fillers: int = 16,
                 max_depth: int = 4, long_depth: int = 8, train_max: int | None = None,
                 long_max: int | None = None) -> None:
        super().__init__(vocab, max_len)
        self.types, self.fillers = types, fillers
        self.max_depth, self.long_depth = max_depth, long_depth
        self.long_max = long_max if long_max is not None else max_len
        self.train_max = train_max if train_max is not None else max(8, self.long_max // 2)

    def close_of(self, open_sym: int) -> int:
        return open_sym + self.types

    def example(self, rng: random.Random, room: int, split: str = "in") -> ProbeSequence | None:
        if split == "in":
            hi, depth = min(room, self.train_max), self.max_depth
            lo = 4
        else:
            hi, depth = min(room, self.long_max), self.long_depth
            lo = self.train_max + 1
        if hi < lo:
            return None
        n = rng.randint(lo, hi)  # inputs length; full sequence is n + 1 tokens with the marker
        body: list[int] = []
        stack: list[int] = []
        while len(body) < n:
            left = n - len(body) - len(stack)  # tokens left after closing everything open
            r = rng.random()
            if stack and (left <= 0 or r < 0.35):
                body.append(self.close_of(stack.pop()))
            elif left >= 2 and len(stack) < depth and r < 0.75:
                t = rng.randrange(self.types)
                stack.append(t)
                body.append(t)
            elif left >= 1:
                body.append(2 * self.types + rng.randrange(self.fillers))
            else:
                body.append(self.close_of(stack.pop()))
        v = self.vocab
        full = [self.marker, *(v.sym(s) for s in body)]
        closes = {v.sym(self.close_of(t)) for t in range(self.types)}
        scored = [j for j in range(len(full) - 1) if full[j + 1] in closes]
        if not scored:
            return self.example(rng, room, split)
        return next_token_sequence(full, scored, split)

    def candidates(self) -> np.ndarray:
        return np.asarray([self.vocab.sym(self.close_of(t)) for t in range(self.types)],
                          dtype=np.int64)


PROBE = BracketsProbe
