"""Build a layer stack from depth + linear:attention ratio + placement.

How many attention layers: for ratio ``a:b`` (linear:attention) at depth ``D`` the count is
``D * b / (a + b)`` rounded to the nearest integer, halves rounding up; then, when ``D >= 2``,
kept at least 1 if ``b > 0`` and at most ``D - 1`` if ``a > 0``, so that a hybrid ratio never
collapses to a pure stack. ``1:0`` is all linear, ``0:1`` all attention.

Where they go (``placement``):
- ``even_end``   evenly spread, the last layer attention (Olmo Hybrid: ``(GGGA)*8``);
  layer ``floor((k+1) * D / n) - 1`` for k = 0..n-1;
- ``even_inner`` evenly spread, never the first or last layer (Nemotron-H);
  layer ``floor((k+1) * D / (n+1))``; needs ``n <= D - 2``;
- ``front``, ``back``, ``middle``  one contiguous block at the start, the end, or centred
  (starting at ``(D - n) // 2``);
- a list of layer indices (negative ones count from the end): exactly those layers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from archsearch.pattern.grammar import MAX_LAYERS

PLACEMENTS = ("even_end", "even_inner", "front", "back", "middle")
_RATIO = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Ratio:
    linear: int
    attention: int

    def __str__(self) -> str:
        return f"{self.linear}:{self.attention}"


def parse_ratio(text: str) -> Ratio:
    """``"3:1"`` -> Ratio(3, 1); raises ValueError on anything else."""
    match = _RATIO.match(str(text))
    if not match:
        raise ValueError(f"ratio must look like '3:1' (linear:attention), got {text!r}")
    ratio = Ratio(int(match[1]), int(match[2]))
    if ratio.linear == 0 and ratio.attention == 0:
        raise ValueError("ratio '0:0' has no layers of either kind")
    return ratio


def attention_count(depth: int, ratio: Ratio) -> int:
    """Number of attention layers for ``ratio`` at ``depth`` (see the module docstring)."""
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    if depth > MAX_LAYERS:
        raise ValueError(f"depth {depth} is more than the {MAX_LAYERS} layers a pattern may have")
    share = depth * ratio.attention / (ratio.linear + ratio.attention)
    count = math.floor(share + 0.5)
    if depth >= 2:
        if ratio.attention > 0:
            count = max(count, 1)
        if ratio.linear > 0:
            count = min(count, depth - 1)
    return count


def attention_positions(depth: int, count: int, placement: str | Sequence[int]) -> list[int]:
    """Indices of the attention layers; raises ValueError if they cannot be placed."""
    if not isinstance(placement, str):
        return _explicit(depth, placement)
    if not 0 <= count <= depth:
        raise ValueError(f"cannot place {count} attention layers in {depth}")
    if count == 0:
        return []
    if placement == "even_end":
        return [(k + 1) * depth // count - 1 for k in range(count)]
    if placement == "even_inner":
        if count > depth - 2:
            raise ValueError(
                f"even_inner cannot place {count} attention layers in {depth} without using "
                "the first or last layer"
            )
        return [(k + 1) * depth // (count + 1) for k in range(count)]
    if placement == "front":
        return list(range(count))
    if placement == "back":
        return list(range(depth - count, depth))
    if placement == "middle":
        start = (depth - count) // 2
        return list(range(start, start + count))
    raise ValueError(f"unknown placement {placement!r}; expected one of {', '.join(PLACEMENTS)}")


def _explicit(depth: int, indices: Sequence[int]) -> list[int]:
    resolved = []
    for index in indices:
        if not isinstance(index, int) or isinstance(index, bool):
            raise ValueError(f"layer index must be an integer, got {index!r}")
        if not -depth <= index < depth:
            raise ValueError(f"layer index {index} is outside a {depth}-layer stack")
        resolved.append(index % depth)
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"layer indices {list(indices)} name a layer twice")
    return sorted(resolved)


def generate(
    depth: int,
    ratio: Ratio | str,
    placement: str | Sequence[int],
    linear: str = "G",
    attention: str = "A",
) -> list[str]:
    """The layer symbols for ``depth`` layers at ``ratio`` with ``placement``.

    With explicit indices the ratio is ignored: the indices say how many attention layers.
    """
    if isinstance(ratio, str):
        ratio = parse_ratio(ratio)
    count = attention_count(depth, ratio)
    positions = set(attention_positions(depth, count, placement))
    return [attention if i in positions else linear for i in range(depth)]
