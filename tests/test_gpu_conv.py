"""Our Triton causal conv (`archsearch_kernels.triton_conv`) against the float64 definition, and
a GDN layer using it against the same layer using the dispatched (fla) conv.

Marked ``gpu``, so the default suite deselects them (CI has no triton). On the GPU machine:
``python -m pytest -m gpu -s tests/test_gpu_conv.py``. Anywhere with triton installed, Triton's
interpreter runs the same kernels on CPU tensors (slowly):
``TRITON_INTERPRET=1 python -m pytest -m gpu -s tests/test_gpu_conv.py``; the GDN-layer test then
compares against our torch conv, which is what the dispatched conv is on CPU.

Errors are max|out - ref| / max|ref| against float64 references computed from the very inputs
the kernel saw (x, weight and dy rounded to the test's dtype first), so they measure the kernel,
not the inputs' rounding. Bounds: fp32 1e-5 (fp32 sums of W products, and of B*T products for
the weight gradient); bf16 2^-8 = 3.9e-3 on CUDA (outputs are fp32 sums rounded once to bf16, to
nearest: at most half an ulp, 2^-8 of a value) and 2^-7 under the interpreter, whose fp32 -> bf16
cast truncates (a whole ulp: 7.7e-3 seen on a plain cast of randn).
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

import pytest
import torch
from archsearch_kernels import reference_causal_conv1d

from archsearch.model import gdn
from archsearch.model.config import GDNSpec
from archsearch.model.gdn import GatedDeltaNet

if TYPE_CHECKING:  # the module imports triton, which only the gpu tests need
    from archsearch_kernels.triton_conv import ConvBlocks

gpu = pytest.mark.gpu


def tolerance(dtype: torch.dtype, device: torch.device) -> float:
    """See the module docstring."""
    if dtype == torch.float32:
        return 1e-5
    return 2.0**-8 if device.type == "cuda" else 2.0**-7


@pytest.fixture
def device() -> torch.device:
    """CUDA when present, else the CPU under Triton's interpreter (TRITON_INTERPRET=1)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if os.environ.get("TRITON_INTERPRET") == "1":
        return torch.device("cpu")
    pytest.skip("needs a CUDA device, or TRITON_INTERPRET=1 with triton installed")


def max_rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    assert torch.isfinite(out).all()
    out, ref = out.double(), ref.double()
    return ((out - ref).abs().max() / ref.abs().max().clamp(min=1e-30)).item()


def small_blocks(dw_sum: str = "tile") -> ConvBlocks:
    """Tiles far smaller than the shapes below: several t, d and time-chunk blocks, partial ones."""
    from archsearch_kernels.triton_conv import ConvBlocks

    return ConvBlocks(fwd_t=16, fwd_d=32, ds_t=8, ds_d=32, time_chunk=32, dx_t=16, dx_d=32,
                      dw_sum=dw_sum)


def conv_errors(device: torch.device, dtype: torch.dtype, B: int, T: int, D: int, W: int,
                activation: str | None, strided: bool, blocks: ConvBlocks,
                weight_dtype: torch.dtype | None = None, pad: int = 7,
                split: tuple[int, ...] | None = None) -> dict[str, float]:
    """y, dx, dweight of ours vs the float64 definition on the same (rounded) inputs.

    ``weight_dtype`` (default: ``dtype``) differs in training under autocast: bf16 activations,
    an fp32 conv weight. The wide tensor's rows are ``D + pad`` long: odd by default (unaligned
    rows), a multiple of 8 to take the kernels' 8-aligned path as GDN's rows do. With ``split``,
    y comes back as contiguous pieces, each given its own slice of dy.
    """
    from archsearch_kernels.triton_conv import causal_conv1d_triton

    gen = torch.Generator().manual_seed(B * 1000 + T + W)
    # strided: x is a column slice of a wider tensor, as GDN's q|k|v is of in_proj's output
    wide = torch.randn(B, T, D + pad, generator=gen).to(dtype)
    weight = (torch.randn(D, W, generator=gen) * W**-0.5).to(weight_dtype or dtype)
    dy = torch.randn(B, T, D, generator=gen).to(dtype)

    ref_x = wide[..., 3:3 + D].double().requires_grad_()
    ref_w = weight.double().requires_grad_()
    ref_y, _ = reference_causal_conv1d(ref_x, ref_w, activation=activation)
    ref_y.backward(dy.double())

    wide_dev = wide.to(device).requires_grad_()
    x = wide_dev[..., 3:3 + D]
    if not strided:
        x = x.detach().contiguous().requires_grad_()
    assert (x.stride(1) == D + pad) == strided
    w_dev = weight.to(device).requires_grad_()
    if split is None:
        y = causal_conv1d_triton(x, w_dev, activation=activation, blocks=blocks)
        y.backward(dy.to(device))
    else:
        pieces = causal_conv1d_triton(x, w_dev, activation=activation, blocks=blocks, split=split)
        assert [p.shape[-1] for p in pieces] == list(split)
        assert all(p.is_contiguous() and p.dtype == dtype for p in pieces)
        torch.autograd.backward(pieces, list(dy.to(device).split(split, dim=-1)))
        y = torch.cat([p.detach() for p in pieces], dim=-1)
    assert y.dtype == dtype and y.is_contiguous() and w_dev.grad.dtype == weight.dtype
    if strided:  # the gradient reaches only the viewed columns of the wide tensor
        dx = wide_dev.grad[..., 3:3 + D]
        assert not wide_dev.grad[..., :3].any() and not wide_dev.grad[..., 3 + D:].any()
    else:
        dx = x.grad
    return {
        "y": max_rel_err(y.cpu(), ref_y),
        "dx": max_rel_err(dx.cpu(), ref_x.grad),
        "dweight": max_rel_err(w_dev.grad.cpu(), ref_w.grad),
    }


def assert_under(label: str, errors: dict[str, float], tol: float) -> None:
    print(f"\n{label}: " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items()))
    bad = {k: v for k, v in errors.items() if not v < tol}
    assert not bad, f"{label}: errors over {tol:g}: {bad}"


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("W", [2, 3, 4])
@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize(("B", "strided"), [(1, False), (3, True)], ids=["B1", "B3-strided"])
@pytest.mark.parametrize("dw_sum", ["tile", "chunk", "unrolled"])
def test_triton_conv_matches_float64(device: torch.device, dtype: torch.dtype, W: int,
                                     activation: str | None, B: int, strided: bool,
                                     dw_sum: str) -> None:
    """T = 75 is a multiple of no tile (16, 8) nor time chunk (32); D = 40 of no d-tile (32)."""
    errors = conv_errors(device, dtype, B, 75, 40, W, activation, strided, small_blocks(dw_sum))
    assert_under(f"triton conv {dtype} W={W} {activation} B={B} dw {dw_sum}", errors,
                 tolerance(dtype, device))


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("dw_sum", ["tile", "chunk", "unrolled"])
def test_triton_conv_with_ds_in_the_inputs_dtype(device: torch.device, dtype: torch.dtype,
                                                 dw_sum: str) -> None:
    """ConvBlocks.ds_dtype = "input": the backward's ds scratch in x's dtype instead of fp32
    (in bf16 one more rounding in each of dx's terms), within the same bound against float64."""
    blocks = dataclasses.replace(small_blocks(dw_sum), ds_dtype="input")
    errors = conv_errors(device, dtype, 3, 75, 40, 4, "silu", True, blocks)
    assert_under(f"triton conv {dtype}, ds in x's dtype, dw {dw_sum}", errors,
                 tolerance(dtype, device))


@gpu
def test_triton_conv_default_blocks(device: torch.device) -> None:
    """The shipped tile sizes: two time chunks (T = 300 > 256), a partial d-block (D = 200);
    bf16 x with an fp32 weight, as GDN's conv runs under autocast; rows 216 = 8 x 27 wide."""
    from archsearch_kernels.triton_conv import DEFAULT_BLOCKS

    errors = conv_errors(device, torch.bfloat16, 2, 300, 200, 4, "silu", True, DEFAULT_BLOCKS,
                         weight_dtype=torch.float32, pad=16)
    assert_under("triton conv, default blocks, bf16 x, fp32 weight", errors, tolerance(torch.bfloat16, device))


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_triton_conv_wider_than_the_unrolled_step(device: torch.device, dtype: torch.dtype) -> None:
    """W = 6 with dw_sum "unrolled" (which names four shifts) sums the weight gradient "chunk"'s
    way instead: same answers."""
    errors = conv_errors(device, dtype, 2, 75, 40, 6, "silu", True, small_blocks("unrolled"))
    assert_under(f"triton conv {dtype} W=6, unrolled asked", errors, tolerance(dtype, device))


@gpu
@pytest.mark.parametrize("split", [(32, 32, 40), (64, 40), (104,), (20, 20, 64), (8, 8, 8, 80)],
                         ids=["qkv", "two", "one", "off-edge", "four"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_triton_conv_pieces(device: torch.device, split: tuple[int, ...],
                            dtype: torch.dtype) -> None:
    """``split``: y as contiguous pieces (GDN's q, k, v), each with its own gradient. Pieces on
    the 32-wide blocks' edges are written and read in place (the last one ends in a partial
    block: D = 104); the others are cut from y by torch; all match the float64 definition."""
    from archsearch_kernels.triton_conv import _pieces_fit

    blocks = small_blocks("chunk")
    assert _pieces_fit(split, blocks) == (split in [(32, 32, 40), (64, 40), (104,)])
    errors = conv_errors(device, dtype, 3, 75, 104, 4, "silu", True, blocks, split=split)
    assert_under(f"triton conv {dtype}, pieces {split}", errors, tolerance(dtype, device))


@gpu
def test_triton_conv_piece_without_a_gradient(device: torch.device) -> None:
    """Only q of (q, k, v) used: k's and v's gradients arrive as zeros, dx is q's alone."""
    from archsearch_kernels.triton_conv import causal_conv1d_triton

    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 40, 96, generator=gen).to(device).requires_grad_()
    w = (0.5 * torch.randn(96, 4, generator=gen)).to(device).requires_grad_()
    q, _, _ = causal_conv1d_triton(x, w, blocks=small_blocks("chunk"), split=(32, 32, 32))
    q.sum().backward()
    ref_x = x.detach().double().cpu().requires_grad_()
    ref_w = w.detach().double().cpu().requires_grad_()
    ref_y, _ = reference_causal_conv1d(ref_x, ref_w, activation="silu")
    ref_y[..., :32].sum().backward()
    assert max_rel_err(x.grad.cpu(), ref_x.grad) < 1e-5
    assert max_rel_err(w.grad.cpu(), ref_w.grad) < 1e-5


@gpu
@pytest.mark.parametrize("T", [1, 3, 40])
def test_triton_conv_short_sequences(device: torch.device, T: int) -> None:
    """Sequences shorter than the kernel width, a tile, or the time chunk (which then shrinks)."""
    from archsearch_kernels.triton_conv import DEFAULT_BLOCKS

    errors = conv_errors(device, torch.float32, 2, T, 24, 4, "silu", True, DEFAULT_BLOCKS)
    assert_under(f"triton conv, T={T}, fp32", errors, tolerance(torch.float32, device))


@gpu
def test_triton_conv_rejects_bad_input(device: torch.device) -> None:
    from archsearch_kernels.triton_conv import ConvBlocks, causal_conv1d_triton

    x, w = torch.zeros(1, 4, 3, device=device), torch.zeros(3, 4, device=device)
    with pytest.raises(ValueError, match="activation must be one of"):
        causal_conv1d_triton(x, w, activation="gelu")
    with pytest.raises(ValueError, match=r"weight must be \[D, W\] with D=3"):
        causal_conv1d_triton(x, torch.zeros(4, 4, device=device))
    with pytest.raises(ValueError, match="time_chunk .* multiple of ds_t"):
        ConvBlocks(ds_t=64, time_chunk=32)
    with pytest.raises(ValueError, match="fwd_d must be a positive power of two"):
        ConvBlocks(fwd_d=96)
    with pytest.raises(ValueError, match="ds_dtype must be 'fp32' or 'input'; got 'bf16'"):
        ConvBlocks(ds_dtype="bf16")
    with pytest.raises(ValueError, match=r"split must be positive widths summing to D=3"):
        causal_conv1d_triton(x, w[:, :4], split=(1, 1))


@gpu
def test_gdn_layer_with_triton_conv_matches_dispatched_conv(
    device: torch.device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bf16 GatedDeltaNet's output and every gradient with COMPILED_CONV "triton" vs "fla".

    On CUDA the layer's own forward (project -> fla rule -> finish) runs, with the head shapes
    tests/test_gpu.py uses (fla autotunes once per head shape). On the CPU interpreter the same
    three steps run explicitly with a small layer; "fla" then means the dispatched torch conv.
    Only the conv differs, by bf16 roundings of its output that every later bf16 op re-rounds:
    7e-3 seen under the interpreter (1e-7 - 2e-5 with the layer in fp32, so the wiring is exact);
    the bound is tests/test_gpu.py's for bf16 layers. A wrong conv (shift, activation, gradient)
    is off by O(1).
    """
    on_cuda = device.type == "cuda"
    # q, k, v on the default blocks' edges (128 wide): the conv writes them apart in place
    heads, dk, dv, d_model, B, T = (8, 96, 192, 256, 4, 200) if on_cuda else (2, 64, 128, 48, 2, 37)
    torch.manual_seed(0)
    layer = GatedDeltaNet(d_model, GDNSpec(heads=heads, v_heads=heads, head_dim_k=dk,
                                           head_dim_v=dv), init_std=0.02)
    layer = layer.to(device=device, dtype=torch.bfloat16)
    x = torch.randn(B, T, d_model, device=device, dtype=torch.bfloat16)
    dout = torch.randn(B, T, d_model, device=device, dtype=torch.bfloat16)

    def run(conv: str) -> list[torch.Tensor]:
        monkeypatch.setattr(gdn, "COMPILED_CONV", conv)
        layer.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_()
        if on_cuda:
            out = layer(xi)
        else:
            q, k, v, a, b, gate = layer.project(xi)
            out = layer.finish(layer.recurrence(q, k, v, a, b), gate)
        out.backward(dout)
        return [out.detach(), xi.grad] + [p.grad for p in layer.parameters()]

    ours, ref = run("triton"), run("fla")
    names = ["output", "dx"] + [name for name, _ in layer.named_parameters()]
    errors = {n: ((o.double() - r.double()).norm() / r.double().norm()).item()
              for n, o, r in zip(names, ours, ref)}
    assert_under("GDN layer, triton conv vs dispatched, bf16 (relative norm)", errors, 2.5e-2)

