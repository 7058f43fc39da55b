"""From a resolved trial to the model it describes: symbol table + model section -> HybridConfig.

This is where a YAML layer option becomes a tensor shape: ``symbols.G.head_dim_k`` sets the GDN
key head width, ``model.d_model`` the residual width, ``data.seq_len`` the longest sequence.
A matched size (``model.match``) needs nothing here: ``SearchSpace.resolve`` has already written
the resized ``d_model``, ``mlp_hidden`` or GDN ``head_dim_k`` into the trial.
"""

from __future__ import annotations

from archsearch.errors import SpaceError
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig, LayerSpec
from archsearch.space.schema import AttentionSymbol, GDNSymbol, ModelSection, SymbolSpec
from archsearch.space.trial import TrialConfig


def layer_spec(symbol: SymbolSpec, model: ModelSection) -> LayerSpec:
    """One layer's spec; sizes the symbol leaves unset follow the model section.

    Raises ValueError, in the YAML's words, when the sizes do not fit together.
    """
    if isinstance(symbol, AttentionSymbol):
        heads = symbol.heads or model.n_heads
        kv_heads = symbol.kv_heads or model.n_kv_heads or heads
        if heads % kv_heads:
            raise ValueError(f"{heads} attention heads do not split into groups of {kv_heads} "
                             "kv_heads: kv_heads must divide heads")
        head_dim = symbol.head_dim or _default_head_width(model, heads, "head_dim")
        if symbol.rope and head_dim % 2:
            raise ValueError(f"the attention head width {head_dim} is odd; RoPE rotates pairs "
                             "of channels: give an even head_dim, or rope: false")
        return AttentionSpec(
            heads=heads,
            kv_heads=kv_heads,
            head_dim=head_dim,
            window=symbol.window,
            rope=symbol.rope,
            rope_theta=symbol.rope_theta,
            qk_norm=symbol.qk_norm,
        )
    if isinstance(symbol, GDNSymbol):
        heads = symbol.heads or model.n_heads
        v_heads = symbol.v_heads or heads
        if v_heads % heads:
            raise ValueError(f"GDN v_heads {v_heads} is not a multiple of its {heads} key heads")
        head_dim_k = symbol.head_dim_k or max(
            1, _default_head_width(model, heads, "head_dim_k") * 3 // 4)
        return GDNSpec(
            heads=heads,
            v_heads=v_heads,
            head_dim_k=head_dim_k,
            head_dim_v=max(1, round(head_dim_k * symbol.expand_v)),
            allow_neg_eigval=symbol.allow_neg_eigval,
            conv_size=symbol.conv_size,
        )
    raise TypeError(f"unknown layer symbol spec {symbol!r}")


def _default_head_width(model: ModelSection, heads: int, field: str) -> int:
    """``d_model // heads``, when ``heads`` splits ``d_model`` evenly: otherwise the heads would
    silently cover less than the residual width (or nothing, with more heads than channels)."""
    if model.d_model % heads:
        raise ValueError(f"{heads} heads do not divide d_model {model.d_model}: choose heads "
                         f"that do, or give the symbol's {field}")
    return model.d_model // heads


def mlp_hidden(model: ModelSection) -> int:
    """SwiGLU width: ``mlp_hidden`` if given, else ``mlp_ratio * d_model`` rounded up to 8."""
    if model.mlp_hidden:
        return model.mlp_hidden
    return -(-round(model.mlp_ratio * model.d_model) // 8) * 8


def hybrid_config(trial: TrialConfig, vocab_size: int | None = None) -> HybridConfig:
    """The model of ``trial``; ``vocab_size`` is the tokenizer's unless the model section fixes it.

    Raises SpaceError (naming the search space) when the sizes do not fit together.
    """
    model = trial.model
    if model.vocab_size and vocab_size and model.vocab_size < vocab_size:
        raise SpaceError(trial.space_name, None, "model.vocab_size", f"{model.vocab_size} is "
                         f"smaller than the data's {vocab_size} ids (tokenizer, end of document "
                         "and probe block): leave it unset or raise it")
    vocab = model.vocab_size or vocab_size or trial.data.vocab_size
    layers = {}
    for symbol in dict.fromkeys(trial.layers):
        try:
            layers[symbol] = layer_spec(trial.symbols[symbol], model)
        except ValueError as err:
            raise SpaceError(trial.space_name, None, f"symbols.{symbol}",
                             f"{err} (pattern {trial.pattern})") from None
    try:
        return HybridConfig(
            vocab_size=vocab,
            d_model=model.d_model,
            mlp_hidden=mlp_hidden(model),
            layers=tuple(layers[s] for s in trial.layers),
            norm_placement=model.norm_placement,
            norm_eps=model.norm_eps,
            tie_embeddings=model.tie_embeddings,
            init_std=model.init_std,
            max_seq_len=max(trial.data.seq_len, 1),
        )
    except ValueError as err:
        raise SpaceError(trial.space_name, None, "model", f"{err} (pattern {trial.pattern})") from None
