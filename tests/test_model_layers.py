"""Each layer against a from-the-definition float64 reference written here, step by step.

The references re-derive everything from the parameters (splitting our fused matrices by hand) and
docs/BACKGROUND.md ("The blocks", "The gated delta rule"), so they check the layer's semantics, not
just self-consistency.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from archsearch.model.attention import Attention
from archsearch.model.blocks import AttentionBlock, GDNBlock
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig
from archsearch.model.gdn import GatedDeltaNet, KernelPath
from archsearch.model.mlp import RMSNorm, SwiGLU


def rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def reference_gdn(layer: GatedDeltaNet, x: torch.Tensor) -> torch.Tensor:
    """Olmo Hybrid's GDN, token by token, float64 (docs/BACKGROUND.md: blocks, delta rule)."""
    s = layer.spec
    kd, vd, h, hv, dk, dv = s.key_dim, s.value_dim, s.heads, s.v_heads, s.head_dim_k, s.head_dim_v
    w = layer.in_proj.weight
    wq, wk, wv, wg, wa, wb = w.split((kd, kd, vd, vd, hv, hv))
    batch, seq, _ = x.shape
    pre = torch.cat([x @ wq.T, x @ wk.T, x @ wv.T], dim=-1)  # conv input, q|k|v channels
    width = s.conv_size
    conv = torch.zeros_like(pre)
    for t in range(seq):
        for i in range(width):  # tap i reads token t - (width - 1) + i; weight[:, -1] is "now"
            src = t - (width - 1) + i
            if src >= 0:
                conv[:, t] += layer.conv_weight[:, i] * pre[:, src]
    conv = F.silu(conv)
    q, k, v = conv.split((kd, kd, vd), dim=-1)
    q, k, v = q.view(batch, seq, h, dk), k.view(batch, seq, h, dk), v.view(batch, seq, hv, dv)
    q = q / torch.sqrt(q.pow(2).sum(-1, keepdim=True) + 1e-6) * dk**-0.5
    k = k / torch.sqrt(k.pow(2).sum(-1, keepdim=True) + 1e-6)
    beta = torch.sigmoid(x @ wb.T) * (2.0 if s.allow_neg_eigval else 1.0)
    g = -torch.exp(layer.A_log) * F.softplus(x @ wa.T + layer.dt_bias)
    group = hv // h
    out = torch.zeros(batch, seq, hv, dv, dtype=x.dtype)
    for b in range(batch):
        for j in range(hv):
            state = torch.zeros(dk, dv, dtype=x.dtype)
            for t in range(seq):
                kt, qt = k[b, t, j // group], q[b, t, j // group]
                state = torch.exp(g[b, t, j]) * (
                    state - beta[b, t, j] * torch.outer(kt, kt @ state)
                )
                state = state + beta[b, t, j] * torch.outer(kt, v[b, t, j])
                out[b, t, j] = state.T @ qt
    gate = (x @ wg.T).view(batch, seq, hv, dv)
    normed = rms(out, layer.o_norm.weight, 1e-5) * F.silu(gate)
    return normed.reshape(batch, seq, vd) @ layer.o_proj.weight.T


def reference_attention(layer: Attention, x: torch.Tensor) -> torch.Tensor:
    s = layer.spec
    h, kvh, hd = s.heads, s.kv_heads, s.head_dim
    wq, wk, wv = layer.qkv_proj.weight.split((h * hd, kvh * hd, kvh * hd))
    q, k, v = x @ wq.T, x @ wk.T, x @ wv.T
    if s.qk_norm:
        q = rms(q, layer.q_norm.weight, layer.q_norm.eps)
        k = rms(k, layer.k_norm.weight, layer.k_norm.eps)
    batch, seq, _ = x.shape
    q, k, v = q.view(batch, seq, h, hd), k.view(batch, seq, kvh, hd), v.view(batch, seq, kvh, hd)
    if s.rope:
        pos = torch.arange(seq, dtype=torch.float64)
        inv = s.rope_theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = pos[:, None] * inv[None, :]
        cos, sin = ang.cos(), ang.sin()

        def rot(t: torch.Tensor) -> torch.Tensor:  # pairs (i, i + hd/2) rotate together
            a, b = t[..., : hd // 2], t[..., hd // 2 :]
            c, sn = cos[:, None, :], sin[:, None, :]
            return torch.cat([a * c - b * sn, b * c + a * sn], dim=-1)

        q, k = rot(q), rot(k)
    out = torch.zeros(batch, seq, h, hd, dtype=x.dtype)
    for head in range(h):
        kv = head // (h // kvh)
        scores = torch.einsum("btd,bsd->bts", q[:, :, head], k[:, :, kv]) / math.sqrt(hd)
        i = torch.arange(seq)[:, None]
        j = torch.arange(seq)[None, :]
        visible = j <= i
        if s.window is not None:
            visible &= j > i - s.window
        scores = scores.masked_fill(~visible, float("-inf"))
        out[:, :, head] = torch.softmax(scores, -1) @ v[:, :, kv]
    return out.reshape(batch, seq, h * hd) @ layer.o_proj.weight.T


@pytest.mark.parametrize(
    "spec",
    [
        GDNSpec(heads=2, v_heads=2, head_dim_k=8, head_dim_v=12),
        GDNSpec(
            heads=1, v_heads=3, head_dim_k=8, head_dim_v=4, allow_neg_eigval=False, conv_size=3
        ),
    ],
)
def test_gdn_layer_matches_recurrent_reference(spec: GDNSpec) -> None:
    torch.manual_seed(0)
    layer = GatedDeltaNet(24, spec, init_std=0.2).double()
    x = torch.randn(2, 19, 24, dtype=torch.float64)
    torch.testing.assert_close(layer(x), reference_gdn(layer, x), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("path", list(itertools.product([True, False], [False, True])),
                         ids=lambda p: f"gates_in_kernel={p[0]},packed={p[1]}")
def test_every_gdn_kernel_path_computes_the_reference(path: tuple[bool, bool]) -> None:
    """The CUDA split path (project -> recurrence -> finish), run here on the CPU kernels, on
    each path ``kernel_path`` can choose (gates in fla's kernel or computed before it; the batch
    packed or not) computes the float64 reference layer."""
    gates_in_kernel, packed = path
    torch.manual_seed(0)
    layer = GatedDeltaNet(24, GDNSpec(heads=2, v_heads=2, head_dim_k=8, head_dim_v=12),
                          init_std=0.2).double()
    x = torch.randn(2, 19, 24, dtype=torch.float64)
    q, k, v, a, b, gate = layer.project(x, gates_in_kernel)
    o = layer.recurrence(q, k, v, a, b, KernelPath(gates_in_kernel, packed, "torch"))
    torch.testing.assert_close(layer.finish(o, gate), reference_gdn(layer, x),
                               rtol=1e-9, atol=1e-10)


def test_kernel_path_takes_flashqla_only_where_fla_would() -> None:
    """128-wide heads that fla would hand to FlashQLA: gates computed before the kernel (FlashQLA
    computes neither) and the batch packed (FlashQLA splits long sequences over SMs); any other
    layer, or the CPU: gates in fla's kernel on [B, T]. The module switches override."""
    from archsearch.model import gdn

    wide = GDNSpec(heads=4, v_heads=4, head_dim_k=128, head_dim_v=128)
    olmo = GDNSpec(heads=4, v_heads=4, head_dim_k=96, head_dim_v=192)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    asked = []

    def takes(dk: int, dv: int, dtype: torch.dtype, device: torch.device) -> bool:
        asked.append((dk, dv, dtype, device.type))
        return dk == dv == 128 and dtype == torch.bfloat16

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gdn, "flash_qla_takes", takes)
        assert gdn.kernel_path(wide, cuda, torch.bfloat16) == (False, True, "flashqla")
        assert gdn.kernel_path(wide, cuda, torch.float32)[:2] == (True, False)
        assert gdn.kernel_path(olmo, cuda, torch.bfloat16)[:2] == (True, False)
        assert gdn.kernel_path(wide, cpu, torch.bfloat16) == (True, False, "torch")
        assert ("cpu" not in {a[3] for a in asked})  # CPU tensors never ask fla
        patch.setattr(gdn, "GATES_IN_KERNEL", True)  # FlashQLA cannot take in-kernel gates
        assert gdn.kernel_path(wide, cuda, torch.bfloat16)[:2] == (True, True)
        assert gdn.kernel_path(wide, cuda, torch.bfloat16).name != "flashqla"
        patch.setattr(gdn, "PACK_BATCH", False)
        patch.setattr(gdn, "GATES_IN_KERNEL", False)
        assert gdn.kernel_path(wide, cuda, torch.bfloat16) == (False, False, "flashqla")
    config = HybridConfig(vocab_size=32, d_model=24, mlp_hidden=32,
                          layers=(olmo, AttentionSpec(heads=2, kv_heads=2, head_dim=12)))
    assert gdn.gdn_kernel(config, cpu, torch.float32) == "torch"
    attention_only = config.replace(layers=config.layers[1:])
    assert gdn.gdn_kernel(attention_only, cpu, torch.float32) == ""


@pytest.mark.parametrize(
    "spec",
    [
        AttentionSpec(heads=4, kv_heads=4, head_dim=8),
        AttentionSpec(heads=4, kv_heads=2, head_dim=6, window=5, rope_theta=100.0),
        AttentionSpec(heads=2, kv_heads=1, head_dim=8, rope=False, qk_norm=False),
    ],
)
def test_attention_layer_matches_softmax_reference(spec: AttentionSpec) -> None:
    torch.manual_seed(0)
    layer = Attention(16, spec, norm_eps=1e-6, init_std=0.3).double()
    x = torch.randn(2, 13, 16, dtype=torch.float64)
    torch.testing.assert_close(layer(x), reference_attention(layer, x), rtol=1e-9, atol=1e-10)


def test_gdn_init_ranges() -> None:
    torch.manual_seed(0)
    layer = GatedDeltaNet(16, GDNSpec(heads=64, v_heads=512, head_dim_k=4, head_dim_v=4), 0.02)
    a = layer.A_log.exp()
    assert 0 < a.min() and a.max() <= 16
    dt = F.softplus(layer.dt_bias)
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    # log-uniform: the median sits near the geometric mean of the range, 1e-2
    assert 5e-3 < dt.median() < 2e-2
    assert layer.conv_weight.abs().max() <= 0.5


def test_blocks_norm_placement() -> None:
    """per_kind: attention x += norm(Attn(x)); x += norm(MLP(x)). pre: x += Attn(norm(x)) ..."""
    torch.manual_seed(0)
    att = AttentionSpec(heads=2, kv_heads=2, head_dim=8)
    gdn = GDNSpec(heads=2, v_heads=2, head_dim_k=8, head_dim_v=8)
    x = torch.randn(1, 7, 16, dtype=torch.float64)
    for placement in ("per_kind", "pre"):
        config = HybridConfig(
            vocab_size=8, d_model=16, mlp_hidden=24, layers=(att, gdn), norm_placement=placement
        )
        block = AttentionBlock(config, att).double()
        with torch.no_grad():
            for p in block.parameters():
                if p.dim() == 1:  # make norm weights non-trivial so placement is observable
                    p.uniform_(0.5, 1.5)
        if placement == "per_kind":
            h = x + block.post_attention_layernorm(block.self_attn(x))
            expected = h + block.post_feedforward_layernorm(block.mlp(h))
        else:
            h = x + block.self_attn(block.input_layernorm(x))
            expected = h + block.mlp(block.post_attention_layernorm(h))
        torch.testing.assert_close(block(x), expected)
        gblock = GDNBlock(config, gdn).double()
        h = x + gblock.linear_attn(gblock.input_layernorm(x))
        torch.testing.assert_close(gblock(x), h + gblock.mlp(gblock.post_attention_layernorm(h)))


def test_rmsnorm_and_swiglu() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    norm = RMSNorm(8, 1e-6).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    torch.testing.assert_close(norm(x), rms(x, norm.weight, 1e-6))
    # bf16 input: normalised in fp32, returned in bf16
    assert norm.float()(x.bfloat16()).dtype == torch.bfloat16
    mlp = SwiGLU(8, 12, 0.2).double()
    gate, up = mlp.gate_up_proj.weight.split(12)
    torch.testing.assert_close(mlp(x), (F.silu(x @ gate.T) * (x @ up.T)) @ mlp.down_proj.weight.T)


@pytest.mark.parametrize("gates_in_kernel", [True, False])
def test_split_in_proj_gives_the_same_projections(gates_in_kernel: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """gdn.SPLIT_IN_PROJ (two matmuls on row slices of in_proj's weight, for the GPU's backward)
    computes project's outputs and every gradient as the one matmul does (float64)."""
    from archsearch.model import gdn

    torch.manual_seed(0)
    layer = GatedDeltaNet(16, GDNSpec(heads=2, v_heads=2, head_dim_k=8, head_dim_v=12), 0.02)
    layer = layer.double()
    x = torch.randn(2, 9, 16, dtype=torch.float64, requires_grad=True)
    results = []
    for split in (False, True):
        monkeypatch.setattr(gdn, "SPLIT_IN_PROJ", split)
        outs = layer.project(x, gates_in_kernel)
        gen = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
        grads = torch.autograd.grad(loss, [x, *layer.parameters()], allow_unused=True)
        results.append([*outs, *(g for g in grads if g is not None)])
    for got, ref in zip(*results, strict=True):
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
