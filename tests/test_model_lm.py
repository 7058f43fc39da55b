"""HybridLM as a whole: shapes, causality, losses, incremental decoding, meta build, checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from archsearch.model.checkpoint import load_checkpoint, load_config, save_checkpoint
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig
from archsearch.model.cost import inference_memory_bytes, param_count
from archsearch.model.hybrid_lm import HybridLM
from archsearch.model.targets import olmo_hybrid_7b_config

VOCAB = 61


def tiny(pattern: str = "GSGA", window: int = 5, **kwargs: object) -> HybridConfig:
    return HybridConfig.from_pattern(
        pattern,
        vocab_size=VOCAB,
        d_model=32,
        mlp_hidden=40,
        attention=AttentionSpec(heads=4, kv_heads=2, head_dim=8),
        gdn=GDNSpec(heads=2, v_heads=4, head_dim_k=8, head_dim_v=6),
        window=window,
        **kwargs,
    )


def model_for(config: HybridConfig, seed: int = 0) -> HybridLM:
    torch.manual_seed(seed)
    return HybridLM(config).double()


def test_forward_shape_and_causality() -> None:
    model = model_for(tiny())
    torch.manual_seed(1)
    x = torch.randint(0, VOCAB, (2, 23))
    logits = model(x)
    assert logits.shape == (2, 23, VOCAB)
    y = x.clone()
    y[:, 15:] = torch.randint(0, VOCAB, (2, 8))
    torch.testing.assert_close(model(y)[:, :15], logits[:, :15], rtol=0, atol=1e-12)
    assert (model(y)[:, 15:] - logits[:, 15:]).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("pattern", "kwargs"),
    [
        ("GSGA", {}),
        ("GSGA", {"norm_placement": "pre", "tie_embeddings": True}),
        ("SSAS", {}),
        ("GGG", {}),
    ],
)
def test_incremental_decoding_matches_full_forward(pattern: str, kwargs: dict) -> None:
    model = model_for(tiny(pattern, **kwargs))
    torch.manual_seed(2)
    x = torch.randint(0, VOCAB, (2, 41))
    full = model(x)
    for pieces in ([1] * 41, [7, 1, 1, 20, 3, 9], [41], [2, 39]):
        cache = model.new_cache()
        outs, start = [], 0
        for n in pieces:
            outs.append(model(x[:, start : start + n], cache))
            start += n
        torch.testing.assert_close(torch.cat(outs, dim=1), full, rtol=1e-10, atol=1e-10)
        assert cache.seen_tokens == 41


def test_incremental_decoding_float32() -> None:
    torch.manual_seed(0)
    model = HybridLM(tiny())
    x = torch.randint(0, VOCAB, (1, 70))
    full = model(x)
    cache = model.new_cache()
    steps = [model(x[:, :30], cache)] + [model(x[:, t : t + 1], cache) for t in range(30, 70)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-4)


def test_cache_memory_matches_cost_model_and_is_capped_by_window() -> None:
    config = tiny("GSGA", window=5)
    model = model_for(config).float()
    x = torch.randint(0, VOCAB, (1, 30))
    cache = model.new_cache()
    with torch.no_grad():
        for t in range(30):
            model(x[:, t : t + 1], cache)
            # stored: full layer L entries, window layer window-1, GDN fixed; cost counts the peak
            # during a step (the window including the new token), so one entry per window layer more
            att = config.layers[1]
            window_extra = 2 * att.kv_heads * att.head_dim * 4 if t + 1 >= 5 else 0
            assert cache.memory_bytes() + window_extra == inference_memory_bytes(
                config, t + 1, dtype_bytes=4
            )
    with pytest.raises(ValueError, match="holds 1 sequences"):
        model(torch.zeros(2, 1, dtype=torch.long), cache)


def test_per_token_loss_and_chunking() -> None:
    model = model_for(tiny())
    torch.manual_seed(3)
    x = torch.randint(0, VOCAB, (3, 17))
    t = torch.randint(0, VOCAB, (3, 17))
    t[0, :4] = -100
    reference = F.cross_entropy(
        model(x).flatten(0, 1), t.flatten(), reduction="none", ignore_index=-100
    )
    per_token = model.per_token_loss(x, t)
    assert per_token.shape == (3, 17) and per_token.dtype == torch.float64
    torch.testing.assert_close(per_token.flatten(), reference)
    torch.testing.assert_close(model.per_token_loss(x, t, chunk_tokens=5), per_token)
    mean = model.loss(x, t)
    torch.testing.assert_close(mean, reference.sum() / (t != -100).sum())
    torch.testing.assert_close(model.loss(x, t, "sum"), reference.sum())
    with pytest.raises(ValueError, match="reduction"):
        model.loss(x, t, "max")  # type: ignore[arg-type]


def test_chunked_loss_gradients_match_unchunked() -> None:
    """Recomputing the head per slice in backward must give the same gradients."""
    model = model_for(tiny("GA"))
    x = torch.randint(0, VOCAB, (2, 13))
    grads = []
    for chunk in (None, 4):
        model.zero_grad()
        model.loss(x[:, :-1], x[:, 1:], chunk_tokens=chunk).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)


def test_all_parameters_get_gradients() -> None:
    model = model_for(tiny("GSGA", norm_placement="per_kind"))
    x = torch.randint(0, VOCAB, (2, 9))
    model.loss(x, x).backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing


def test_meta_build_of_7b_allocates_nothing() -> None:
    model = HybridLM(olmo_hybrid_7b_config(), device="meta")
    assert all(p.is_meta for p in model.parameters())
    assert model.num_params() == 7_430_870_688
    assert model.num_params(include_embedding=False) == 7_045_519_008
    with torch.device("meta"):
        again = HybridLM(tiny())
    assert all(p.is_meta for p in again.parameters())


def test_materialise_after_meta_build() -> None:
    model = HybridLM(tiny(), device="meta")
    model.to_empty(device="cpu")  # uninitialised memory
    torch.manual_seed(0)
    model.reset_parameters()
    fresh = HybridLM(tiny())
    torch.manual_seed(0)
    fresh.reset_parameters()
    assert model.num_params() == fresh.num_params() == param_count(tiny())
    # reset_parameters must cover every parameter: one it missed would still hold garbage
    for (name, p), q in zip(model.named_parameters(), fresh.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=name)
    assert (model.layers[0].input_layernorm.weight == 1).all()
    assert abs(model.embed_tokens.weight.std().item() - 0.02) < 0.002


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    config = tiny("GSA", tie_embeddings=True)
    torch.manual_seed(0)
    model = HybridLM(config)
    save_checkpoint(model, tmp_path / "ckpt", metadata={"step": 7})
    header = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert header["metadata"] == {"step": 7} and header["format"] == "archsearch.hybrid_lm"
    assert load_config(tmp_path / "ckpt") == config
    loaded = load_checkpoint(tmp_path / "ckpt")
    x = torch.randint(0, VOCAB, (2, 11))
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert not list((tmp_path / "ckpt").glob("*.tmp"))


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not an archsearch checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not an archsearch checkpoint"):
        load_checkpoint(tmp_path)


def test_dynamic_mlp_width_hands_each_block_its_own_weights_as_views() -> None:
    """``training.dynamic_mlp_width`` reaches every block through ``compile_blocks``, and what the
    compiled regions then run is the block's own MLP: views of its weights (dynamo keeps a
    parameter's shape static), the same outputs, and gradients that reach the parameters."""
    from archsearch.model.blocks import own_mlp_weights
    from archsearch.model.mlp import swiglu_of_any_width
    from archsearch.space import SearchSpace

    space = SearchSpace.load("search_spaces/gpu_flashqla.yaml")
    assert space.resolve(space.grid()[0]).training.dynamic_mlp_width is True  # on by default
    model = model_for(tiny("GGAG"))
    assert model.compile_blocks() is model
    assert not any(block.dynamic_width for block in model.layers)
    model.compile_blocks(dynamic_width=True)
    assert all(block.dynamic_width for block in model.layers)
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    for block in model.layers:
        weights = own_mlp_weights(block)
        assert not any(isinstance(w, torch.nn.Parameter) for w in weights)
        # two matmuls instead of one: the same sums, maybe added in another order
        torch.testing.assert_close(swiglu_of_any_width(x, *weights), block.mlp(x),
                                   rtol=1e-12, atol=1e-14)
        swiglu_of_any_width(x, *weights).sum().backward()
        assert block.mlp.gate_up_proj.weight.grad is not None
        assert block.mlp.down_proj.weight.grad is not None


@pytest.mark.parametrize("dynamic_width", [False, True])
def test_one_traced_graph_per_region_serves_every_mlp_width(dynamic_width: bool) -> None:
    """What ``training.dynamic_mlp_width`` relies on, at dynamo's level (the CUDA path compiles
    these same functions): the attention block and GDN's finish, traced forward and backward,
    compile once for models of three MLP widths when handed the blocks' own weights as views,
    and once per width when the blocks use their own modules (what a matched sweep paid)."""
    from torch._dynamo.utils import counters

    from archsearch.model.blocks import (
        _attention_block,
        _gdn_finish,
        _gdn_project,
        mark_tokens_dynamic,
        mark_width_dynamic,
        own_mlp_weights,
    )

    torch._dynamo.reset()
    before = counters["stats"]["unique_graphs"]  # counted since the process began
    attention = torch.compile(_attention_block, backend="aot_eager", dynamic=None)
    finish = torch.compile(_gdn_finish, backend="aot_eager", dynamic=None)
    graphs = []
    for width in (176, 160, 144):
        config = HybridConfig.from_pattern(
            "GA", vocab_size=VOCAB, d_model=32, mlp_hidden=width,
            attention=AttentionSpec(heads=4, kv_heads=2, head_dim=8),
            gdn=GDNSpec(heads=2, v_heads=4, head_dim_k=8, head_dim_v=6))
        gdn_block, attention_block = HybridLM(config).layers
        x = torch.randn(2, 9, 32, requires_grad=True)
        mark_tokens_dynamic(x)
        weights = [own_mlp_weights(b) if dynamic_width else None
                   for b in (gdn_block, attention_block)]
        for w in weights:
            mark_width_dynamic(w)
        *_, v, _, _, gate = _gdn_project(gdn_block, x, True)  # eager: fla's kernel sits here
        y = finish(gdn_block, x, v, gate, weights[0])  # v stands in for the kernel's output
        y = attention(attention_block, y, 0, None, weights[1])
        y.sum().backward()
        assert attention_block.mlp.down_proj.weight.grad is not None
        graphs.append(counters["stats"]["unique_graphs"] - before)
    assert graphs == ([2, 2, 2] if dynamic_width else [2, 4, 6]), graphs
