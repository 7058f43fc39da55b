"""Causal softmax attention as in Olmo 2/3: GQA, QK-norm over the full projection width, RoPE.

Conventions match transformers' Olmo3/OlmoHybrid attention so weights move across unchanged:
RoPE rotates the two halves of each head (``rotate_half``), frequencies
``theta^(-2i/head_dim)`` computed in float32; QK-norm is an RMSNorm over all ``heads * head_dim``
query features (and ``kv_heads * head_dim`` key features) before the split into heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from archsearch.model.cache import AttentionLayerCache
from archsearch.model.config import AttentionSpec
from archsearch.model.mlp import RMSNorm


def rope_cos_sin(
    positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables ``[T, head_dim]`` for integer ``positions`` ``[T]``.

    Angles are computed in float32 like transformers (float64 for a float64 model, which the
    numerical tests use), so an exported model reproduces our logits.
    """
    work = torch.float64 if dtype == torch.float64 else torch.float32
    exponent = torch.arange(0, head_dim, 2, device=positions.device, dtype=work) / head_dim
    inv_freq = 1.0 / (theta**exponent)
    freqs = positions.to(work)[:, None] * inv_freq[None, :]
    angles = torch.cat([freqs, freqs], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` ``[B, T, H, D]`` by position: ``x * cos + rotate_half(x) * sin``."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rotated = torch.cat([-x2, x1], dim=-1)
    cos, sin = cos[:, None, :], sin[:, None, :]  # broadcast over heads
    return (x * cos + rotated * sin).to(x.dtype)


def attention_mask(
    q_len: int, k_len: int, q_start: int, window: int | None, device: torch.device
) -> torch.Tensor | None:
    """Boolean ``[q_len, k_len]`` mask (True = may attend) or None when plain SDPA suffices.

    Queries sit at absolute positions ``q_start + i``; the keys are the ``k_len`` positions ending
    with the last query. Key j is visible from query i when ``i - window < j <= i``.
    """
    if window is not None and k_len <= window:
        window = None  # no query can reach past the window: it never bites
    if window is None and (q_len == 1 or q_len == k_len):
        return None  # one query sees every key; or a plain causal square handled by is_causal
    q_pos = torch.arange(q_start, q_start + q_len, device=device)[:, None]
    k_pos = torch.arange(q_start + q_len - k_len, q_start + q_len, device=device)[None, :]
    visible = k_pos <= q_pos
    if window is not None:
        visible = visible & (k_pos > q_pos - window)
    return visible


class Attention(nn.Module):
    """Multi-head / grouped-query causal attention, bias-free, optional sliding window."""

    def __init__(self, d_model: int, spec: AttentionSpec, norm_eps: float, init_std: float) -> None:
        super().__init__()
        self.spec, self.init_std = spec, init_std
        h, kv, hd = spec.heads, spec.kv_heads, spec.head_dim
        self.split_sizes = (h * hd, kv * hd, kv * hd)
        # q, k, v fused into one matmul (rows: q, then k, then v); export splits it back.
        self.qkv_proj = nn.Linear(d_model, sum(self.split_sizes), bias=False)
        self.o_proj = nn.Linear(h * hd, d_model, bias=False)
        self.q_norm = RMSNorm(h * hd, norm_eps) if spec.qk_norm else None
        self.k_norm = RMSNorm(kv * hd, norm_eps) if spec.qk_norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in (self.qkv_proj, self.o_proj):
            nn.init.normal_(linear.weight, mean=0.0, std=self.init_std)
        for norm in (self.q_norm, self.k_norm):
            if norm is not None:
                norm.reset_parameters()

    def forward(
        self, x: torch.Tensor, position_offset: int = 0, cache: AttentionLayerCache | None = None
    ) -> torch.Tensor:
        spec = self.spec
        batch, seq, _ = x.shape
        q, k, v = self.qkv_proj(x).split(self.split_sizes, dim=-1)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q = q.view(batch, seq, spec.heads, spec.head_dim)
        k = k.view(batch, seq, spec.kv_heads, spec.head_dim)
        v = v.view(batch, seq, spec.kv_heads, spec.head_dim)
        if spec.rope:
            positions = torch.arange(position_offset, position_offset + seq, device=x.device)
            cos, sin = rope_cos_sin(positions, spec.head_dim, spec.rope_theta, x.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # SDPA wants [B, H, T, D]; transposed views, no copies here
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if cache is not None:
            k, v = cache.update(k, v)
        mask = attention_mask(seq, k.shape[2], position_offset, spec.window, x.device)
        # a branch, not `causal = ... and seq > 1`: under torch.compile with a symbolic length the
        # expression would be a SymBool, which SDPA rejects; a branch becomes a guard instead
        causal = False
        if mask is None and seq > 1:
            causal = True
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=spec.heads != spec.kv_heads
        )
        out = out.transpose(1, 2).reshape(batch, seq, spec.heads * spec.head_dim)
        return self.o_proj(out)
