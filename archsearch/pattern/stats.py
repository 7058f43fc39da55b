"""Statistics of a layer stack: what a sweep records about each candidate pattern."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ATTENTION_KINDS = frozenset({"attention"})


@dataclass(frozen=True)
class PatternStats:
    depth: int
    count_per_symbol: dict[str, int]
    count_per_kind: dict[str, int]
    attention_fraction: float
    attention_positions: tuple[int, ...]
    first_is_attention: bool
    last_is_attention: bool


def pattern_stats(layers: Sequence[str], kinds: Mapping[str, str]) -> PatternStats:
    """Stats of a layer list; ``kinds`` maps each symbol to its layer kind (``attention``, ``gdn``).

    Sliding-window attention counts as attention: the fraction is of softmax-attention layers.
    """
    if not layers:
        raise ValueError("a pattern has at least one layer")
    positions = tuple(i for i, s in enumerate(layers) if kinds[s] in ATTENTION_KINDS)
    return PatternStats(
        depth=len(layers),
        count_per_symbol=dict(sorted(Counter(layers).items())),
        count_per_kind=dict(sorted(Counter(kinds[s] for s in layers).items())),
        attention_fraction=len(positions) / len(layers),
        attention_positions=positions,
        first_is_attention=0 in positions,
        last_is_attention=len(layers) - 1 in positions,
    )
