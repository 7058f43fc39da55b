"""Exported checkpoints load in transformers and reproduce our logits (fp32, CPU, <= 1e-4)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
import transformers.models.olmo_hybrid.modeling_olmo_hybrid as olmo_hybrid_modeling
from transformers import AutoModelForCausalLM, Olmo3ForCausalLM, OlmoHybridForCausalLM

from archsearch.export.hf import ExportError, export_checkpoint, hf_config, save_hf
from archsearch.model.checkpoint import save_checkpoint
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig
from archsearch.model.hybrid_lm import HybridLM

TOLERANCE = 1e-4
VOCAB = 211

# transformers binds these four to fla / causal-conv1d at import time whenever those import
# (fla imports on CPU when triton is installed, then fails at run time); each is a wrapper whose
# __wrapped__ chain ends at the pure-torch reference, which is what a CPU test must run.
_KERNEL_WRAPPED = (
    "torch_chunk_gated_delta_rule",
    "torch_recurrent_gated_delta_rule",
    "causal_conv1d_fn",
    "causal_conv1d_update",
)


@pytest.fixture(autouse=True)
def olmo_hybrid_torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _KERNEL_WRAPPED:
        monkeypatch.setattr(
            olmo_hybrid_modeling, name, inspect.unwrap(getattr(olmo_hybrid_modeling, name))
        )


def build(
    pattern: str,
    *,
    attention: AttentionSpec | None = None,
    gdn: GDNSpec | None = None,
    window: int | None = None,
    **kwargs: object,
) -> HybridLM:
    config = HybridConfig.from_pattern(
        pattern,
        vocab_size=VOCAB,
        d_model=64,
        mlp_hidden=96,
        attention=attention or AttentionSpec(heads=4, kv_heads=4, head_dim=16),
        gdn=gdn or GDNSpec(heads=4, v_heads=4, head_dim_k=16, head_dim_v=32),
        window=window,
        **kwargs,
    )
    torch.manual_seed(0)
    model = HybridLM(config)
    with torch.no_grad():  # non-trivial norm weights, so a misplaced norm cannot hide
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "layernorm.weight")):
                p.uniform_(0.5, 1.5)
    return model


def assert_same_logits(model: HybridLM, out: Path, expected_class: type, seq: int = 150) -> None:
    hf = AutoModelForCausalLM.from_pretrained(out)
    assert type(hf) is expected_class
    assert hf.dtype == torch.float32
    torch.manual_seed(1)
    tokens = torch.randint(0, VOCAB, (2, seq))
    with torch.no_grad():
        ours = model(tokens)
        theirs = hf(tokens).logits
    diff = (ours - theirs).abs().max().item()
    assert diff <= TOLERANCE, f"max abs logit difference {diff:.2e}"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # (GGGA)*2, MHA, one value head per key head
        {  # grouped-query attention, grouped value heads, no negative eigenvalues, conv 3
            "attention": AttentionSpec(heads=4, kv_heads=2, head_dim=24, rope_theta=10000.0),
            "gdn": GDNSpec(
                heads=2,
                v_heads=4,
                head_dim_k=16,
                head_dim_v=24,
                allow_neg_eigval=False,
                conv_size=3,
            ),
        },
        {  # NoPE (the released Olmo Hybrid) and tied embeddings
            "attention": AttentionSpec(heads=4, kv_heads=4, head_dim=16, rope=False),
            "tie_embeddings": True,
            "norm_eps": 1e-5,
        },
    ],
)
def test_hybrid_matches_olmo_hybrid(tmp_path: Path, kwargs: dict) -> None:
    model = build("GGGAGGGA", **kwargs)
    save_hf(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "olmo_hybrid"
    assert config["layer_types"] == ["linear_attention"] * 3 + ["full_attention"] + [
        "linear_attention"
    ] * 3 + ["full_attention"]
    assert_same_logits(model, tmp_path, OlmoHybridForCausalLM)


@pytest.mark.parametrize(("pattern", "window"), [("SSSASSSA", 37), ("AAA", None)])
def test_all_attention_matches_olmo3(tmp_path: Path, pattern: str, window: int | None) -> None:
    model = build(pattern, attention=AttentionSpec(heads=4, kv_heads=2, head_dim=16), window=window)
    save_hf(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "olmo3"
    assert config["sliding_window"] == (window or model.config.max_seq_len)
    assert config["layer_types"].count("sliding_attention") == pattern.count("S")
    assert_same_logits(model, tmp_path, Olmo3ForCausalLM)


def test_export_checkpoint_from_our_checkpoint(tmp_path: Path) -> None:
    model = build("GGA")
    save_checkpoint(model, tmp_path / "ckpt")
    export_checkpoint(tmp_path / "ckpt", tmp_path / "hf", format="hf")
    assert_same_logits(model, tmp_path / "hf", OlmoHybridForCausalLM, seq=70)
    with pytest.raises(ExportError, match="unknown export format"):
        export_checkpoint(tmp_path / "ckpt", tmp_path / "x", format="gguf")
    with pytest.raises(ExportError, match="not an archsearch checkpoint"):
        export_checkpoint(tmp_path / "missing", tmp_path / "x")


def small_config(pattern: str, **kwargs: object) -> HybridConfig:
    defaults: dict = {
        "vocab_size": VOCAB,
        "d_model": 32,
        "mlp_hidden": 48,
        "attention": AttentionSpec(heads=2, kv_heads=2, head_dim=16),
        "gdn": GDNSpec(heads=2, v_heads=2, head_dim_k=8, head_dim_v=8),
        "window": 8,
    }
    defaults.update(kwargs)
    return HybridConfig.from_pattern(pattern, **defaults)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (small_config("GGA", norm_placement="pre"), "norm_placement='pre'"),
        (small_config("GGS"), "sliding-window attention .* to OlmoHybrid"),
        (small_config("GGG"), "all-GDN"),
        (
            small_config(
                "AA", attention=AttentionSpec(heads=2, kv_heads=2, head_dim=16, rope=False)
            ),
            "rope=False",
        ),
        (
            small_config(
                "GA", attention=AttentionSpec(heads=2, kv_heads=2, head_dim=16, qk_norm=False)
            ),
            "qk_norm",
        ),
        (
            small_config("GA").replace(
                layers=(
                    GDNSpec(heads=2, v_heads=2, head_dim_k=8, head_dim_v=8),
                    AttentionSpec(heads=2, kv_heads=2, head_dim=16),
                    GDNSpec(heads=1, v_heads=1, head_dim_k=8, head_dim_v=8),
                )
            ),
            "all GDN layers",
        ),
        (
            small_config("A").replace(
                layers=(
                    AttentionSpec(heads=2, kv_heads=2, head_dim=16, window=4),
                    AttentionSpec(heads=2, kv_heads=2, head_dim=16, window=8),
                )
            ),
            "several sliding windows",
        ),
    ],
)
def test_unexportable_options_raise_clear_errors(config: HybridConfig, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        hf_config(config)


def test_token_ids_must_fit_the_vocabulary() -> None:
    with pytest.raises(ExportError, match="pad_token_id"):
        hf_config(small_config("GA"), pad_token_id=VOCAB)
    assert hf_config(small_config("GA"), eos_token_id=3).eos_token_id == 3
