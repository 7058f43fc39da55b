"""Entity tracking with boxes and items (after Kim & Schuster's boxes task).

``MARK`` then ``PUT item box`` for every item (its initial box), then a stream of operations:
``PUT item box`` moves an item to another box; ``QUERY item box`` asks where an item is now,
scored at the item's position with the current box as target (the next token). The state of a
queried entity is thus the result of every earlier move of that item. Items are symbols
``0 .. items-1``, boxes ``items .. items+boxes-1``. Training sequences use up to ``train_max``
tokens; the ``long`` split has more operations (up to ``long_max`` tokens).
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


class EntityProbe(Probe):
    name = "entity"

    def __init__(self, vocab: ProbeVocab, max_len: int, items: int = 8, boxes: int = 8,
                 query_rate: float = 0.35, train_max: int | None = None,
                 long_max: int | None = None) -> None:
        super().__init__(vocab, max_len)
        self.items, self.boxes, self.query_rate = items, boxes, query_rate
        self.long_max = long_max if long_max is not None else max_len
        self.train_max = train_max if train_max is not None else max(13, self.long_max // 2)

    def example(self, rng: random.Random, room: int, split: str = "in") -> ProbeSequence | None:
        # tokens = 1 + 3 * (n_items + n_ops); inputs are one shorter
        budget = min(room + 1, self.train_max + 1 if split == "in" else self.long_max + 1)
        n_items = min(self.items, rng.randint(2, self.items), (budget - 4) // 3)
        if n_items < 2:
            return None
        max_ops = (budget - 1) // 3 - n_items
        min_ops = 1 if split == "in" else max(1, (self.train_max + 1 - 1) // 3 - n_items + 1)
        if max_ops < min_ops:
            return None
        n_ops = rng.randint(min_ops, max_ops)
        v = self.vocab
        where = {}
        full = [self.marker]
        for item in rng.sample(range(self.items), n_items):
            where[item] = rng.randrange(self.boxes)
            full += [v.special("PUT"), v.sym(item), v.sym(self.items + where[item])]
        items = list(where)
        scored = []
        for op in range(n_ops):
            item = rng.choice(items)
            if rng.random() < self.query_rate or op == n_ops - 1:  # always end on a query
                scored.append(len(full) + 1)
                full += [v.special("QUERY"), v.sym(item), v.sym(self.items + where[item])]
            else:
                where[item] = rng.choice([b for b in range(self.boxes) if b != where[item]])
                full += [v.special("PUT"), v.sym(item), v.sym(self.items + where[item])]
        return next_token_sequence(full, scored, split)

    def candidates(self) -> np.ndarray:
        return np.asarray([self.vocab.sym(self.items + b) for b in range(self.boxes)],
                          dtype=np.int64)


PROBE = EntityProbe
