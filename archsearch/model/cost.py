"""Analytic cost of a ``HybridConfig``: parameters, training FLOPs, inference memory.

Pure arithmetic on the config (no model is built), cheap enough to use as a search objective or
constraint. ``param_count`` equals ``sum(p.numel() for p in HybridLM(config).parameters())``
exactly (tested, including Olmo Hybrid 7B: 7,430,870,688).

FLOP convention (``train_flops_per_token``): one multiply-add = 2 FLOPs; training = forward +
backward = 3x the forward. Per token:
- weights: ``6 * N_mm`` where ``N_mm`` counts every parameter used as a multiplying weight once
  per token: all projections, MLPs, the LM head and the GDN short-convolution taps. Not counted:
  the input embedding (a lookup), norm weights, ``A_log`` and ``dt_bias`` (element-wise).
- attention (per attention layer): ``6 * 2 * heads * head_dim * ctx`` where the 2 covers the two
  matmuls QK^T and AV and ``ctx`` is the mean number of keys a query sees: ``(T + 1) / 2`` for
  full causal attention at length T (exact causal count, not PaLM's un-masked ``T``), and
  ``mean_t min(t, window)`` with a window.
- GDN state (per GDN layer, per value head), chunked form with chunk ``C`` (default 64):
  forward ``6 * dk * dv`` (inter-chunk: W S, Q S and the state update K^T V', each
  ``2 * dk * dv``) + ``2 * C * (2 * dk + dv)`` (intra-chunk: K K^T, Q K^T, A V', counted as full
  C x C products) + ``C * (dk + dv)`` (applying the triangular UT inverse to V and K). The
  ``O(C^2)`` triangular solve itself and all element-wise work are ignored. Times 3 for training.

Memory convention (``inference_memory_bytes``): the decoding state one sequence needs at
context ``L``: per attention layer K and V, ``2 * kv_heads * head_dim * min(L, window)`` values
(the peak during a decoding step: the window's keys including the new one); per GDN layer the
``v_heads * dk * dv`` recurrent state plus the ``(conv_size - 1) * conv_dim`` conv state, at
``dtype_bytes`` per value (``state_dtype_bytes`` for the recurrent state if given). Weights and
activations are not included.
"""

from __future__ import annotations

from dataclasses import dataclass

from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig, LayerSpec

DEFAULT_GDN_CHUNK = 64


# -- parameters --------------------------------------------------------------------------------


def _attention_params(d: int, spec: AttentionSpec) -> int:
    q = spec.heads * spec.head_dim
    kv = spec.kv_heads * spec.head_dim
    projections = d * (q + 2 * kv) + q * d
    qk_norm = (q + kv) if spec.qk_norm else 0
    return projections + qk_norm


def _gdn_params(d: int, spec: GDNSpec) -> int:
    projections = d * (2 * spec.key_dim + 2 * spec.value_dim + 2 * spec.v_heads)  # q k v g a b
    projections += spec.value_dim * d  # o_proj
    conv = spec.conv_dim * spec.conv_size
    decay = 2 * spec.v_heads  # A_log, dt_bias
    return projections + conv + decay + spec.head_dim_v  # + output norm weight


def layer_params(config: HybridConfig, spec: LayerSpec) -> int:
    """Parameters of one block: mixer + SwiGLU MLP + its two norms."""
    d = config.d_model
    mixer = _attention_params(d, spec) if isinstance(spec, AttentionSpec) else _gdn_params(d, spec)
    return mixer + 3 * d * config.mlp_hidden + 2 * d


def embedding_params(config: HybridConfig) -> int:
    return config.vocab_size * config.d_model


def param_count(config: HybridConfig, include_embedding: bool = True) -> int:
    """Total parameters; ``include_embedding=False`` drops only the input embedding (an untied
    LM head still counts; a tied one is the embedding, so nothing is left for it)."""
    head = 0 if config.tie_embeddings else config.vocab_size * config.d_model
    body = sum(layer_params(config, spec) for spec in config.layers)
    total = embedding_params(config) + body + config.d_model + head  # + final norm
    return total if include_embedding else total - embedding_params(config)


def non_embedding_params(config: HybridConfig) -> int:
    return param_count(config, include_embedding=False)


# -- FLOPs -------------------------------------------------------------------------------------


def mean_context(seq_len: int, window: int | None) -> float:
    """Mean number of keys a causal query sees over positions 1..T, capped at ``window``."""
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    if window is None or window >= seq_len:
        return (seq_len + 1) / 2
    # positions 1..w see t keys, positions w+1..T see w keys
    return (window * (window + 1) / 2 + (seq_len - window) * window) / seq_len


def _matmul_params(config: HybridConfig) -> int:
    """Parameters used as multiplying weights once per token (see the module docstring)."""
    d = config.d_model
    total = config.vocab_size * d  # LM head (tied or not, the matmul happens)
    for spec in config.layers:
        total += 3 * d * config.mlp_hidden
        if isinstance(spec, AttentionSpec):
            q = spec.heads * spec.head_dim
            total += d * (q + 2 * spec.kv_heads * spec.head_dim) + q * d
        else:
            total += d * (2 * spec.key_dim + 2 * spec.value_dim + 2 * spec.v_heads)
            total += spec.value_dim * d + spec.conv_dim * spec.conv_size
    return total


def gdn_state_flops_forward(spec: GDNSpec, chunk: int = DEFAULT_GDN_CHUNK) -> float:
    """Forward FLOPs per token of the chunked gated delta rule for one layer (all heads)."""
    dk, dv = spec.head_dim_k, spec.head_dim_v
    per_head = 6 * dk * dv + 2 * chunk * (2 * dk + dv) + chunk * (dk + dv)
    return float(spec.v_heads * per_head)


def train_flops_per_token(
    config: HybridConfig, seq_len: int, gdn_chunk: int = DEFAULT_GDN_CHUNK
) -> float:
    """Training FLOPs (forward + backward) per token at sequence length ``seq_len``."""
    return 3.0 * forward_flops_per_token(config, seq_len, gdn_chunk)


def forward_flops_per_token(
    config: HybridConfig, seq_len: int, gdn_chunk: int = DEFAULT_GDN_CHUNK
) -> float:
    """Forward FLOPs per token (a third of ``train_flops_per_token``)."""
    flops = 2.0 * _matmul_params(config)
    for spec in config.layers:
        if isinstance(spec, AttentionSpec):
            ctx = mean_context(seq_len, spec.window)
            flops += 2.0 * 2.0 * spec.heads * spec.head_dim * ctx
        else:
            flops += gdn_state_flops_forward(spec, min(gdn_chunk, seq_len))
    return flops


# -- inference memory --------------------------------------------------------------------------


def inference_memory_bytes(
    config: HybridConfig,
    context_len: int,
    dtype_bytes: int = 2,
    state_dtype_bytes: int | None = None,
) -> int:
    """Decoding-state bytes for one sequence at context ``context_len`` (module docstring)."""
    if context_len < 0:
        raise ValueError(f"context_len must be >= 0, got {context_len}")
    state_bytes = dtype_bytes if state_dtype_bytes is None else state_dtype_bytes
    total = 0
    for spec in config.layers:
        if isinstance(spec, AttentionSpec):
            kept = context_len if spec.window is None else min(context_len, spec.window)
            total += 2 * spec.kv_heads * spec.head_dim * kept * dtype_bytes
        else:
            total += spec.v_heads * spec.head_dim_k * spec.head_dim_v * state_bytes
            total += (spec.conv_size - 1) * spec.conv_dim * dtype_bytes
    return total


# -- one size figure --------------------------------------------------------------------------

SIZE_MEASURES = ("non_embedding_params", "params", "train_flops_per_token")


def size_measure(config: HybridConfig, measure: str, seq_len: int) -> float:
    """One of ``SIZE_MEASURES`` for ``config`` (``seq_len`` matters only for FLOPs): the figure
    a space's ``model.match`` equalises across candidates."""
    if measure == "non_embedding_params":
        return float(non_embedding_params(config))
    if measure == "params":
        return float(param_count(config))
    if measure == "train_flops_per_token":
        return train_flops_per_token(config, seq_len)
    raise ValueError(f"unknown size measure {measure!r}; expected one of {SIZE_MEASURES}")


# -- one summary -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostReport:
    params: int
    non_embedding_params: int
    train_flops_per_token: float
    inference_memory_bytes: int
    seq_len: int
    context_len: int


def cost_report(
    config: HybridConfig, seq_len: int, context_len: int | None = None, dtype_bytes: int = 2
) -> CostReport:
    """All objectives at once; ``context_len`` defaults to ``seq_len``."""
    context = seq_len if context_len is None else context_len
    return CostReport(
        params=param_count(config),
        non_embedding_params=non_embedding_params(config),
        train_flops_per_token=train_flops_per_token(config, seq_len),
        inference_memory_bytes=inference_memory_bytes(config, context, dtype_bytes),
        seq_len=seq_len,
        context_len=context,
    )
