"""Typed, frozen model configuration: one spec per layer, validated when built.

A model is a stack of layers, each either softmax attention (``AttentionSpec``; full, or a sliding
window) or a Gated DeltaNet (``GDNSpec``), every layer followed by a SwiGLU MLP. ``HybridConfig``
holds the stack plus the shared widths. Everything here is plain data: the cost model
(``archsearch.model.cost``) reads it without building a model, the checkpoint stores it as JSON.

Pattern symbols (``HybridConfig.pattern``): ``A`` full attention, ``S`` sliding-window attention,
``G`` Gated DeltaNet.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

NormPlacement = Literal["per_kind", "pre"]
NORM_PLACEMENTS: tuple[str, ...] = ("per_kind", "pre")


# Every invalid value raises ValueError, wrong types included (ruff TRY004 would want TypeError):
# callers such as the search-space loader catch one exception type for "this config is invalid".


def _check_positive_int(owner: str, name: str, value: Any) -> None:
    # bool is an int subclass; True as a head count is always a mistake
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}.{name} must be a positive integer, got {value!r}")


def _check_bool(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{owner}.{name} must be true or false, got {value!r}")  # noqa: TRY004


def _check_positive_float(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{owner}.{name} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be finite, got {value!r}")


@dataclass(frozen=True)
class AttentionSpec:
    """Softmax attention (Olmo 2/3 style): MHA or GQA, RoPE or none, QK-norm, optional window.

    ``window`` is the number of keys a query sees, itself included (transformers' convention:
    key j is visible from query i when ``i - window < j <= i``); ``None`` means full causal.
    ``qk_norm`` is one RMSNorm over the whole q (and k) projection width, not per head.
    """

    heads: int
    kv_heads: int
    head_dim: int
    window: int | None = None
    rope: bool = True
    rope_theta: float = 500000.0
    qk_norm: bool = True

    kind = "attention"  # class attribute, not a field: tells layer kinds apart in JSON and code

    def __post_init__(self) -> None:
        owner = "AttentionSpec"
        for name in ("heads", "kv_heads", "head_dim"):
            _check_positive_int(owner, name, getattr(self, name))
        if self.heads % self.kv_heads:
            raise ValueError(
                f"{owner}.heads ({self.heads}) must be a multiple of kv_heads ({self.kv_heads})"
            )
        if self.window is not None:
            _check_positive_int(owner, "window", self.window)
        _check_bool(owner, "rope", self.rope)
        _check_bool(owner, "qk_norm", self.qk_norm)
        _check_positive_float(owner, "rope_theta", self.rope_theta)
        if self.rope and self.head_dim % 2:
            raise ValueError(f"{owner}.head_dim must be even when rope is on, got {self.head_dim}")

    @property
    def symbol(self) -> str:
        return "A" if self.window is None else "S"


@dataclass(frozen=True)
class GDNSpec:
    """A Gated DeltaNet layer exactly as Olmo Hybrid's (see ``archsearch.model.gdn``).

    ``heads`` query/key heads of width ``head_dim_k``; ``v_heads`` value heads of width
    ``head_dim_v`` (a multiple of ``heads``: each q/k head serves ``v_heads // heads`` consecutive
    value heads). ``allow_neg_eigval`` doubles beta to [0, 2]; ``conv_size`` is the short
    depthwise causal convolution's kernel width.
    """

    heads: int
    v_heads: int
    head_dim_k: int
    head_dim_v: int
    allow_neg_eigval: bool = True
    conv_size: int = 4

    kind = "gdn"

    def __post_init__(self) -> None:
        owner = "GDNSpec"
        for name in ("heads", "v_heads", "head_dim_k", "head_dim_v", "conv_size"):
            _check_positive_int(owner, name, getattr(self, name))
        if self.v_heads % self.heads:
            raise ValueError(
                f"{owner}.v_heads ({self.v_heads}) must be a multiple of heads ({self.heads})"
            )
        _check_bool(owner, "allow_neg_eigval", self.allow_neg_eigval)

    @property
    def symbol(self) -> str:
        return "G"

    @property
    def key_dim(self) -> int:
        return self.heads * self.head_dim_k

    @property
    def value_dim(self) -> int:
        return self.v_heads * self.head_dim_v

    @property
    def conv_dim(self) -> int:
        """Channels of the short convolution: q, k and v side by side."""
        return 2 * self.key_dim + self.value_dim


LayerSpec = AttentionSpec | GDNSpec
_SPEC_BY_KIND: dict[str, type[AttentionSpec | GDNSpec]] = {
    "attention": AttentionSpec,
    "gdn": GDNSpec,
}


def layer_to_dict(spec: LayerSpec) -> dict[str, Any]:
    """A layer spec as JSON-ready data, tagged with its ``kind``."""
    return {"kind": spec.kind, **asdict(spec)}


def layer_from_dict(data: Mapping[str, Any]) -> LayerSpec:
    """Inverse of ``layer_to_dict``; unknown kinds and fields raise ValueError naming them."""
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in _SPEC_BY_KIND:
        raise ValueError(f"layer kind must be one of {sorted(_SPEC_BY_KIND)}, got {kind!r}")
    cls = _SPEC_BY_KIND[kind]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown field(s) for a {kind} layer: {', '.join(unknown)}")
    return cls(**data)


@dataclass(frozen=True)
class HybridConfig:
    """The whole model: embedding, ``layers`` (each + a SwiGLU MLP of width ``mlp_hidden``), head.

    ``norm_placement``: ``"per_kind"`` is Olmo Hybrid's (GDN blocks pre-norm, attention blocks
    Olmo 2/3 "reordered" post-norm: ``x += norm(Attn(x)); x += norm(MLP(x))``); ``"pre"`` makes
    every block pre-norm.
    """

    vocab_size: int
    d_model: int
    mlp_hidden: int
    layers: tuple[LayerSpec, ...]
    norm_placement: NormPlacement = "per_kind"
    norm_eps: float = 1e-6
    tie_embeddings: bool = False
    init_std: float = 0.02
    max_seq_len: int = 65536

    def __post_init__(self) -> None:
        owner = "HybridConfig"
        for name in ("vocab_size", "d_model", "mlp_hidden", "max_seq_len"):
            _check_positive_int(owner, name, getattr(self, name))
        if isinstance(self.layers, (str, bytes)) or not isinstance(self.layers, Iterable):
            raise ValueError(f"{owner}.layers must be a sequence of layer specs")  # noqa: TRY004
        layers = tuple(self.layers)  # accept a list, store a tuple so the config stays hashable
        if not layers:
            raise ValueError(f"{owner}.layers must not be empty")
        for i, spec in enumerate(layers):
            if not isinstance(spec, (AttentionSpec, GDNSpec)):
                raise ValueError(  # noqa: TRY004
                    f"{owner}.layers[{i}] must be an AttentionSpec or a GDNSpec, "
                    f"got {type(spec).__name__}"
                )
        object.__setattr__(self, "layers", layers)
        if self.norm_placement not in NORM_PLACEMENTS:
            raise ValueError(
                f"{owner}.norm_placement must be one of {NORM_PLACEMENTS}, "
                f"got {self.norm_placement!r}"
            )
        _check_positive_float(owner, "norm_eps", self.norm_eps)
        _check_positive_float(owner, "init_std", self.init_std)
        _check_bool(owner, "tie_embeddings", self.tie_embeddings)

    # -- views ---------------------------------------------------------------------------------

    @property
    def pattern(self) -> str:
        """One symbol per layer: ``A`` full attention, ``S`` windowed attention, ``G`` GDN."""
        return "".join(spec.symbol for spec in self.layers)

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def attention_layers(self) -> tuple[int, ...]:
        """Indices of the attention layers (full and windowed)."""
        return tuple(i for i, s in enumerate(self.layers) if isinstance(s, AttentionSpec))

    @property
    def gdn_layers(self) -> tuple[int, ...]:
        return tuple(i for i, s in enumerate(self.layers) if isinstance(s, GDNSpec))

    def replace(self, **changes: Any) -> HybridConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "layers":
                value = [layer_to_dict(s) for s in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HybridConfig:
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown HybridConfig field(s): {', '.join(unknown)}")
        if "layers" not in data:
            raise ValueError("HybridConfig needs 'layers'")
        raw_layers = data["layers"]
        if not isinstance(raw_layers, (list, tuple)):
            raise ValueError("HybridConfig.layers must be a list of layer objects")  # noqa: TRY004
        data["layers"] = tuple(layer_from_dict(layer) for layer in raw_layers)
        return cls(**data)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> HybridConfig:
        return cls.from_dict(json.loads(text))

    # -- construction from a pattern -----------------------------------------------------------

    @classmethod
    def from_pattern(
        cls,
        pattern: str,
        *,
        vocab_size: int,
        d_model: int,
        mlp_hidden: int,
        attention: AttentionSpec | None = None,
        gdn: GDNSpec | None = None,
        window: int | None = None,
        **kwargs: Any,
    ) -> HybridConfig:
        """Build a stack from a flat symbol string (``"GGGAGGGA"``): ``A`` -> ``attention``
        (window forced off), ``S`` -> ``attention`` with ``window``, ``G`` -> ``gdn``.

        Repetition syntax (``(GGGA)*8``) is ``archsearch.pattern``'s job; expand it first.
        """
        layers: list[LayerSpec] = []
        for i, symbol in enumerate(pattern):
            if symbol in "AS":
                if attention is None:
                    raise ValueError(f"pattern {pattern!r} has attention layers: pass attention=")
                if symbol == "S" and window is None and attention.window is None:
                    raise ValueError(f"pattern {pattern!r} has 'S' layers: pass window=")
                win = (
                    None if symbol == "A" else (window if window is not None else attention.window)
                )
                layers.append(replace(attention, window=win))
            elif symbol == "G":
                if gdn is None:
                    raise ValueError(f"pattern {pattern!r} has GDN layers: pass gdn=")
                layers.append(gdn)
            else:
                raise ValueError(
                    f"unknown layer symbol {symbol!r} at position {i} of {pattern!r} "
                    "(expected A, S or G)"
                )
        return cls(
            vocab_size=vocab_size,
            d_model=d_model,
            mlp_hidden=mlp_hidden,
            layers=tuple(layers),
            **kwargs,
        )


def olmo_hybrid_7b_config(rope: bool = True) -> HybridConfig:
    """Olmo Hybrid 7B exactly (docs/BACKGROUND.md, "The 7B model"): ``(GGGA)*8``, d 3840, 7.43B.

    Pretraining used RoPE; the released base model drops it (NoPE) after long-context training:
    pass ``rope=False`` for the latter. The parameter count does not depend on it.
    """
    attention = AttentionSpec(heads=30, kv_heads=30, head_dim=128, window=None, rope=rope)
    gdn = GDNSpec(
        heads=30, v_heads=30, head_dim_k=96, head_dim_v=192, allow_neg_eigval=True, conv_size=4
    )
    layers = tuple(attention if i % 4 == 3 else gdn for i in range(32))
    return HybridConfig(
        vocab_size=100352,
        d_model=3840,
        mlp_hidden=11008,
        layers=layers,
        norm_placement="per_kind",
        norm_eps=1e-6,
        tie_embeddings=False,
        init_std=0.02,
        max_seq_len=65536,
    )
