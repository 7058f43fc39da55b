"""Residual blocks: a token mixer (attention or GDN) and a SwiGLU MLP, with their norms.

Where the norms sit (``HybridConfig.norm_placement``):
- GDN blocks are always pre-norm:          x += GDN(norm(x));  x += MLP(norm(x))
- attention, ``"per_kind"`` (Olmo 2/3/Hybrid "reordered" post-norm):
                                            x += norm(Attn(x)); x += norm(MLP(x))
- attention, ``"pre"``:                     x += Attn(norm(x)); x += MLP(norm(x))

Module names follow transformers' Olmo Hybrid (``linear_attn``, ``self_attn``,
``input_layernorm``, ``post_attention_layernorm``, ``post_feedforward_layernorm``, ``mlp``), so
export is a rename-free mapping apart from the fused projections.
"""

from __future__ import annotations

import torch
from torch import nn

from archsearch.model.attention import Attention
from archsearch.model.cache import AttentionLayerCache, GDNLayerCache, LayerCache
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig, LayerSpec
from archsearch.model.gdn import GatedDeltaNet
from archsearch.model.mlp import RMSNorm, SwiGLU


class GDNBlock(nn.Module):
    """Pre-norm: ``x += GDN(input_layernorm(x)); x += MLP(post_attention_layernorm(x))``."""

    def __init__(self, config: HybridConfig, spec: GDNSpec) -> None:
        super().__init__()
        d = config.d_model
        self.input_layernorm = RMSNorm(d, config.norm_eps)
        self.linear_attn = GatedDeltaNet(d, spec, config.init_std)
        self.post_attention_layernorm = RMSNorm(d, config.norm_eps)
        self.mlp = SwiGLU(d, config.mlp_hidden, config.init_std)

    def reset_parameters(self) -> None:
        for child in self.children():  # every child is one of our modules with its own init
            child.reset_parameters()

    def forward(
        self, x: torch.Tensor, position_offset: int = 0, cache: LayerCache | None = None
    ) -> torch.Tensor:
        assert cache is None or isinstance(cache, GDNLayerCache)
        x = x + self.linear_attn(self.input_layernorm(x), cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class AttentionBlock(nn.Module):
    """Attention + MLP, post-norm ("per_kind", Olmo's reordered norm) or pre-norm ("pre")."""

    def __init__(self, config: HybridConfig, spec: AttentionSpec) -> None:
        super().__init__()
        d = config.d_model
        self.pre_norm = config.norm_placement == "pre"
        self.self_attn = Attention(d, spec, config.norm_eps, config.init_std)
        self.mlp = SwiGLU(d, config.mlp_hidden, config.init_std)
        if self.pre_norm:
            self.input_layernorm = RMSNorm(d, config.norm_eps)
            self.post_attention_layernorm = RMSNorm(d, config.norm_eps)
        else:
            self.post_attention_layernorm = RMSNorm(d, config.norm_eps)
            self.post_feedforward_layernorm = RMSNorm(d, config.norm_eps)

    def reset_parameters(self) -> None:
        for child in self.children():
            child.reset_parameters()

    def forward(
        self, x: torch.Tensor, position_offset: int = 0, cache: LayerCache | None = None
    ) -> torch.Tensor:
        assert cache is None or isinstance(cache, AttentionLayerCache)
        if self.pre_norm:
            x = x + self.self_attn(self.input_layernorm(x), position_offset, cache)
            return x + self.mlp(self.post_attention_layernorm(x))
        x = x + self.post_attention_layernorm(self.self_attn(x, position_offset, cache))
        return x + self.post_feedforward_layernorm(self.mlp(x))


def make_block(config: HybridConfig, spec: LayerSpec) -> GDNBlock | AttentionBlock:
    if isinstance(spec, GDNSpec):
        return GDNBlock(config, spec)
    return AttentionBlock(config, spec)
