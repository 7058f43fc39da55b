"""Full-size targets: a real model's dimensions, into which a layer pattern is placed.

A ``Target`` fixes everything but the layer stack. ``olmo-hybrid-7b`` is Olmo Hybrid 7B
(docs/BACKGROUND.md, "The 7B model"): hidden 3840, SwiGLU 11008, 30 attention heads of 128 (full
attention, QK-norm, RoPE theta 500000), GDN with 30 key/value heads of 96/192 dims, conv 4,
negative eigenvalues allowed, dolma2 vocabulary 100352, untied embeddings, 65536 positions. Sliding-window symbols (``S``) get Olmo 3's window of
4096 tokens. ``olmo_hybrid_7b_config`` is that model with its own stack, ``(GGGA)*8``:
7,430,870,688 parameters.

Plain data like ``model.config``: the scaling fits (compute at the target) and the exports (a
config file at the target) both read it from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from archsearch.errors import ArchsearchError
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig, LayerSpec
from archsearch.pattern.symbols import BUILTIN_KINDS

OLMO_HYBRID_7B_PATTERN = "GGGA" * 8  # its released stack, (GGGA)*8


class TargetError(ArchsearchError):
    """An unknown target or format, or a pattern the target cannot hold."""


@dataclass(frozen=True)
class Target:
    name: str
    depth: int  # the target's own depth (a --from export redraws the pattern at this depth)
    vocab_size: int
    d_model: int
    mlp_hidden: int
    attention: AttentionSpec
    gdn: GDNSpec
    sliding_window: int  # for windowed-attention symbols
    norm_eps: float = 1e-6
    max_seq_len: int = 65536
    train_seq_len: int = 8192  # for cost-model FLOPs at the target
    tie_embeddings: bool = False
    init_std: float = 0.02
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    @property
    def token_ids(self) -> dict[str, int | None]:
        return {"pad_token_id": self.pad_token_id, "bos_token_id": self.bos_token_id,
                "eos_token_id": self.eos_token_id}


OLMO_HYBRID_7B = Target(
    name="olmo-hybrid-7b",
    depth=32,
    vocab_size=100352,
    d_model=3840,
    mlp_hidden=11008,
    attention=AttentionSpec(heads=30, kv_heads=30, head_dim=128, window=None, rope=True,
                            rope_theta=500000.0, qk_norm=True),
    gdn=GDNSpec(heads=30, v_heads=30, head_dim_k=96, head_dim_v=192, allow_neg_eigval=True,
                conv_size=4),
    sliding_window=4096,
    pad_token_id=100277,  # dolma2
    eos_token_id=100257,
)
TARGETS: Mapping[str, Target] = MappingProxyType({OLMO_HYBRID_7B.name: OLMO_HYBRID_7B})


def get_target(name: str | Target) -> Target:
    if isinstance(name, Target):
        return name
    if name not in TARGETS:
        raise TargetError(f"unknown target '{name}'; known: {', '.join(TARGETS)}")
    return TARGETS[name]


def target_config(layers: Sequence[str], kinds: Mapping[str, str],
                  windows: Mapping[str, int | None] | None = None,
                  target: str | Target = OLMO_HYBRID_7B) -> HybridConfig:
    """The target's model with ``layers`` as its stack (the pattern's own depth).

    ``kinds`` maps each symbol to ``attention`` or ``gdn``; ``windows`` marks windowed attention
    symbols (any window: the target's ``sliding_window`` is used, proxy windows do not scale).
    """
    t = get_target(target)
    windows = windows or {}
    specs: list[LayerSpec] = []
    for symbol in layers:
        kind = kinds.get(symbol)
        if kind == "attention":
            window = t.sliding_window if windows.get(symbol) else None
            specs.append(replace(t.attention, window=window))
        elif kind == "gdn":
            specs.append(t.gdn)
        else:
            raise TargetError(f"layer symbol '{symbol}' has no known kind (attention or gdn)")
    return HybridConfig(vocab_size=t.vocab_size, d_model=t.d_model, mlp_hidden=t.mlp_hidden,
                        layers=tuple(specs), norm_placement="per_kind", norm_eps=t.norm_eps,
                        tie_embeddings=t.tie_embeddings, init_std=t.init_std,
                        max_seq_len=t.max_seq_len)


def olmo_hybrid_7b_config(rope: bool = True) -> HybridConfig:
    """Olmo Hybrid 7B exactly: ``(GGGA)*8`` at ``OLMO_HYBRID_7B``'s widths, 7,430,870,688 params.

    Pretraining used RoPE; the released base model drops it (NoPE) after long-context training:
    pass ``rope=False`` for the latter. The parameter count does not depend on it.
    """
    config = target_config(OLMO_HYBRID_7B_PATTERN, BUILTIN_KINDS)
    if rope:
        return config
    return replace(config, layers=tuple(replace(s, rope=False) if isinstance(s, AttentionSpec)
                                        else s for s in config.layers))
