"""Full-size export targets: a layer pattern at a real model's dimensions, in three formats.

A ``Target`` fixes everything but the layer stack. ``olmo-hybrid-7b`` is Olmo Hybrid 7B
(docs/BACKGROUND.md, "The 7B model"): hidden 3840, SwiGLU 11008, 30 attention heads of 128 (full
attention, QK-norm, RoPE theta 500000), GDN with 30 key/value heads of 96/192 dims, conv 4, negative
eigenvalues allowed, dolma2 vocabulary 100352, untied embeddings, 65536 positions. Sliding-window
symbols (``S``) get Olmo 3's window of 4096 tokens.

``export_target`` writes ``OUT/``:
- ``hf``: ``config.json`` for transformers (``OlmoHybridConfig``; ``Olmo3Config`` when every layer
  is attention), built by ``archsearch.export.hf.hf_config`` so proxy-weight exports and config
  exports agree;
- ``olmo-core``: ``olmo_core_model.py`` (paste into a training script) and ``olmo_core_model.yaml``
  (the same settings as data), in OLMo-core's terms (``archsearch.export.olmo_core``);
- ``fla``: ``config.json`` for ``fla.models.GatedDeltaNetConfig`` with the attention layers
  listed in ``attn`` (``archsearch.export.fla_config``).
Each also writes ``export.json``: the pattern, target, source, and what the format cannot say.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from archsearch.errors import ArchsearchError
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig, LayerSpec
from archsearch.pattern import canonical

FORMATS = ("hf", "olmo-core", "fla")
EXPORT_INFO = "export.json"


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


def export_target(config: HybridConfig, fmt: str, out_dir: str | Path,
                  target: str | Target = OLMO_HYBRID_7B,
                  provenance: Mapping[str, Any] | None = None) -> list[Path]:
    """Write ``config`` in format ``fmt`` into ``out_dir``; returns the files written."""
    t = get_target(target)
    if fmt not in FORMATS:
        raise TargetError(f"unknown format '{fmt}'; choose one of {', '.join(FORMATS)}")
    # Build everything before touching the folder: a refused pattern writes nothing.
    files: dict[str, str]
    notes: list[str]
    if fmt == "hf":
        files, notes = _hf_files(config, t)
    elif fmt == "olmo-core":
        from archsearch.export.olmo_core import olmo_core_python, olmo_core_settings

        settings = olmo_core_settings(config)
        files = {"olmo_core_model.py": olmo_core_python(settings, _header(config, t)),
                 "olmo_core_model.yaml": _yaml(settings, _header(config, t))}
        notes = list(settings.pop("_notes", []))
    else:
        from archsearch.export.fla_config import fla_config

        data, notes = fla_config(config, t.token_ids)
        files = {"config.json": json.dumps(data, indent=2) + "\n"}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info = {"pattern": canonical(config.pattern), "layers": config.pattern, "depth": config.n_layers,
            "target": t.name, "format": fmt, "notes": notes, **dict(provenance or {})}
    files[EXPORT_INFO] = json.dumps(info, indent=2, default=str) + "\n"
    written = []
    for name, text in files.items():
        path = out / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def _hf_files(config: HybridConfig, t: Target) -> tuple[dict[str, str], list[str]]:
    from archsearch.export.hf import hf_config

    hf = hf_config(config, **t.token_ids)
    notes = []
    if all(isinstance(s, AttentionSpec) for s in config.layers):
        notes.append("every layer is attention: exported as Olmo3Config (OlmoHybridConfig needs "
                     "a linear_attention layer)")
    return {"config.json": hf.to_json_string(use_diff=False)}, notes


def _header(config: HybridConfig, t: Target) -> str:
    return (f"{t.name} dimensions with layer pattern {canonical(config.pattern)} "
            f"({config.n_layers} layers), generated by `archsearch export`")


def _yaml(settings: Mapping[str, Any], header: str) -> str:
    import yaml

    class _Plain(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # shared sub-dicts: repeat, no &anchors
            return True

    body = yaml.dump({k: v for k, v in settings.items() if not k.startswith("_")},
                     Dumper=_Plain, sort_keys=False, default_flow_style=None, width=100)
    return f"# {header}\n# OLMo-core TransformerConfig settings (see olmo_core_model.py)\n{body}"
