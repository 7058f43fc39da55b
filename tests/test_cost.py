"""The analytic cost model: exact parameter counts, FLOP and memory conventions."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig
from archsearch.model.cost import (
    cost_report,
    forward_flops_per_token,
    gdn_state_flops_forward,
    inference_memory_bytes,
    mean_context,
    non_embedding_params,
    param_count,
    train_flops_per_token,
)
from archsearch.model.hybrid_lm import HybridLM
from archsearch.model.targets import olmo_hybrid_7b_config


def test_olmo_hybrid_7b_parameter_count_is_exact() -> None:
    config = olmo_hybrid_7b_config()
    assert param_count(config) == 7_430_870_688
    assert non_embedding_params(config) == 7_045_519_008
    model = HybridLM(config, device="meta")
    assert sum(p.numel() for p in model.parameters()) == 7_430_870_688


attention_specs = st.builds(
    lambda h, group, hd2, window, rope, qk: AttentionSpec(
        heads=h * group, kv_heads=h, head_dim=2 * hd2, window=window, rope=rope, qk_norm=qk
    ),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(1, 6),
    st.none() | st.integers(1, 9),
    st.booleans(),
    st.booleans(),
)
gdn_specs = st.builds(
    lambda h, group, dk, dv, neg, conv: GDNSpec(
        heads=h,
        v_heads=h * group,
        head_dim_k=dk,
        head_dim_v=dv,
        allow_neg_eigval=neg,
        conv_size=conv,
    ),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(1, 9),
    st.integers(1, 9),
    st.booleans(),
    st.integers(1, 5),
)
configs = st.builds(
    lambda vocab, d, hidden, layers, placement, tie: HybridConfig(
        vocab_size=vocab,
        d_model=d,
        mlp_hidden=hidden,
        layers=tuple(layers),
        norm_placement=placement,
        tie_embeddings=tie,
    ),
    st.integers(1, 40),
    st.integers(1, 24),
    st.integers(1, 24),
    st.lists(attention_specs | gdn_specs, min_size=1, max_size=5),
    st.sampled_from(["per_kind", "pre"]),
    st.booleans(),
)


@settings(max_examples=40, deadline=None)
@given(configs)
def test_analytic_count_equals_instantiated_count(config: HybridConfig) -> None:
    torch.manual_seed(0)
    model = HybridLM(config)  # built for real (CPU): tiny configs cost nothing
    assert param_count(config) == sum(p.numel() for p in model.parameters())
    assert non_embedding_params(config) == model.num_params(include_embedding=False)


def test_mean_context() -> None:
    assert mean_context(4, None) == pytest.approx(2.5)  # (1+2+3+4)/4
    assert mean_context(4, 2) == pytest.approx((1 + 2 + 2 + 2) / 4)
    assert mean_context(4, 10) == mean_context(4, None)
    for t in (1, 7, 50):
        for w in (1, 3, 9):
            assert mean_context(t, w) == pytest.approx(sum(min(i, w) for i in range(1, t + 1)) / t)


def test_flops_convention() -> None:
    """6 x matmul params + 12 * H * D * ctx per attention layer + 3x chunked GDN state term."""
    attention = AttentionSpec(heads=2, kv_heads=1, head_dim=4)
    config = HybridConfig(vocab_size=10, d_model=8, mlp_hidden=12, layers=(attention,))
    matmul = 10 * 8 + 3 * 8 * 12 + 8 * (8 + 2 * 4) + 8 * 8
    t = 16
    assert train_flops_per_token(config, t) == pytest.approx(6 * matmul + 12 * 2 * 4 * (t + 1) / 2)
    assert train_flops_per_token(config, t) == pytest.approx(3 * forward_flops_per_token(config, t))
    windowed = config.replace(layers=(AttentionSpec(heads=2, kv_heads=1, head_dim=4, window=4),))
    assert train_flops_per_token(windowed, t) < train_flops_per_token(config, t)
    assert train_flops_per_token(windowed, 4) == train_flops_per_token(config, 4)

    gdn = GDNSpec(heads=1, v_heads=2, head_dim_k=4, head_dim_v=6, conv_size=4)
    gconfig = config.replace(layers=(gdn,))
    gmatmul = 10 * 8 + 3 * 8 * 12 + 8 * (2 * 4 + 2 * 12 + 2 * 2) + 12 * 8 + (2 * 4 + 12) * 4
    per_head = 6 * 4 * 6 + 2 * 64 * (2 * 4 + 6) + 64 * (4 + 6)
    assert gdn_state_flops_forward(gdn, 64) == 2 * per_head
    assert train_flops_per_token(gconfig, 1024) == pytest.approx(6 * gmatmul + 3 * 2 * per_head)
    # GDN cost per token does not grow with length; full attention's does
    assert train_flops_per_token(gconfig, 4096) == train_flops_per_token(gconfig, 1024)
    assert train_flops_per_token(config, 4096) > train_flops_per_token(config, 1024)


def test_flops_of_7b_are_plausible() -> None:
    config = olmo_hybrid_7b_config()
    flops = train_flops_per_token(config, 4096)
    # ~6N (non-embedding + head) plus a modest sequence term
    six_n = 6 * (non_embedding_params(config))
    assert six_n < flops < 1.2 * six_n


def test_inference_memory() -> None:
    att = AttentionSpec(heads=4, kv_heads=2, head_dim=8)
    win = AttentionSpec(heads=4, kv_heads=2, head_dim=8, window=16)
    gdn = GDNSpec(heads=2, v_heads=4, head_dim_k=8, head_dim_v=6, conv_size=4)
    config = HybridConfig(vocab_size=10, d_model=16, mlp_hidden=8, layers=(att, win, gdn))
    kv = 2 * 2 * 8  # K and V, kv_heads x head_dim values per token
    state = 4 * 8 * 6 + 3 * (2 * 16 + 24)
    for length in (0, 1, 16, 100):
        expected = (kv * length + kv * min(length, 16) + state) * 2
        assert inference_memory_bytes(config, length) == expected
    assert inference_memory_bytes(config, 100, dtype_bytes=4) == 2 * inference_memory_bytes(
        config, 100
    )
    # 7B: 8 full-attention layers of 30 x 128 K/V per token + 24 fixed GDN states
    seven = olmo_hybrid_7b_config()
    per_token = 8 * 2 * 30 * 128 * 2
    fixed = 24 * (30 * 96 * 192 + 3 * (2 * 30 * 96 + 30 * 192)) * 2
    assert inference_memory_bytes(seven, 65536) == per_token * 65536 + fixed


def test_cost_report() -> None:
    report = cost_report(olmo_hybrid_7b_config(), seq_len=4096, context_len=65536)
    assert report.params == 7_430_870_688
    assert report.inference_memory_bytes == inference_memory_bytes(olmo_hybrid_7b_config(), 65536)
