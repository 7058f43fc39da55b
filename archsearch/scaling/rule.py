"""How a layer pattern is redrawn at another depth, keeping its ratio and placement.

Two rules (docs/SCALING.md):
- ``generate``: the pattern came from (or is reproduced by) a linear:attention ratio and a named
  placement (``even_end``, ``even_inner``, ``front``, ``back``, ``middle``): at depth ``d`` it is
  ``archsearch.pattern.generate(d, ratio, placement)``. ``3:1 even_end`` is ``GGGA`` at 4 layers,
  ``(GGGA)*2`` at 8 and ``(GGGA)*8`` at 32.
- ``repeat``: anything else (an explicit list, explicit layer indices, two attention symbols)
  repeats its shortest period: ``GAGGGAGG`` (period ``GAGG``) is ``(GAGG)*8`` at 32 layers. A
  depth that is not a multiple of the period is refused rather than truncated, since a cut-off
  period would change the ratio.

Where a pattern comes from a search space, the space's generator settings decide (``from_space``):
a ``15:1`` ratio drawn at 8 layers has one attention layer, as ``7:1`` does, but keeps 2 at 32.
Without the space (``infer``), the ratio is the pattern's own attention count reduced to lowest
terms and the placement the first named one that reproduces it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from archsearch.errors import ArchsearchError
from archsearch.pattern import canonical, generate
from archsearch.pattern.generate import PLACEMENTS, parse_ratio
from archsearch.pattern.symbols import BUILTIN_KINDS
from archsearch.pattern.grammar import MAX_LAYERS

# the built-in symbols' kinds (read-only: shared by every caller)
DEFAULT_KINDS = BUILTIN_KINDS  # patterns given without a space use the built-in symbols


class RuleError(ArchsearchError):
    """A pattern cannot be redrawn at the requested depth."""


@dataclass(frozen=True)
class PatternRule:
    kind: Literal["generate", "repeat"]
    source: tuple[str, ...]  # the pattern the rule was derived from, at its own depth
    ratio: str | None = None  # generate: "linear:attention"
    placement: str | None = None  # generate: a named placement
    linear: str = "G"
    attention: str = "A"

    @property
    def period(self) -> tuple[str, ...]:
        return shortest_period(self.source)

    def at_depth(self, depth: int) -> tuple[str, ...]:
        """The layer symbols at ``depth``; raises RuleError if the rule cannot reach it."""
        if not 1 <= depth <= MAX_LAYERS:
            raise RuleError(f"depth must be in 1 .. {MAX_LAYERS} (the deepest stack a pattern "
                            f"may have), got {depth}")
        if self.kind == "generate":
            assert self.ratio is not None and self.placement is not None
            try:
                return tuple(generate(depth, self.ratio, self.placement, self.linear,
                                      self.attention))
            except ValueError as err:
                raise RuleError(f"cannot draw {self.describe()} at depth {depth}: {err}") from None
        period = self.period
        if depth % len(period):
            raise RuleError(
                f"cannot draw {canonical(self.source)} at depth {depth}: it repeats a "
                f"{len(period)}-layer period ({''.join(period)}) and {depth} is not a multiple "
                f"of {len(period)}")
        return period * (depth // len(period))

    def describe(self) -> str:
        ratio = self.ratio if self.kind == "generate" else self.count_ratio()
        if ratio == "0:1":
            return "all attention (ratio 0:1)"
        if ratio == "1:0":
            return "all linear, no attention (ratio 1:0)"
        if self.kind == "generate":
            return f"ratio {self.ratio}, placement {self.placement}"
        return f"ratio {ratio}, placement: repeat {canonical(self.period)}"

    def count_ratio(self, kinds: Mapping[str, str] | None = None) -> str:
        """linear:attention of the layers themselves, in lowest terms."""
        kinds = kinds or DEFAULT_KINDS
        period = self.period
        attention = sum(kinds.get(s, "gdn") == "attention" for s in period)
        linear = len(period) - attention
        g = math.gcd(linear, attention) or 1
        return f"{linear // g}:{attention // g}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": canonical(self.source), "ratio": self.ratio,
                "placement": self.placement, "linear": self.linear, "attention": self.attention,
                "layers": "".join(self.source)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PatternRule:
        return cls(kind=data["kind"], source=tuple(data["layers"]), ratio=data.get("ratio"),
                   placement=data.get("placement"), linear=data.get("linear", "G"),
                   attention=data.get("attention", "A"))


def shortest_period(layers: Sequence[str]) -> tuple[str, ...]:
    """The shortest prefix whose repetition is ``layers`` (the whole list if none shorter)."""
    n = len(layers)
    for p in range(1, n + 1):
        if n % p == 0 and tuple(layers[:p]) * (n // p) == tuple(layers):
            return tuple(layers[:p])
    return tuple(layers)


def repeat_rule(layers: Sequence[str]) -> PatternRule:
    return PatternRule(kind="repeat", source=tuple(layers))


def from_generator(layers: Sequence[str], ratios: Sequence[str],
                   placements: Sequence[str | Sequence[int]], linear: str,
                   attention: str) -> PatternRule | None:
    """The first (ratio, named placement) of a generator that produces ``layers``, if any."""
    for ratio in ratios:
        for placement in placements:
            if not isinstance(placement, str):
                continue  # explicit indices do not carry over to another depth
            try:
                drawn = generate(len(layers), ratio, placement, linear, attention)
            except ValueError:
                continue
            if tuple(drawn) == tuple(layers):
                return PatternRule("generate", tuple(layers), str(parse_ratio(ratio)), placement,
                                   linear, attention)
    return None


def infer(layers: Sequence[str], kinds: Mapping[str, str] | None = None) -> PatternRule:
    """A rule for a bare pattern: its own ratio and the first named placement that fits."""
    kinds = kinds or DEFAULT_KINDS
    counts = Counter(layers)
    attention_symbols = [s for s in counts if kinds.get(s) == "attention"]
    linear_symbols = [s for s in counts if kinds.get(s) != "attention"]
    if len(attention_symbols) > 1 or len(linear_symbols) > 1:
        return repeat_rule(layers)
    attention = attention_symbols[0] if attention_symbols else _default(kinds, "attention", "A")
    linear = linear_symbols[0] if linear_symbols else _default(kinds, "gdn", "G")
    n_att = counts.get(attention, 0)
    n_lin = len(layers) - n_att
    g = math.gcd(n_lin, n_att) or 1
    ratio = f"{n_lin // g}:{n_att // g}"
    found = from_generator(layers, [ratio], PLACEMENTS, linear, attention)
    return found or repeat_rule(layers)


def _default(kinds: Mapping[str, str], kind: str, fallback: str) -> str:
    for symbol, k in kinds.items():
        if k == kind:
            return symbol
    return fallback


def from_space(space: Any, layers: Sequence[str]) -> PatternRule:
    """The rule for a pattern of ``space`` (a SearchSpace): its generator origin if it has one."""
    generator = space.spec.patterns.generate
    if generator is not None:
        found = from_generator(layers, generator.ratios, generator.placements, generator.linear,
                               generator.attention)
        if found is not None:
            return found
    return infer(layers, space.pattern_kinds())
