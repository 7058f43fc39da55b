"""The proxy model: configs, the hybrid attention / Gated DeltaNet LM, its cache and cost model."""

from typing import TYPE_CHECKING

from archsearch.model.config import (
    AttentionSpec,
    GDNSpec,
    HybridConfig,
    LayerSpec,
)
from archsearch.model.targets import olmo_hybrid_7b_config

if TYPE_CHECKING:  # static checkers see the real classes; at run time they load lazily below
    from archsearch.model.cache import HybridCache
    from archsearch.model.hybrid_lm import HybridLM

__all__ = [
    "AttentionSpec",
    "GDNSpec",
    "HybridCache",
    "HybridConfig",
    "HybridLM",
    "LayerSpec",
    "olmo_hybrid_7b_config",
]


def __getattr__(name: str) -> object:
    # The model pulls in torch and the kernels; config-only users (YAML loading, the cost model)
    # should not pay for that import, so HybridLM/HybridCache load on first access.
    if name == "HybridLM":
        from archsearch.model.hybrid_lm import HybridLM

        return HybridLM
    if name == "HybridCache":
        from archsearch.model.cache import HybridCache

        return HybridCache
    raise AttributeError(f"module 'archsearch.model' has no attribute {name!r}")
