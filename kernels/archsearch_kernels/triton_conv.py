"""Our Triton causal depthwise conv (GDN's short conv) for training: forward and backward.

y[b, t, d] = act( sum_w weight[d, w] * x[b, t - (W-1) + w, d] ), zeros before t = 0, as in
`short_conv.causal_conv1d` (weight[:, -1] multiplies the current token) but with no carried
state: this is the full-sequence training path; decoding keeps `short_conv` / fla.

Why our own: fla's kernel pair costs about twice the memory bound at GDN's shapes (its backward
alone ~5x; docs/GPU.md), and GDN wants q, k, v as separate contiguous tensors, which after fla's
conv cost a copy forward and a concatenation backward. The kernels here are tile loops:

- forward: one program per (t-block, d-block, batch row) reads the W shifted x tiles (the
  overlap comes from L1/L2, so HBM sees x about once), accumulates in fp32, applies SiLU and
  writes y once, either as one [B, T, D] tensor or (``split``) as up to three contiguous pieces
  [B, T, width], each block storing into the piece that holds its channels. Only x and weight
  are saved for backward (no y, no pre-activation: recomputing the pre-activation costs W FMAs
  per element, far cheaper than storing and reading it).
- backward, two kernels. With ds = dy * act'(pre):
      dw[d, w] = sum_{b,t} ds[b, t, d] * x[b, t - (W-1) + w, d]
      dx[t] = sum_w weight[d, w] * ds[t + (W-1) - w]   (ds = 0 past T)
  dx needs ds at W consecutive shifts of its rows, and Triton cannot shift a register tile along
  time, so ds goes through memory: a scratch [B, T, D] (fp32, or x's dtype), written once and
  read back by shifted loads that mostly hit cache.
  1. ds step, one program per (time chunk, d-block, batch row): per BLOCK_T-row tile it loads
     the W shifted x tiles once, forms the pre-activation, ds = dy * act'(pre), stores ds, and
     adds sum_t ds * x_w from the same x tiles to its weight-gradient sums. It keeps those sums
     in registers over its TIME_CHUNK rows and writes one fp32 partial [W, BLOCK_D] per (chunk,
     batch row): torch sums the partials in a fixed order (deterministic, no atomics), and
     per-chunk rather than per-tile partials keep that extra traffic small (at B=32, T=1024,
     D=1536 with chunks of 256: 0.8 MB). Summing over a tile's rows is a reduction across
     warps, W of them per tile; on the H200 this step ran at about 7x its memory bound, so
     `ConvBlocks.dw_sum = "chunk"` instead accumulates the products elementwise in registers and
     reduces once per chunk: at the 12 x 512 shape on an H200 the backward fell from 667 to
     327 us (`benchmarks/gpu_conv.py --sweep`, docs/GPU.md). "chunk" keeps a [W, t, d] tile
     and adds each shift's products into its slice with a masked select, and the compiler moves
     tiles between layouts through shared memory (24 barriers a loop trip, ptxas on sm_90a);
     `dw_sum = "unrolled"` (W <= 4, the default) names the four shifted x tiles and four
     [t, d] sums outright: each x tile loaded once for both the pre-activation and dw, a
     third fewer instructions, no barriers; fwd+bwd 415 -> 302 us at 12 x 512 with the ds
     scratch in bf16 (docs/GPU.md). dy is read from its pieces where they are.
  2. dx step, one program per (t-block, d-block, batch row): W shifted loads of ds, fp32 sums,
     dx cast to x's dtype and stored.
  HBM traffic of the backward at that shape: x, dy and dx 100 MB each (bf16), ds (bf16 by
  default) 100 MB written and read back, ~500 MB (~105 us at 4.8 TB/s). The first version kept
  ds in registers by recomputing the pre-activation at each of the W shifts: W^2 shifted x
  loads and ~W^3 FMAs per element against 2W loads and ~3W FMAs here, in 8-row tiles to stay
  clear of spills.
  The scratch is a plain `torch.empty` inside the autograd function: no host syncs, so the
  backward can be captured in a CUDA graph.

x may be any strided [B, T, D] view with unit last stride (GDN's q|k|v is a split of in_proj's
output, rows wider than D): reading it in place saves a copy. This module imports triton; the
package `__init__` does not import it, and `dispatch.triton_short_conv` loads it on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

__all__ = ["DEFAULT_BLOCKS", "ConvBlocks", "causal_conv1d_triton"]

_ACTIVATIONS = (None, "silu", "swish")
_DW_SUMS = ("tile", "chunk", "unrolled")  # ConvBlocks.dw_sum, in the kernel's DW_SUM numbering


@dataclass(frozen=True)
class ConvBlocks:
    """Tile sizes and warps of the three kernels (powers of two; time_chunk a multiple of ds_t).

    fwd_*: the forward; ds_*: backward step 1 (ds and the weight-gradient partials, one partial
    per time_chunk rows); dx_*: backward step 2 (dx from ds). Fixed rather than autotuned: the
    partials' count depends on the time chunk, so it must be known before launch, and fixed
    choices keep the kernels usable under CUDA-graph capture and Triton's CPU interpreter without
    a tuning pass. `benchmarks/gpu_conv.py --sweep` times alternatives on the GPU.
    """

    fwd_t: int = 32
    fwd_d: int = 128
    fwd_warps: int = 4
    ds_t: int = 16
    ds_d: int = 128
    ds_warps: int = 4
    time_chunk: int = 256
    dx_t: int = 32
    dx_d: int = 128
    dx_warps: int = 4
    # ds step: sum each tile's dw products over its rows right away ("tile": W cross-warp
    # reductions per tile), or accumulate them elementwise in a [W, ds_t, ds_d] fp32 register
    # tile and reduce once per time chunk ("chunk": more registers, no reduction in the loop),
    # or in W named [ds_t, ds_d] tiles ("unrolled", W <= 4; wider kernels sum "chunk"'s way)
    dw_sum: str = "tile"
    # ds scratch between the two backward steps: "fp32", or "input" (x's dtype: bf16 in
    # training, half the scratch's 2 x 200 MB of traffic at the 12 x 512 shape, one more bf16
    # rounding in each of dx's W terms; the weight gradient uses the unrounded ds either way)
    ds_dtype: str = "fp32"

    def __post_init__(self) -> None:
        if self.dw_sum not in _DW_SUMS:
            raise ValueError(
                f"ConvBlocks.dw_sum must be one of {', '.join(_DW_SUMS)}; got {self.dw_sum!r}"
            )
        if self.ds_dtype not in ("fp32", "input"):
            raise ValueError(
                f"ConvBlocks.ds_dtype must be 'fp32' or 'input'; got {self.ds_dtype!r}"
            )
        for name in ("fwd_t", "fwd_d", "fwd_warps", "ds_t", "ds_d", "ds_warps", "time_chunk",
                     "dx_t", "dx_d", "dx_warps"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0 and value & (value - 1) == 0):
                raise ValueError(f"ConvBlocks.{name} must be a positive power of two; got {value!r}")
        if self.time_chunk % self.ds_t:
            raise ValueError(
                f"ConvBlocks.time_chunk ({self.time_chunk}) must be a multiple of ds_t ({self.ds_t})"
            )


# Defaults: the forward and dx tiles from ptxas's report for sm_90a (bf16, W=4, SiLU, rows
# 8-aligned), the ds step from `benchmarks/gpu_conv.py --sweep` on an H200: 8 x 64 on 2 warps,
# dw_sum "unrolled", ds in x's dtype: fwd+bwd 302 us at the 12 x 512 shape and 580 at 24 x 1024,
# the least of the sixth session's sweep at both, against 415 / 809 for "chunk" with an fp32 ds
# and 656 / 1132 for fla's conv (docs/GPU.md). The bf16 ds adds one rounding to each of dx's W
# terms: dx's error against float64 went from 7.8e-3 to 1.5e-2 of a largest |dx| of 3.5 (fla's
# 9.4e-3); dw is summed from the unrounded ds. A thread holds 8 contiguous bf16 (one 16-byte
# load per tile) of a 128-wide d-tile over 4 warps.
# The compiler issues every shifted load of a tile up front, so registers grow with the tile.
# Forward 32 x 128: 122 registers, no spills (64 x 128: 168). ds step 16 x 128: 145 registers
# (32 x 128: 254, at the limit; 64 x 128 spills 268 bytes). dx step 32 x 128: 167 registers
# (16 x 128: 96; 64 x 128 spills 144 bytes). "unrolled" ds step 8 x 64 / 2 warps: 128 registers;
# 16 x 64 / 2 and 16 x 128 / 4: 230; 32 x 64 / 2 spills. None spills at the defaults.
DEFAULT_BLOCKS = ConvBlocks(ds_t=8, ds_d=64, ds_warps=2, dw_sum="unrolled", ds_dtype="input")


@triton.jit
def _piece(d0, p0, p1, p2, D, S1: tl.constexpr, S2: tl.constexpr):
    """The piece holding channels d0.. of a block: its pointer, first channel and width.

    Channels [0, S1), [S1, S2), [S2, D) live in three contiguous [B, T, width] tensors (one
    tensor when S1 = S2 = D). A block never straddles two pieces (`_pieces_fit`), so the choice
    is one scalar per program and the loads and stores inside a piece stay 16-byte vectors.
    """
    in0 = d0 < S1
    in1 = d0 < S2
    ptr = tl.where(in0, p0, tl.where(in1, p1, p2))
    start = tl.where(in0, 0, tl.where(in1, S1, S2))
    width = tl.where(in0, S1, tl.where(in1, S2 - S1, D - S2))
    return ptr, start, width


@triton.jit
def _conv_fwd_kernel(
    x_ptr, w_ptr, y0_ptr, y1_ptr, y2_ptr,
    T, D,
    stride_xb, stride_xt, stride_wd, stride_ww,
    W: tl.constexpr, SILU: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
    ALIGN: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr,
):
    pid_t, pid_d, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    stride_xb, stride_xt = stride_xb * ALIGN, stride_xt * ALIGN  # see _alignment
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    x_base = x_ptr + pid_b.to(tl.int64) * stride_xb  # int64: B*T*row can pass 2^31
    acc = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
    for w in tl.static_range(W):
        t_src = offs_t - (W - 1) + w
        mask = ((t_src >= 0) & (t_src < T))[:, None] & mask_d[None, :]
        xv = tl.load(x_base + t_src[:, None] * stride_xt + offs_d[None, :], mask=mask, other=0.0)
        wv = tl.load(w_ptr + offs_d * stride_wd + w * stride_ww, mask=mask_d, other=0.0)
        acc += xv.to(tl.float32) * wv.to(tl.float32)[None, :]
    if SILU:
        acc = acc * tl.sigmoid(acc)
    y_ptr, start, width = _piece(pid_d * BLOCK_D, y0_ptr, y1_ptr, y2_ptr, D, S1, S2)
    y_base = y_ptr + pid_b.to(tl.int64) * T * width
    mask_out = (offs_t < T)[:, None] & mask_d[None, :]
    tl.store(y_base + offs_t[:, None] * width + (offs_d - start)[None, :],
             acc.to(y_ptr.dtype.element_ty), mask=mask_out)


@triton.jit
def _weight_column(w_ptr, offs_d, mask_d, stride_wd, stride_ww, j: tl.constexpr, W: tl.constexpr):
    """weight[:, j] for the W <= 4 unrolled ds step, in fp32, aligned so that column j multiplies
    the shift-j tile of `_shifted_tile`; zeros for j >= W (the unused named tiles)."""
    if j < W:
        return tl.load(w_ptr + offs_d * stride_wd + j * stride_ww, mask=mask_d,
                       other=0.0).to(tl.float32)
    return tl.zeros_like(offs_d).to(tl.float32)


@triton.jit
def _shifted_tile(x_base, offs_t, offs_d, mask_d, T, stride_xt, j: tl.constexpr,
                  W: tl.constexpr):
    """x[t - (W-1) + j] for the rows offs_t, fp32, zeros outside [0, T) and for j >= W."""
    t_src = offs_t - (W - 1) + j
    mask = ((t_src >= 0) & (t_src < T) & (j < W))[:, None] & mask_d[None, :]
    return tl.load(x_base + t_src[:, None] * stride_xt + offs_d[None, :], mask=mask,
                   other=0.0).to(tl.float32)


@triton.jit
def _conv_ds_dw_kernel(
    x_ptr, w_ptr, dy0_ptr, dy1_ptr, dy2_ptr, ds_ptr, dw_part_ptr,
    T, D,
    stride_xb, stride_xt, stride_wd, stride_ww,
    W: tl.constexpr, W_PAD: tl.constexpr, SILU: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr, TIME_CHUNK: tl.constexpr, ALIGN: tl.constexpr,
    DW_SUM: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr,
):
    """Backward, step 1: ds = dy * act'(pre) into scratch, and the weight-gradient partials."""
    pid_c, pid_d, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    stride_xb, stride_xt = stride_xb * ALIGN, stride_xt * ALIGN  # see _alignment
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    x_base = x_ptr + pid_b.to(tl.int64) * stride_xb  # int64: B*T*row can pass 2^31
    dy_ptr, start, width = _piece(pid_d * BLOCK_D, dy0_ptr, dy1_ptr, dy2_ptr, D, S1, S2)
    dy_base = dy_ptr + pid_b.to(tl.int64) * T * width
    ds_base = ds_ptr + pid_b.to(tl.int64) * T * D
    w_rows = tl.arange(0, W_PAD)
    dw_acc = tl.zeros((W_PAD, BLOCK_D), dtype=tl.float32)
    if DW_SUM == 1:  # "chunk": products summed elementwise, reduced once at the end
        dw_tile = tl.zeros((W_PAD, BLOCK_T, BLOCK_D), dtype=tl.float32)
    if DW_SUM == 2:  # "unrolled" (W <= 4): the weight's columns once, for every tile
        wa = _weight_column(w_ptr, offs_d, mask_d, stride_wd, stride_ww, 0, W)
        wb = _weight_column(w_ptr, offs_d, mask_d, stride_wd, stride_ww, 1, W)
        wc = _weight_column(w_ptr, offs_d, mask_d, stride_wd, stride_ww, 2, W)
        wd = _weight_column(w_ptr, offs_d, mask_d, stride_wd, stride_ww, 3, W)
        dwa = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
        dwb = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
        dwc = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
        dwd = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
    # a fixed trip count (rows past T are masked): the last chunk of a T that is not a multiple
    # of TIME_CHUNK idles for a few tiles, which is cheaper than a data-dependent loop bound
    for i in range(TIME_CHUNK // BLOCK_T):
        offs_t = pid_c * TIME_CHUNK + i * BLOCK_T + tl.arange(0, BLOCK_T)
        mask_out = (offs_t < T)[:, None] & mask_d[None, :]
        ds = tl.load(dy_base + offs_t[:, None] * width + (offs_d - start)[None, :],
                     mask=mask_out, other=0.0).to(tl.float32)
        if DW_SUM == 2:
            # "unrolled": the W shifted x tiles loaded once into named registers, used by both
            # the pre-activation and the weight gradient, which sums each shift's products in
            # its own [BLOCK_T, BLOCK_D] tile: no selects, no 3-d tiles, no layout changes
            xa = _shifted_tile(x_base, offs_t, offs_d, mask_d, T, stride_xt, 0, W)
            xb = _shifted_tile(x_base, offs_t, offs_d, mask_d, T, stride_xt, 1, W)
            xc = _shifted_tile(x_base, offs_t, offs_d, mask_d, T, stride_xt, 2, W)
            xd = _shifted_tile(x_base, offs_t, offs_d, mask_d, T, stride_xt, 3, W)
            if SILU:  # d silu(p) / dp = sig(p) * (1 + p * (1 - sig(p)))
                pre = xa * wa[None, :] + xb * wb[None, :] + xc * wc[None, :] + xd * wd[None, :]
                sig = tl.sigmoid(pre)
                ds = ds * sig * (1.0 + pre * (1.0 - sig))
            tl.store(ds_base + offs_t[:, None] * D + offs_d[None, :],
                     ds.to(ds_ptr.dtype.element_ty), mask=mask_out)
            dwa += ds * xa
            dwb += ds * xb
            dwc += ds * xc
            dwd += ds * xd
        else:
            if SILU:  # d silu(p) / dp = sig(p) * (1 + p * (1 - sig(p)))
                pre = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
                for w in tl.static_range(W):
                    t_src = offs_t - (W - 1) + w
                    mask = ((t_src >= 0) & (t_src < T))[:, None] & mask_d[None, :]
                    xv = tl.load(x_base + t_src[:, None] * stride_xt + offs_d[None, :],
                                 mask=mask, other=0.0)
                    wv = tl.load(w_ptr + offs_d * stride_wd + w * stride_ww, mask=mask_d,
                                 other=0.0)
                    pre += xv.to(tl.float32) * wv.to(tl.float32)[None, :]
                sig = tl.sigmoid(pre)
                ds = ds * sig * (1.0 + pre * (1.0 - sig))
            tl.store(ds_base + offs_t[:, None] * D + offs_d[None, :],
                     ds.to(ds_ptr.dtype.element_ty), mask=mask_out)
            # the same shifted x tiles again (the compiler keeps or re-reads them from L1):
            # each (b, t) enters dw once, at the tile holding t
            for w in tl.static_range(W):
                t_src = offs_t - (W - 1) + w
                mask = ((t_src >= 0) & (t_src < T))[:, None] & mask_d[None, :]
                xv = tl.load(x_base + t_src[:, None] * stride_xt + offs_d[None, :], mask=mask,
                             other=0.0)
                if DW_SUM == 1:
                    dw_tile += tl.where((w_rows == w)[:, None, None],
                                        (ds * xv.to(tl.float32))[None, :, :], 0.0)
                else:
                    col = tl.sum(ds * xv.to(tl.float32), axis=0)
                    dw_acc += tl.where((w_rows == w)[:, None], col[None, :], 0.0)
    if DW_SUM == 1:
        dw_acc = tl.sum(dw_tile, axis=1)
    if DW_SUM == 2:
        dw_acc = tl.where((w_rows == 0)[:, None], tl.sum(dwa, axis=0)[None, :], dw_acc)
        dw_acc = tl.where((w_rows == 1)[:, None], tl.sum(dwb, axis=0)[None, :], dw_acc)
        dw_acc = tl.where((w_rows == 2)[:, None], tl.sum(dwc, axis=0)[None, :], dw_acc)
        dw_acc = tl.where((w_rows == 3)[:, None], tl.sum(dwd, axis=0)[None, :], dw_acc)
    # partials [n_chunks * B, W, D], row (chunk, batch) = pid_c * B + pid_b
    part = pid_c * tl.num_programs(2) + pid_b
    part_base = dw_part_ptr + part.to(tl.int64) * W * D
    mask_w = (w_rows < W)[:, None] & mask_d[None, :]
    tl.store(part_base + w_rows[:, None] * D + offs_d[None, :], dw_acc, mask=mask_w)


@triton.jit
def _conv_dx_kernel(
    ds_ptr, w_ptr, dx_ptr,
    T, D,
    stride_wd, stride_ww,
    W: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Backward, step 2: dx[t] = sum_j weight[d, W-1-j] * ds[t + j], ds = 0 past T."""
    pid_t, pid_d, pid_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = offs_d < D
    ds_base = ds_ptr + pid_b.to(tl.int64) * T * D
    acc = tl.zeros((BLOCK_T, BLOCK_D), dtype=tl.float32)
    for j in tl.static_range(W):
        t_ds = offs_t + j
        mask = (t_ds < T)[:, None] & mask_d[None, :]
        ds = tl.load(ds_base + t_ds[:, None] * D + offs_d[None, :], mask=mask,
                     other=0.0).to(tl.float32)
        wv = tl.load(w_ptr + offs_d * stride_wd + (W - 1 - j) * stride_ww, mask=mask_d, other=0.0)
        acc += ds * wv.to(tl.float32)[None, :]
    dx_base = dx_ptr + pid_b.to(tl.int64) * T * D
    mask_out = (offs_t < T)[:, None] & mask_d[None, :]
    tl.store(dx_base + offs_t[:, None] * D + offs_d[None, :], acc.to(dx_ptr.dtype.element_ty),
             mask=mask_out)


def _check(x: torch.Tensor, weight: torch.Tensor, activation: str | None) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must be [B, T, D]; got {tuple(x.shape)}")
    if weight.dim() != 2 or weight.shape[0] != x.shape[2]:
        raise ValueError(f"weight must be [D, W] with D={x.shape[2]}; got {tuple(weight.shape)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}; got {activation!r}")


def _unit_last_stride(t: torch.Tensor) -> torch.Tensor:
    """The kernels index the last dim densely; other strides are passed through."""
    return t if t.stride(-1) == 1 else t.contiguous()


def _alignment(*strides: int) -> int:
    """The largest power of two up to 16 dividing every stride (in elements).

    The kernels get the strides divided by it and multiply back by it as a constexpr, which tells
    Triton each row starts that many elements apart from an aligned one: 16-byte vector loads.
    Triton only learns "divisible by 16" of an integer argument by itself, and GDN's q|k|v rows
    are often just a multiple of 8 (the 12 x 512 proxy's in_proj row is 2312 = 8 * 289 wide):
    without this the loads would be 2 bytes each.
    """
    align = 16
    for stride in strides:
        while stride % align:
            align //= 2
    return align


def _boundaries(split: tuple[int, ...], D: int) -> tuple[int, int]:
    """(S1, S2) of `_piece` for up to three piece widths summing to D."""
    ends = [sum(split[:i + 1]) for i in range(len(split))]
    return (ends + [D, D])[0], (ends + [D, D])[1]


def _forward(x: torch.Tensor, weight: torch.Tensor, silu: bool, blocks: ConvBlocks,
             split: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    B, T, D = x.shape
    pieces = [torch.empty((B, T, width), dtype=x.dtype, device=x.device) for width in split]
    y0, y1, y2 = (pieces + pieces[-1:] * 2)[:3]  # the kernel takes three pointers
    grid = (triton.cdiv(T, blocks.fwd_t), triton.cdiv(D, blocks.fwd_d), B)
    align = _alignment(x.stride(0), x.stride(1))
    S1, S2 = _boundaries(split, D)
    _conv_fwd_kernel[grid](
        x, weight, y0, y1, y2, T, D,
        x.stride(0) // align, x.stride(1) // align, weight.stride(0), weight.stride(1),
        W=weight.shape[1], SILU=silu, BLOCK_T=blocks.fwd_t, BLOCK_D=blocks.fwd_d, ALIGN=align,
        S1=S1, S2=S2, num_warps=blocks.fwd_warps,
    )
    return tuple(pieces)


def _backward(
    x: torch.Tensor, weight: torch.Tensor, dys: tuple[torch.Tensor, ...], silu: bool,
    blocks: ConvBlocks,
) -> tuple[torch.Tensor, torch.Tensor]:
    B, T, D = x.shape
    W = weight.shape[1]
    # a chunk longer than the sequence would only walk masked tiles (the kernel's trip count is
    # fixed); clamping it to T's power of two recompiles only for short sequences
    chunk = min(blocks.time_chunk, max(blocks.ds_t, triton.next_power_of_2(T)))
    n_chunks = triton.cdiv(T, chunk)
    # fp32 ds by default: dx sums W products of it, and bf16 ds adds a rounding to every term
    ds_dtype = torch.float32 if blocks.ds_dtype == "fp32" else x.dtype
    ds = torch.empty((B, T, D), dtype=ds_dtype, device=x.device)
    partials = torch.empty((n_chunks * B, W, D), dtype=torch.float32, device=x.device)
    align = _alignment(x.stride(0), x.stride(1))
    # "unrolled" names four shifted tiles; wider kernels sum the same products "chunk"'s way
    dw_sum = "chunk" if blocks.dw_sum == "unrolled" and W > 4 else blocks.dw_sum
    dys = tuple(dy.contiguous() for dy in dys)  # the kernel indexes each piece densely
    dy0, dy1, dy2 = (dys + dys[-1:] * 2)[:3]
    S1, S2 = _boundaries(tuple(dy.shape[2] for dy in dys), D)
    _conv_ds_dw_kernel[(n_chunks, triton.cdiv(D, blocks.ds_d), B)](
        x, weight, dy0, dy1, dy2, ds, partials, T, D,
        x.stride(0) // align, x.stride(1) // align, weight.stride(0), weight.stride(1),
        W=W, W_PAD=triton.next_power_of_2(W), SILU=silu,
        BLOCK_T=blocks.ds_t, BLOCK_D=blocks.ds_d, TIME_CHUNK=chunk, ALIGN=align,
        DW_SUM=_DW_SUMS.index(dw_sum), S1=S1, S2=S2, num_warps=blocks.ds_warps,
    )
    dx = torch.empty((B, T, D), dtype=x.dtype, device=x.device)
    _conv_dx_kernel[(triton.cdiv(T, blocks.dx_t), triton.cdiv(D, blocks.dx_d), B)](
        ds, weight, dx, T, D, weight.stride(0), weight.stride(1),
        W=W, BLOCK_T=blocks.dx_t, BLOCK_D=blocks.dx_d, num_warps=blocks.dx_warps,
    )
    dweight = partials.sum(0).t().to(weight.dtype)
    return dx, dweight


def _pieces_fit(split: tuple[int, ...], blocks: ConvBlocks) -> bool:
    """Whether the kernels can write (and read the gradients of) these pieces in place: at most
    three, and every boundary between two of them on a block edge of both kernels that touch
    them (the forward's fwd_d, the ds step's ds_d)."""
    inner = [sum(split[:i + 1]) for i in range(len(split) - 1)]
    return len(split) <= 3 and all(e % blocks.fwd_d == 0 and e % blocks.ds_d == 0 for e in inner)


class _CausalConv1d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, silu: bool, blocks: ConvBlocks,
                split: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
        ctx.save_for_backward(x, weight)
        ctx.silu, ctx.blocks = silu, blocks
        return _forward(x, weight, silu, blocks, split)

    @staticmethod
    def backward(ctx, *dys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None, None]:
        x, weight = ctx.saved_tensors  # (unused outputs' gradients arrive as zeros)
        dx, dweight = _backward(x, weight, dys, ctx.silu, ctx.blocks)
        return dx, dweight, None, None, None


def causal_conv1d_triton(
    x: torch.Tensor,
    weight: torch.Tensor,
    activation: str | None = "silu",
    blocks: ConvBlocks | None = None,
    split: tuple[int, ...] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """act(causal depthwise conv) of x [B, T, D] with weight [D, W] -> y [B, T, D] (x's dtype).

    With ``split`` (widths summing to D), the pieces ``y.split(split, -1)`` come back instead,
    each a contiguous [B, T, width] tensor written by the kernel directly: GDN's q, k, v, which
    fla needs contiguous, without a copy after the conv, and their gradients read where they
    are, without a concatenation before its backward. (Up to three pieces on block edges; other
    splits are cut and copied by torch.)
    x needs a unit last stride only (a copy is made otherwise); no initial or final state.
    fp32 accumulation; dweight comes back in weight's dtype. CUDA tensors (or CPU tensors under
    TRITON_INTERPRET=1, which the GPU tests use to check the maths anywhere).
    """
    _check(x, weight, activation)
    D = x.shape[2]
    if split is not None and (sum(split) != D or min(split, default=0) <= 0):
        raise ValueError(f"split must be positive widths summing to D={D}; got {split!r}")
    # DEFAULT_BLOCKS looked up per call, so a benchmark can swap it (gpu_throughput --conv-blocks)
    blocks = blocks or DEFAULT_BLOCKS
    fused = tuple(split) if split is not None and _pieces_fit(tuple(split), blocks) else (D,)
    pieces = _CausalConv1d.apply(_unit_last_stride(x), weight, activation is not None, blocks,
                                 fused)
    if split is None:
        return pieces[0]
    if fused == (D,):
        return tuple(piece.contiguous() for piece in pieces[0].split(tuple(split), dim=-1))
    return pieces
