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
    """One layer's spec; sizes the symbol leaves unset follow the model section."""
    if isinstance(symbol, AttentionSymbol):
        heads = symbol.heads or model.n_heads
        return AttentionSpec(
            heads=heads,
            kv_heads=symbol.kv_heads or model.n_kv_heads or heads,
            head_dim=symbol.head_dim or model.d_model // heads,
            window=symbol.window,
            rope=symbol.rope,
            rope_theta=symbol.rope_theta,
            qk_norm=symbol.qk_norm,
        )
    if isinstance(symbol, GDNSymbol):
        heads = symbol.heads or model.n_heads
        head_dim_k = symbol.head_dim_k or max(1, (model.d_model // heads) * 3 // 4)
        return GDNSpec(
            heads=heads,
            v_heads=symbol.v_heads or heads,
            head_dim_k=head_dim_k,
            head_dim_v=max(1, round(head_dim_k * symbol.expand_v)),
            allow_neg_eigval=symbol.allow_neg_eigval,
            conv_size=symbol.conv_size,
        )
    raise TypeError(f"unknown layer symbol spec {symbol!r}")


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
    vocab = model.vocab_size or vocab_size or trial.data.vocab_size
    try:
        return HybridConfig(
            vocab_size=vocab,
            d_model=model.d_model,
            mlp_hidden=mlp_hidden(model),
            layers=tuple(layer_spec(trial.symbols[s], model) for s in trial.layers),
            norm_placement=model.norm_placement,
            norm_eps=model.norm_eps,
            tie_embeddings=model.tie_embeddings,
            init_std=model.init_std,
            max_seq_len=max(trial.data.seq_len, 1),
        )
    except ValueError as err:
        raise SpaceError(trial.space_name, None, "model", f"{err} (pattern {trial.pattern})") from None
