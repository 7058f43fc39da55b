"""A flash-linear-attention ``GatedDeltaNetConfig`` (``fla.models``) for a hybrid stack.

fla's GatedDeltaNet model is a stack of GDN blocks in which the layers listed in ``attn.layers``
are standard attention instead: exactly a layer pattern. GDN fields: ``num_heads`` key heads of
``head_dim``, ``num_v_heads`` value heads of ``head_dim * expand_v``; ``use_gate`` is the output
gate (``RMSNorm(o) * SiLU(g)``, as Olmo Hybrid's). Windowed attention layers get their own
``attn`` entry with ``window_size`` (``attn`` may be a list of entries).

What fla cannot say is returned as notes, not hidden: its blocks are all pre-norm and its
attention has no QK-norm, unlike Olmo Hybrid's reordered post-norm attention blocks; it has no
NoPE attention. The dict holds only ``GatedDeltaNetConfig`` arguments plus ``model_type``, so
``GatedDeltaNetConfig(**data)`` and ``AutoConfig.from_pretrained`` (with fla imported) both read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archsearch.export.targets import TargetError
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig

MODEL_TYPE = "gated_deltanet"


def fla_config(config: HybridConfig,
               token_ids: Mapping[str, int | None] | None = None) -> tuple[dict[str, Any], list[str]]:
    """(``GatedDeltaNetConfig`` arguments incl. ``model_type``, notes on what differs)."""
    notes = [("fla blocks are all pre-norm and its attention has no QK-norm: the attention blocks "
              "differ from Olmo Hybrid's (reordered post-norm with QK-norm)")]
    gdn = [s for s in config.layers if isinstance(s, GDNSpec)]
    if any(s != gdn[0] for s in gdn[1:]):
        raise TargetError("cannot export to fla: GatedDeltaNetConfig has one setting for all "
                          "GDN layers, but this model's differ")
    if gdn:
        g = gdn[0]
        linear = {"num_heads": g.heads, "num_v_heads": g.v_heads, "head_dim": g.head_dim_k,
                  "expand_v": g.head_dim_v / g.head_dim_k, "allow_neg_eigval": g.allow_neg_eigval,
                  "conv_size": g.conv_size}
    else:
        # no GDN layer: the GDN fields are unused; keep fla's own defaults out of the way
        heads = next(s.heads for s in config.layers if isinstance(s, AttentionSpec))
        linear = {"num_heads": heads, "num_v_heads": heads,
                  "head_dim": max(1, 3 * config.d_model // (4 * heads)), "expand_v": 2.0,
                  "allow_neg_eigval": True, "conv_size": 4}
        notes.append("every layer is attention: the GDN fields are placeholders")
    data: dict[str, Any] = {
        "model_type": MODEL_TYPE,
        "attn_mode": "chunk",
        "hidden_size": config.d_model,
        "num_hidden_layers": config.n_layers,
        "vocab_size": config.vocab_size,
        **linear,
        "use_gate": True,
        "use_short_conv": True,
        "intermediate_size": config.mlp_hidden,
        "hidden_act": "swish",
        "norm_eps": config.norm_eps,
        "max_position_embeddings": config.max_seq_len,
        "tie_word_embeddings": config.tie_embeddings,
        "initializer_range": config.init_std,
        "attn": _attention_entries(config, notes),
        **dict(token_ids or {"pad_token_id": None, "bos_token_id": None, "eos_token_id": None}),
    }
    return data, notes


def _attention_entries(config: HybridConfig, notes: list[str]) -> Any:
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, spec in enumerate(config.layers):
        if not isinstance(spec, AttentionSpec):
            continue
        if spec.heads * spec.head_dim != config.d_model:
            raise TargetError(f"cannot export to fla: its attention head width is hidden_size / "
                              f"num_heads, but layer {i} has {spec.heads} heads of {spec.head_dim}")
        if not spec.rope:
            raise TargetError("cannot export NoPE attention to fla: its attention always "
                              "applies RoPE")
        key = (spec.heads, spec.kv_heads, spec.window, spec.rope_theta)
        groups.setdefault(key, []).append(i)
    entries = [{"layers": layers, "num_heads": heads, "num_kv_heads": kv, "qkv_bias": False,
                "window_size": window, "rope_theta": theta}
               for (heads, kv, window, theta), layers in groups.items()]
    if not entries:
        return None
    if len(entries) > 1:
        notes.append("attention layers with different settings are separate 'attn' entries")
    return entries[0] if len(entries) == 1 else entries
