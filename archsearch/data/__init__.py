"""Data, token categories, probes and evaluation for archsearch proxies.

The trainer calls ``prepare_data`` once per trial and ``evaluate`` every ``evaluation.every``
steps; the CLI's ``archsearch tag`` calls ``tag_corpus``; ``compare_models`` /
``compare_losses`` reproduce Ai2's token-level comparison of two models.
"""

from __future__ import annotations

from archsearch.data.categories import ALL_CATEGORIES, CATEGORIES
from archsearch.data.compare import Comparison, compare_losses, compare_models
from archsearch.data.evaluate import evaluate, token_losses
from archsearch.data.labels import TokenLabels
from archsearch.data.prepare import PreparedData, default_cache_dir, prepare_data
from archsearch.data.tag import TagResult, tag_corpus

__all__ = [
    "ALL_CATEGORIES",
    "CATEGORIES",
    "Comparison",
    "PreparedData",
    "TagResult",
    "TokenLabels",
    "compare_losses",
    "compare_models",
    "default_cache_dir",
    "evaluate",
    "prepare_data",
    "tag_corpus",
    "token_losses",
]
