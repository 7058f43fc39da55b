"""Layer patterns: the grammar, canonical forms, statistics and generators."""

from archsearch.pattern.generate import PLACEMENTS, Ratio, generate, parse_ratio
from archsearch.pattern.grammar import canonical, normalize, parse
from archsearch.pattern.stats import PatternStats, pattern_stats

__all__ = [
    "PLACEMENTS",
    "PatternStats",
    "Ratio",
    "canonical",
    "generate",
    "normalize",
    "parse",
    "parse_ratio",
    "pattern_stats",
]
