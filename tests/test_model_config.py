"""HybridConfig / layer specs: validation, pattern, JSON round trip, the Olmo Hybrid 7B preset."""

from __future__ import annotations

import dataclasses

import pytest

from archsearch.model.config import (
    AttentionSpec,
    GDNSpec,
    HybridConfig,
    layer_from_dict,
)
from archsearch.model.targets import olmo_hybrid_7b_config

ATT = AttentionSpec(heads=4, kv_heads=2, head_dim=16)
GDN = GDNSpec(heads=2, v_heads=4, head_dim_k=16, head_dim_v=32)


def small(pattern: str = "GGSA", **kwargs: object) -> HybridConfig:
    return HybridConfig.from_pattern(
        pattern,
        vocab_size=50,
        d_model=32,
        mlp_hidden=48,
        attention=ATT,
        gdn=GDN,
        window=8,
        **kwargs,
    )


def test_pattern_symbols_and_indices() -> None:
    config = small("GGSAG")
    assert config.pattern == "GGSAG"
    assert config.n_layers == 5
    assert config.attention_layers == (2, 3)
    assert config.gdn_layers == (0, 1, 4)
    assert config.layers[2].window == 8 and config.layers[3].window is None


def test_layers_list_is_stored_as_tuple_and_config_is_frozen() -> None:
    config = HybridConfig(vocab_size=10, d_model=8, mlp_hidden=8, layers=[ATT])
    assert isinstance(config.layers, tuple)
    hash(config)  # usable as a dict key / cache key in a search
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.d_model = 16  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: AttentionSpec(heads=4, kv_heads=3, head_dim=16), "multiple of kv_heads"),
        (lambda: AttentionSpec(heads=0, kv_heads=1, head_dim=16), "heads must be a positive"),
        (lambda: AttentionSpec(heads=2, kv_heads=2, head_dim=15), "even when rope"),
        (lambda: AttentionSpec(heads=2, kv_heads=2, head_dim=16, window=0), "window"),
        (lambda: AttentionSpec(heads=2, kv_heads=2, head_dim=16, rope_theta=-1.0), "rope_theta"),
        (lambda: AttentionSpec(heads=True, kv_heads=1, head_dim=16), "heads"),  # type: ignore[arg-type]
        (lambda: GDNSpec(heads=3, v_heads=4, head_dim_k=8, head_dim_v=8), "multiple of heads"),
        (lambda: GDNSpec(heads=1, v_heads=1, head_dim_k=8, head_dim_v=8, conv_size=0), "conv_size"),
        (
            lambda: HybridConfig(vocab_size=10, d_model=8, mlp_hidden=8, layers=()),
            "must not be empty",
        ),
        (
            lambda: HybridConfig(vocab_size=10, d_model=8, mlp_hidden=8, layers=("A",)),
            "layers\\[0\\]",
        ),
        (
            lambda: HybridConfig(
                vocab_size=10, d_model=8, mlp_hidden=8, layers=(ATT,), norm_placement="post"
            ),
            "norm_placement",
        ),
        (lambda: HybridConfig(vocab_size=10, d_model=0, mlp_hidden=8, layers=(ATT,)), "d_model"),
        (
            lambda: HybridConfig(
                vocab_size=10, d_model=8, mlp_hidden=8, layers=(ATT,), norm_eps=0.0
            ),
            "norm_eps",
        ),
        (lambda: small("GGXA"), "unknown layer symbol 'X' at position 2"),
        (
            lambda: HybridConfig.from_pattern(
                "S", vocab_size=5, d_model=8, mlp_hidden=8, attention=ATT
            ),
            "pass window=",
        ),
        (
            lambda: HybridConfig.from_pattern("G", vocab_size=5, d_model=8, mlp_hidden=8),
            "pass gdn=",
        ),
    ],
)
def test_validation_errors_are_clear(build, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        build()


def test_json_round_trip() -> None:
    config = small("GSAG", norm_placement="pre", tie_embeddings=True, init_std=0.01)
    again = HybridConfig.from_json(config.to_json())
    assert again == config
    assert again.pattern == "GSAG"


def test_from_dict_rejects_unknown_fields() -> None:
    data = small().to_dict()
    data["dropout"] = 0.1
    with pytest.raises(ValueError, match="unknown HybridConfig field"):
        HybridConfig.from_dict(data)
    with pytest.raises(ValueError, match="unknown field"):
        layer_from_dict(
            {"kind": "gdn", "heads": 1, "v_heads": 1, "head_dim_k": 4, "head_dim_v": 4, "x": 1}
        )
    with pytest.raises(ValueError, match="layer kind"):
        layer_from_dict({"kind": "mamba"})


def test_olmo_hybrid_7b_matches_reference() -> None:
    config = olmo_hybrid_7b_config()
    assert config.pattern == "GGGA" * 8
    assert (config.vocab_size, config.d_model, config.mlp_hidden) == (100352, 3840, 11008)
    attention = config.layers[3]
    gdn = config.layers[0]
    assert isinstance(attention, AttentionSpec) and isinstance(gdn, GDNSpec)
    assert (attention.heads, attention.kv_heads, attention.head_dim, attention.window) == (
        30,
        30,
        128,
        None,
    )
    assert (gdn.heads, gdn.v_heads, gdn.head_dim_k, gdn.head_dim_v) == (30, 30, 96, 192)
    assert gdn.allow_neg_eigval and gdn.conv_size == 4
    assert config.norm_eps == 1e-6 and not config.tie_embeddings and config.max_seq_len == 65536
    assert config.norm_placement == "per_kind"
    assert not olmo_hybrid_7b_config(rope=False).layers[3].rope
