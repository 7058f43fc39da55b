"""Export a HybridLM to a transformers checkpoint (``config.json`` + ``model.safetensors``).

Targets:
- a hybrid (some GDN, some attention layers): ``OlmoHybridForCausalLM`` (``model_type``
  ``olmo_hybrid``; layer types ``linear_attention`` / ``full_attention``);
- an all-attention model: ``Olmo3ForCausalLM`` (``full_attention`` / ``sliding_attention``, one
  shared ``sliding_window``).

Parameter names already follow transformers'; the mapping only splits our fused matrices
(attention ``qkv_proj``, GDN ``in_proj``, MLP ``gate_up_proj``), adds the singleton dim of the
depthwise ``conv1d`` weight and the ``model.`` prefix.

What transformers cannot express raises ``ExportError`` naming the option, never a silently
different model: ``norm_placement="pre"`` with attention layers, windowed attention in a hybrid,
layers of one kind that differ from each other, attention without QK-norm, NoPE in Olmo 3, an
all-GDN stack.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from archsearch.errors import ArchsearchError
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig, LayerSpec

if TYPE_CHECKING:  # transformers is heavy; imported only where a config object is built
    from transformers import PreTrainedConfig

    from archsearch.model.hybrid_lm import HybridLM

FORMATS = ("hf",)
_LAYER_NAME = re.compile(r"^layers\.(\d+)\.(.+)$")


class ExportError(ArchsearchError, ValueError):
    """The model uses an option the export target cannot represent; the message names it."""


# -- configuration ---------------------------------------------------------------------------


def _uniform(specs: list[LayerSpec], what: str, ignore_window: bool = False) -> LayerSpec:
    """The one spec shared by all ``specs``; transformers' configs have one spec per kind."""
    first = specs[0]
    for spec in specs[1:]:
        a, b = (
            (replace(first, window=None), replace(spec, window=None))
            if ignore_window
            else (first, spec)
        )
        if a != b:
            raise ExportError(
                f"cannot export: transformers' config has one setting for all {what} layers, "
                f"but this model's differ ({first} vs {spec})"
            )
    return first


def _check_attention(spec: AttentionSpec, target: str) -> None:
    if not spec.qk_norm:
        raise ExportError(
            f"cannot export qk_norm=False to {target}: its attention always applies QK-norm"
        )


def hf_config(
    config: HybridConfig,
    pad_token_id: int | None = None,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> PreTrainedConfig:
    """The transformers config (OlmoHybridConfig or Olmo3Config) equivalent to ``config``.

    Token ids default to None: transformers' defaults (dolma2 ids near 100k) do not fit a small
    proxy vocabulary, and an out-of-range ``pad_token_id`` breaks the embedding.
    """
    attention = [s for s in config.layers if isinstance(s, AttentionSpec)]
    gdn = [s for s in config.layers if isinstance(s, GDNSpec)]
    if not attention:
        raise ExportError(
            f"cannot export an all-GDN model (pattern {config.pattern}): transformers' "
            "OlmoHybridConfig requires at least one attention layer"
        )
    if config.norm_placement != "per_kind":
        raise ExportError(
            f"cannot export norm_placement={config.norm_placement!r}: transformers' Olmo "
            "attention blocks are post-norm (x += norm(Attn(x)); use norm_placement='per_kind')"
        )
    for name, value in (("pad", pad_token_id), ("bos", bos_token_id), ("eos", eos_token_id)):
        if value is not None and not 0 <= value < config.vocab_size:
            raise ExportError(
                f"{name}_token_id {value} is outside the vocabulary ({config.vocab_size})"
            )
    common: dict[str, Any] = {
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.mlp_hidden,
        "num_hidden_layers": config.n_layers,
        "hidden_act": "silu",
        "max_position_embeddings": config.max_seq_len,
        "initializer_range": config.init_std,
        "rms_norm_eps": config.norm_eps,
        "tie_word_embeddings": config.tie_embeddings,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "pad_token_id": pad_token_id,
        "bos_token_id": bos_token_id,
        "eos_token_id": eos_token_id,
    }
    if gdn:
        return _olmo_hybrid_config(config, attention, gdn, common)
    return _olmo3_config(config, attention, common)


def _attention_fields(spec: AttentionSpec, d_model: int) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
    }
    # transformers derives head_dim = hidden_size // heads unless told otherwise
    if spec.head_dim * spec.heads != d_model:
        fields["head_dim"] = spec.head_dim
    return fields


def _olmo_hybrid_config(
    config: HybridConfig, attention: list[AttentionSpec], gdn: list[GDNSpec], common: dict[str, Any]
) -> PreTrainedConfig:
    from transformers import OlmoHybridConfig

    windowed = [i for i, s in enumerate(config.layers) if isinstance(s, AttentionSpec) and s.window]
    if windowed:
        raise ExportError(
            f"cannot export sliding-window attention (layers {windowed}, pattern {config.pattern}) "
            "to OlmoHybrid: its attention layers are all full attention"
        )
    att = _uniform(list(attention), "attention")
    lin = _uniform(list(gdn), "GDN")
    assert isinstance(att, AttentionSpec) and isinstance(lin, GDNSpec)
    _check_attention(att, "OlmoHybrid")
    # NoPE is spelled rope_theta=None (transformers then builds no rotary embedding at all)
    rope = {"rope_type": "default", "rope_theta": att.rope_theta if att.rope else None}
    layer_types = [
        "full_attention" if isinstance(s, AttentionSpec) else "linear_attention"
        for s in config.layers
    ]
    return OlmoHybridConfig(
        **common,
        **_attention_fields(att, config.d_model),
        rope_parameters=rope,
        layer_types=layer_types,
        linear_num_key_heads=lin.heads,
        linear_num_value_heads=lin.v_heads,
        linear_key_head_dim=lin.head_dim_k,
        linear_value_head_dim=lin.head_dim_v,
        linear_conv_kernel_dim=lin.conv_size,
        linear_allow_neg_eigval=lin.allow_neg_eigval,
        architectures=["OlmoHybridForCausalLM"],
    )


def _olmo3_config(
    config: HybridConfig, attention: list[AttentionSpec], common: dict[str, Any]
) -> PreTrainedConfig:
    from transformers import Olmo3Config

    att = _uniform(list(attention), "attention", ignore_window=True)
    assert isinstance(att, AttentionSpec)
    _check_attention(att, "Olmo3")
    if not att.rope:
        raise ExportError("cannot export rope=False to Olmo3: its attention always applies RoPE")
    windows = sorted({s.window for s in attention if s.window is not None})
    if len(windows) > 1:
        raise ExportError(
            f"cannot export several sliding windows {windows} to Olmo3: it has one sliding_window"
        )
    layer_types = [
        "sliding_attention" if s.window is not None else "full_attention"
        for s in attention  # all layers are attention here
    ]
    rope = {"rope_type": "default", "rope_theta": att.rope_theta}
    return Olmo3Config(
        **common,
        **_attention_fields(att, config.d_model),
        # Olmo3Model builds the sliding mask even with no sliding layer, and fails on None;
        # with only full-attention layers the value is never used
        sliding_window=windows[0] if windows else config.max_seq_len,
        layer_types=layer_types,
        rope_parameters={kind: dict(rope) for kind in ("full_attention", "sliding_attention")},
        architectures=["Olmo3ForCausalLM"],
    )


# -- weights ---------------------------------------------------------------------------------


def _layer_tensors(
    spec: LayerSpec, rest: str, tensor: torch.Tensor
) -> Iterator[tuple[str, torch.Tensor]]:
    """transformers' (name within the layer, tensor) pairs for one of our layer parameters."""
    if rest == "mlp.gate_up_proj.weight":
        gate, up = tensor.chunk(2, dim=0)
        yield "mlp.gate_proj.weight", gate
        yield "mlp.up_proj.weight", up
    elif rest == "self_attn.qkv_proj.weight":
        assert isinstance(spec, AttentionSpec)
        sizes = (
            spec.heads * spec.head_dim,
            spec.kv_heads * spec.head_dim,
            spec.kv_heads * spec.head_dim,
        )
        for name, part in zip(
            ("q_proj", "k_proj", "v_proj"), tensor.split(sizes, dim=0), strict=True
        ):
            yield f"self_attn.{name}.weight", part
    elif rest == "linear_attn.in_proj.weight":
        assert isinstance(spec, GDNSpec)
        sizes = (
            spec.key_dim,
            spec.key_dim,
            spec.value_dim,
            spec.value_dim,
            spec.v_heads,
            spec.v_heads,
        )
        names = ("q_proj", "k_proj", "v_proj", "g_proj", "a_proj", "b_proj")
        for name, part in zip(names, tensor.split(sizes, dim=0), strict=True):
            yield f"linear_attn.{name}.weight", part
    elif rest == "linear_attn.conv_weight":
        yield "linear_attn.conv1d.weight", tensor.unsqueeze(1)  # nn.Conv1d layout [C, 1, W]
    else:
        yield rest, tensor


def to_hf_state_dict(model: HybridLM) -> dict[str, torch.Tensor]:
    """Our weights under transformers' names and shapes (contiguous CPU tensors, same dtype)."""
    config = model.config
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        match = _LAYER_NAME.match(name)
        if match:
            index, rest = int(match.group(1)), match.group(2)
            for hf_rest, part in _layer_tensors(config.layers[index], rest, tensor):
                out[f"model.layers.{index}.{hf_rest}"] = part.contiguous()
        elif name == "lm_head.weight":
            out[name] = tensor.contiguous()
        else:  # embed_tokens, norm
            out[f"model.{name}"] = tensor.contiguous()
    return out


# -- files -----------------------------------------------------------------------------------


def save_hf(
    model_or_checkpoint: HybridLM | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    pad_token_id: int | None = None,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
) -> Path:
    """Write a transformers checkpoint of a model (or of our checkpoint folder) into ``out_dir``.

    ``AutoModelForCausalLM.from_pretrained(out_dir)`` then gives the same logits. The config is
    checked (``ExportError``) before anything is written.
    """
    from safetensors.torch import save_file

    from archsearch.model.checkpoint import load_checkpoint

    if isinstance(model_or_checkpoint, (str, os.PathLike)):
        model = load_checkpoint(model_or_checkpoint)
    else:
        model = model_or_checkpoint
    config = hf_config(model.config, pad_token_id, bos_token_id, eos_token_id)
    state = to_hf_state_dict(model)
    dtypes = {t.dtype for t in state.values()}
    if len(dtypes) == 1:
        config.dtype = next(iter(dtypes))  # from_pretrained(dtype="auto") keeps the saved precision
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def export_checkpoint(
    checkpoint_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], format: str = "hf"
) -> Path:
    """The CLI's ``archsearch export --checkpoint PATH --format hf OUT``."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    from archsearch.model.checkpoint import load_checkpoint

    try:
        model = load_checkpoint(checkpoint_dir)
    except (OSError, ValueError) as error:  # missing folder, corrupt JSON, invalid config
        raise ExportError(f"cannot export {checkpoint_dir}: {error}") from error
    return save_hf(model, out_dir)
