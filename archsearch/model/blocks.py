"""Residual blocks: a token mixer (attention or GDN) and a SwiGLU MLP, with their norms.

Where the norms sit (``HybridConfig.norm_placement``):
- GDN blocks are always pre-norm:          x += GDN(norm(x));  x += MLP(norm(x))
- attention, ``"per_kind"`` (Olmo 2/3/Hybrid "reordered" post-norm):
                                            x += norm(Attn(x)); x += norm(MLP(x))
- attention, ``"pre"``:                     x += Attn(norm(x)); x += MLP(norm(x))

Module names follow transformers' Olmo Hybrid (``linear_attn``, ``self_attn``,
``input_layernorm``, ``post_attention_layernorm``, ``post_feedforward_layernorm``, ``mlp``), so
export is a rename-free mapping apart from the fused projections.

Compiled regions (``HybridLM.compile_blocks``, CUDA only): an attention block is one compiled
function; a GDN block is two (everything before the fla kernel, everything after it), so the
norms, projections' epilogues, conv, gated norm, residuals and MLP fuse while fla's kernel runs
between the graphs untouched. The functions are module-level and take the block as an argument:
every block of one kind and width shares one compiled graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from archsearch.model.attention import Attention
from archsearch.model.cache import AttentionLayerCache, GDNLayerCache, LayerCache
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig, LayerSpec
from archsearch.model.gdn import GatedDeltaNet
from archsearch.model.mlp import RMSNorm, SwiGLU

CompileOptions = dict[str, Any]
_compiled: dict[tuple[Callable[..., Any], tuple[tuple[str, Any], ...]], Callable[..., Any]] = {}


def compiled(fn: Callable[..., Any], options: CompileOptions) -> Callable[..., Any]:
    """``torch.compile(fn, **options)``, made once per process and options (shared by blocks)."""
    key = (fn, tuple(sorted(options.items())))
    if key not in _compiled:
        _compiled[key] = torch.compile(fn, **options)
    return _compiled[key]


def mark_tokens_dynamic(*tensors: torch.Tensor) -> None:
    """Let compiled graphs take any batch size and length (dims 0 and 1) without recompiling."""
    for t in tensors:
        torch._dynamo.maybe_mark_dynamic(t, 0)
        torch._dynamo.maybe_mark_dynamic(t, 1)


def _gdn_project(block: GDNBlock, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return block.linear_attn.project(block.input_layernorm(x))


def _gdn_finish(
    block: GDNBlock, x: torch.Tensor, o: torch.Tensor, gate: torch.Tensor
) -> torch.Tensor:
    x = x + block.linear_attn.finish(o, gate)
    return x + block.mlp(block.post_attention_layernorm(x))


def _attention_block(
    block: AttentionBlock,
    x: torch.Tensor,
    position_offset: int = 0,
    cache: AttentionLayerCache | None = None,
) -> torch.Tensor:
    if block.pre_norm:
        x = x + block.self_attn(block.input_layernorm(x), position_offset, cache)
        return x + block.mlp(block.post_attention_layernorm(x))
    x = x + block.post_attention_layernorm(block.self_attn(x, position_offset, cache))
    return x + block.post_feedforward_layernorm(block.mlp(x))


class GDNBlock(nn.Module):
    """Pre-norm: ``x += GDN(input_layernorm(x)); x += MLP(post_attention_layernorm(x))``."""

    def __init__(self, config: HybridConfig, spec: GDNSpec) -> None:
        super().__init__()
        d = config.d_model
        self.input_layernorm = RMSNorm(d, config.norm_eps)
        self.linear_attn = GatedDeltaNet(d, spec, config.init_std)
        self.post_attention_layernorm = RMSNorm(d, config.norm_eps)
        self.mlp = SwiGLU(d, config.mlp_hidden, config.init_std)
        self.compile_options: CompileOptions | None = None  # set by HybridLM.compile_blocks

    def reset_parameters(self) -> None:
        for child in self.children():  # every child is one of our modules with its own init
            child.reset_parameters()

    def forward(
        self, x: torch.Tensor, position_offset: int = 0, cache: LayerCache | None = None
    ) -> torch.Tensor:
        assert cache is None or isinstance(cache, GDNLayerCache)
        if cache is None and x.is_cuda:
            return self._forward_cuda(x)
        x = x + self.linear_attn(self.input_layernorm(x), cache)
        return x + self.mlp(self.post_attention_layernorm(x))

    def _forward_cuda(self, x: torch.Tensor) -> torch.Tensor:
        """Whole sequences on CUDA: [compiled] project -> fla kernel -> [compiled] finish."""
        project, finish = _gdn_project, _gdn_finish
        if self.compile_options is not None:
            project = compiled(_gdn_project, self.compile_options)
            finish = compiled(_gdn_finish, self.compile_options)
            mark_tokens_dynamic(x)
        q, k, v, a, b, gate = project(self, x)
        o = self.linear_attn.recurrence(q, k, v, a, b)
        if self.compile_options is not None:
            mark_tokens_dynamic(o, gate)
        return finish(self, x, o, gate)


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
        self.compile_options: CompileOptions | None = None  # set by HybridLM.compile_blocks

    def reset_parameters(self) -> None:
        for child in self.children():
            child.reset_parameters()

    def forward(
        self, x: torch.Tensor, position_offset: int = 0, cache: LayerCache | None = None
    ) -> torch.Tensor:
        assert cache is None or isinstance(cache, AttentionLayerCache)
        if self.compile_options is not None and cache is None and x.is_cuda:
            mark_tokens_dynamic(x)
            return compiled(_attention_block, self.compile_options)(self, x, position_offset)
        return _attention_block(self, x, position_offset, cache)


def make_block(config: HybridConfig, spec: LayerSpec) -> GDNBlock | AttentionBlock:
    if isinstance(spec, GDNSpec):
        return GDNBlock(config, spec)
    return AttentionBlock(config, spec)
