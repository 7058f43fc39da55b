"""Beam search over placements, for spaces with more candidates than can be scored one by one.

For one target layer count (``{"A": 2, "G": 6}``), placements grow from the stack made of the
most frequent symbol: each step puts one more of the other symbols at one more position, every
extension of every kept placement is scored, and the ``width`` best are kept. After as many steps
as there are other layers, the kept placements are the search's answer for that count. Every
subnet on the way is scored at the target count's config (its MLP width), the one its answer
will be trained at.
"""

from __future__ import annotations

from collections.abc import Callable

Scorer = Callable[[tuple[str, ...]], float]


def beam_search(counts: dict[str, int], score: Scorer, width: int) -> list[tuple[str, ...]]:
    """The ``width`` best placements of ``counts`` found (best first), lower score better."""
    background = max(counts, key=lambda s: (counts[s], s))
    depth = sum(counts.values())
    to_place = {s: n for s, n in counts.items() if s != background and n}
    beam: list[tuple[str, ...]] = [(background,) * depth]
    for _ in range(sum(to_place.values())):
        extensions: dict[tuple[str, ...], None] = {}
        for layers in beam:
            placed = {s: layers.count(s) for s in to_place}
            for symbol, wanted in to_place.items():
                if placed[symbol] >= wanted:
                    continue
                for i, current in enumerate(layers):
                    if current == background:
                        extensions[layers[:i] + (symbol,) + layers[i + 1:]] = None
        scored = sorted((score(layers), layers) for layers in extensions)
        beam = [layers for _, layers in scored[:width]]
    return beam
