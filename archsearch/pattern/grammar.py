"""The layer-pattern grammar: parse a pattern into its layers, format layers canonically.

    pattern := item*                 whitespace anywhere is ignored
    item    := atom ('*' count)?     count is a positive integer: repeat the atom
    atom    := SYMBOL | '(' pattern ')'
    SYMBOL  := one letter declared in the search space's symbol table

``(GGGA)*8`` is Olmo Hybrid's 32-layer stack: three Gated DeltaNet layers then one attention
layer, eight times. ``canonical`` gives the shortest spelling of a layer list, so that every
spelling of one stack (``GGGAGGGA``, ``G G G A G G G A``, ``(GGGA)*2``) is one candidate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from archsearch.errors import PatternError

# The deepest stack a pattern may describe. Real stacks are far shallower (Olmo Hybrid 7B: 32,
# the deepest published LLMs: about 130); the cap keeps `(A*999)*999` from eating memory and
# `canonical` (cubic in the depth: 2 s at 256 layers, 40 s at 512) from hanging a command.
MAX_LAYERS = 256
MAX_GROUPS = 16  # parentheses nested at most this deep (Olmo Hybrid 7B's (GGGA)*8 needs 1)


def parse(pattern: str, symbols: Iterable[str]) -> list[str]:
    """The per-layer symbols of ``pattern``; raises ``PatternError`` pointing at the fault."""
    allowed = frozenset(symbols)
    parser = _Parser(pattern, allowed)
    layers = parser.sequence(top=True)
    if not layers:
        raise PatternError("empty pattern: it has no layers", pattern, 0)
    return layers


def canonical(layers: Sequence[str]) -> str:
    """The canonical, shortest spelling of a layer list (each symbol one character).

    Among spellings of equal length, fewer repeat operators win (``GGGA`` over ``G*3A``), then the
    alphabetically first: so the result depends only on the layer list.
    """
    if not layers:
        raise ValueError("cannot format an empty layer list")
    return _shortest("".join(layers))[2]


def normalize(pattern: str, symbols: Iterable[str]) -> str:
    """The canonical spelling of any spelling of a pattern."""
    return canonical(parse(pattern, symbols))


class _Parser:
    """Recursive descent over the pattern text; ``pos`` indexes the original string."""

    def __init__(self, text: str, allowed: frozenset[str]) -> None:
        self.text, self.allowed, self.pos, self.groups = text, allowed, 0, 0

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _fail(self, message: str, position: int | None = None) -> PatternError:
        return PatternError(message, self.text, self.pos if position is None else position)

    def sequence(self, top: bool) -> list[str]:
        layers: list[str] = []
        while True:
            self._skip_space()
            if self.pos >= len(self.text):
                return layers
            char = self.text[self.pos]
            if char == ")":
                if top:
                    raise self._fail("unbalanced parentheses: ')' closes nothing")
                return layers
            layers.extend(self.item())
            if len(layers) > MAX_LAYERS:
                raise self._fail(f"pattern expands to more than {MAX_LAYERS} layers (the "
                                 "deepest stack archsearch handles)")

    def item(self) -> list[str]:
        start = self.pos
        char = self.text[self.pos]
        if char == "(":
            if self.groups >= MAX_GROUPS:
                raise self._fail(f"parentheses nested more than {MAX_GROUPS} deep")
            self.pos += 1
            self.groups += 1
            inner = self.sequence(top=False)
            self.groups -= 1
            self._skip_space()
            if self.pos >= len(self.text):
                raise self._fail("unbalanced parentheses: '(' is never closed", start)
            if not inner:
                raise self._fail("empty group '()'", start)
            self.pos += 1  # the ')'
            atom = inner
        elif char == "*":
            raise self._fail("'*' must follow a layer symbol or a group")
        elif char.isalpha():
            if char not in self.allowed:
                known = ", ".join(sorted(self.allowed)) or "none"
                raise self._fail(f"unknown layer symbol '{char}' (declared: {known})")
            self.pos += 1
            atom = [char]
        elif char.isdigit():
            raise self._fail(f"unexpected number '{char}': a count goes after '*'")
        else:
            raise self._fail(f"unexpected character '{char}'")
        self._skip_space()
        if self.pos < len(self.text) and self.text[self.pos] == "*":
            atom = atom * self._count()
        return atom

    def _count(self) -> int:
        self.pos += 1  # the '*'
        self._skip_space()
        start = self.pos
        if self.pos < len(self.text) and self.text[self.pos] == "-":
            raise self._fail("repeat count must be a positive integer, got a negative number")
        while self.pos < len(self.text) and self.text[self.pos].isdigit():
            self.pos += 1
        digits = self.text[start : self.pos]
        if not digits:
            raise self._fail("'*' must be followed by a repeat count", start)
        count = int(digits)
        if count <= 0:
            raise self._fail("repeat count must be a positive integer, got 0", start)
        if count > MAX_LAYERS:
            raise self._fail(f"repeat count {count} is larger than the {MAX_LAYERS} layers a "
                             "pattern may have", start)
        return count


# (length, repeat operators, text): a spelling's cost, compared as a tuple.
_Spelling = tuple[int, int, str]


@lru_cache(maxsize=4096)
def _shortest(layers: str) -> _Spelling:
    """Shortest spelling of ``layers`` by dynamic programming over its substrings."""
    n = len(layers)
    best: dict[tuple[int, int], _Spelling] = {}
    for length in range(1, n + 1):
        for i in range(n - length + 1):
            j = i + length
            if length == 1:
                best[i, j] = (1, 0, layers[i])
                continue
            options = [_join(best[i, k], best[k, j]) for k in range(i + 1, j)]
            for period in _periods(layers, i, j):
                unit = best[i, i + period]
                count = length // period
                body = unit[2] if period == 1 else f"({unit[2]})"
                text = f"{body}*{count}"
                options.append((len(text), unit[1] + 1, text))
            best[i, j] = min(options)
    return best[0, n]


def _join(a: _Spelling, b: _Spelling) -> _Spelling:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _periods(s: str, i: int, j: int) -> list[int]:
    """Every proper period p of s[i:j] (s[i:j] is s[i:i+p] repeated)."""
    length = j - i
    return [
        p
        for p in range(1, length // 2 + 1)
        if length % p == 0 and s[i : i + p] * (length // p) == s[i:j]
    ]
