"""A model config in OLMo-core's terms: ``TransformerConfig`` with named blocks and a block pattern.

OLMo-core builds a hybrid from a dict of ``TransformerBlockConfig``s and a ``block_pattern`` of
their names cycled over ``n_layers`` (Olmo Hybrid 7B: ``{"gdn": ..., "attn": ...}`` with
``["gdn", "gdn", "gdn", "attn"]``). The pattern written is the stack's shortest period, or the
whole stack when it has none, so cycling it reproduces the stack exactly.

Block settings follow Olmo Hybrid (docs/BACKGROUND.md, "The blocks"): GDN blocks pre-norm
(``TransformerBlockType.default``), attention blocks Olmo 2/3 reordered post-norm
(``reordered_norm``) with QK-norm over the whole projection width. ``olmo_core_settings`` gives
the settings as plain data (the YAML file); ``olmo_core_python`` renders the same settings as a
Python snippet that builds ``model_config``. OLMo-core is not a dependency: nothing here imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archsearch.export.targets import TargetError
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig, LayerSpec


def _block_name(spec: LayerSpec) -> str:
    if isinstance(spec, GDNSpec):
        return "gdn"
    return "swa" if spec.window is not None else "attn"


def _uniform(specs: list[Any], what: str) -> Any:
    if any(s != specs[0] for s in specs[1:]):
        raise TargetError(f"cannot export to OLMo-core: its '{what}' block has one setting for "
                          f"all those layers, but this model's differ")
    return specs[0]


def _period(names: list[str]) -> list[str]:
    """The shortest prefix that, cycled, is ``names`` (OLMo-core cycles ``block_pattern``)."""
    n = len(names)
    return next(names[:p] for p in range(1, n + 1) if n % p == 0 and names[:p] * (n // p) == names)


def olmo_core_settings(config: HybridConfig) -> dict[str, Any]:
    """TransformerConfig settings as plain data (``_notes``: what the user must check)."""
    names = [_block_name(s) for s in config.layers]
    period = _period(names)
    norm = {"name": "rms", "eps": config.norm_eps, "bias": False}
    feed_forward = {"hidden_size": config.mlp_hidden, "bias": False}
    blocks: dict[str, Any] = {}
    notes: list[str] = []
    for name in dict.fromkeys(names):
        specs = [s for s, n in zip(config.layers, names, strict=True) if n == name]
        spec = _uniform(specs, name)
        mixer = _gdn(spec) if isinstance(spec, GDNSpec) else _attention(spec, config, norm, notes)
        blocks[name] = {
            "name": "default" if isinstance(spec, GDNSpec) else "reordered_norm",
            "sequence_mixer": mixer, "feed_forward": feed_forward, "layer_norm": norm}
    if config.norm_placement != "per_kind":
        notes.append("the proxy used pre-norm attention blocks; this config uses Olmo's "
                     "reordered_norm attention blocks")
    return {"d_model": config.d_model, "vocab_size": config.vocab_size,
            "n_layers": config.n_layers, "block_pattern": period, "block": blocks,
            "lm_head": {"layer_norm": norm, "bias": False},
            "tie_word_embeddings": config.tie_embeddings, "init_std": config.init_std,
            "_notes": notes}


def _gdn(spec: GDNSpec) -> dict[str, Any]:
    return {"class": "GatedDeltaNetConfig", "n_heads": spec.heads, "n_v_heads": spec.v_heads,
            "head_dim": spec.head_dim_k, "expand_v": spec.head_dim_v / spec.head_dim_k,
            "allow_neg_eigval": spec.allow_neg_eigval, "conv_size": spec.conv_size,
            "conv_bias": False}


def _attention(spec: AttentionSpec, config: HybridConfig, norm: Mapping[str, Any],
               notes: list[str]) -> dict[str, Any]:
    mixer: dict[str, Any] = {"class": "AttentionConfig", "name": "default",
                             "n_heads": spec.heads, "n_kv_heads": spec.kv_heads, "bias": False,
                             "rope": {"name": "default", "theta": _number(spec.rope_theta)}
                             if spec.rope
                             else None,
                             "qk_norm": dict(norm) if spec.qk_norm else None}
    if spec.heads * spec.head_dim != config.d_model:
        mixer["head_dim"] = spec.head_dim
    if spec.window is not None:
        mixer["sliding_window"] = {"pattern": [spec.window],
                                   "force_full_attention_on_first_layer": False,
                                   "force_full_attention_on_last_layer": False}
        notes.append("windowed attention uses a separate 'swa' block; check SlidingWindowAttention"
                     "Config's pattern semantics in your OLMo-core version")
    return mixer


# -- Python rendering ------------------------------------------------------------------------


_IMPORTS = """\
from olmo_core.nn.attention import AttentionConfig, AttentionType{swa}
from olmo_core.nn.attention.recurrent import GatedDeltaNetConfig
from olmo_core.nn.feed_forward import FeedForwardConfig
from olmo_core.nn.layer_norm import LayerNormConfig, LayerNormType
from olmo_core.nn.lm_head import LMHeadConfig
from olmo_core.nn.rope import RoPEConfig, RoPEType
from olmo_core.nn.transformer import TransformerBlockConfig, TransformerBlockType, TransformerConfig
"""
_COMMENTS = {
    "gdn": "# Gated DeltaNet blocks, pre-norm: x += GDN(norm(x)); x += MLP(norm(x))",
    "attn": "# Attention blocks, Olmo 2/3 reordered post-norm: x += norm(Attn(x)); x += norm(MLP(x))",
    "swa": "# Sliding-window attention blocks, reordered post-norm like the full-attention ones",
}


def olmo_core_python(settings: Mapping[str, Any], header: str) -> str:
    """A snippet that defines ``BLOCK_PATTERN`` and ``model_config`` (a TransformerConfig)."""
    blocks = settings["block"]
    norm = next(iter(blocks.values()))["layer_norm"]
    ffn = next(iter(blocks.values()))["feed_forward"]
    lines = [f"# {header}", "# Paste into an OLMo-core training script; builds `model_config`.",
             _IMPORTS.format(swa=", SlidingWindowAttentionConfig" if "swa" in blocks else ""),
             f"layer_norm = LayerNormConfig(name=LayerNormType.rms, eps={norm['eps']!r}, bias=False)",
             f"feed_forward = FeedForwardConfig(hidden_size={ffn['hidden_size']}, bias=False)", ""]
    for name, block in blocks.items():
        lines += [_COMMENTS[name], f"{name}_block = TransformerBlockConfig(",
                  f"    name=TransformerBlockType.{block['name']},",
                  f"    sequence_mixer={_mixer(block['sequence_mixer'])},",
                  "    feed_forward=feed_forward,", "    layer_norm=layer_norm,", ")", ""]
    pattern = settings["block_pattern"]
    counts = ", ".join(f"{sum(_cycled(pattern, settings['n_layers'], n))} {n}"
                       for n in blocks)
    lines += [f"BLOCK_PATTERN = {pattern!r}  # cycled over {settings['n_layers']} layers: {counts}",
              "",
              "model_config = TransformerConfig(",
              f"    d_model={settings['d_model']},",
              f"    vocab_size={settings['vocab_size']},",
              f"    n_layers={settings['n_layers']},",
              "    block={" + ", ".join(f'"{n}": {n}_block' for n in blocks) + "},",
              "    block_pattern=BLOCK_PATTERN,",
              "    lm_head=LMHeadConfig(layer_norm=layer_norm, bias=False),",
              f"    init_std={settings['init_std']!r},"]
    if settings["tie_word_embeddings"]:
        lines.append("    tie_word_embeddings=True,")
    lines += [")", ""]
    return "\n".join(lines)


def _cycled(pattern: list[str], n_layers: int, name: str) -> list[bool]:
    return [pattern[i % len(pattern)] == name for i in range(n_layers)]


def _number(value: float) -> int | float:
    # OLMo-core types RoPE theta as an int; 500000.0 is written 500000
    return int(value) if float(value).is_integer() else value


def _mixer(mixer: Mapping[str, Any]) -> str:
    if mixer["class"] == "GatedDeltaNetConfig":
        args = [f"{k}={mixer[k]!r}" for k in ("n_heads", "n_v_heads", "head_dim", "expand_v",
                                              "allow_neg_eigval", "conv_size", "conv_bias")]
        return "GatedDeltaNetConfig(" + ", ".join(args) + ")"
    args = ["name=AttentionType.default", f"n_heads={mixer['n_heads']}",
            f"n_kv_heads={mixer['n_kv_heads']}", "bias=False"]
    if "head_dim" in mixer:
        args.append(f"head_dim={mixer['head_dim']}")
    rope = mixer["rope"]
    args.append("rope=None" if rope is None
                else f"rope=RoPEConfig(name=RoPEType.default, theta={_number(rope['theta'])!r})")
    args.append("qk_norm=layer_norm" if mixer["qk_norm"] else "qk_norm=None")
    if "sliding_window" in mixer:
        swa = mixer["sliding_window"]
        args.append(f"sliding_window=SlidingWindowAttentionConfig(pattern={swa['pattern']!r}, "
                    "force_full_attention_on_first_layer=False, "
                    "force_full_attention_on_last_layer=False)")
    return "AttentionConfig(" + ", ".join(args) + ")"
