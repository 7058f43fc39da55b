"""GDN's short conv alone on one GPU: fla's causal_conv1d vs ours (Triton) vs our torch conv.

Shapes (bf16, W = 4, SiLU): the 12 x 512 calibration proxy's GDN conv (B=32, T=1024, C=1536)
and the 24 x 1024 throughput benchmark's (B=16, T=2048, C=3072; `gpu_throughput.proxy_config`).
As in the GDN layer, x is the q|k|v column slice of a wider in_proj output (row stride > C).

Prints per shape and implementation, for the forward alone and for forward + backward (dx and
dweight: `torch.autograd.grad`):
- "event us": median microseconds between CUDA events around each call after a warm-up. This
  includes host time whenever the wrapper's Python outlasts the kernels (fla's does), so it
  understates what a graphed training step sees of the cheaper-on-device implementation;
- "kernel us": the device time of every kernel (and memset/memcpy) one call launches, summed
  and averaged over the calls (torch.profiler, CUDA activity), and "launches", their count per
  call. This is what a CUDA-graph step pays, so "kern/fla" (kernel time over fla's) is the ratio
  that predicts the training step;
- "ev/fla": the event times' ratio to fla; "GB/s": the bandwidth the kernel time means for the
  least traffic the op needs (fwd: read x, write y; fwd+bwd: x twice, y, dy, dx);
- the max abs error of y, dx, dweight against float64 (our torch conv in float64 on the same
  bf16 inputs).
At the proxies' shapes two more rows give y as GDN uses it, q, k, v as three contiguous tensors
(fla needs them so): fla's y cut and copied apart, as the model does after fla's conv, and ours
with the pieces written apart by the kernel (`causal_conv1d_triton(split=...)`), their
gradients read in place. Pairs are fwd/fwd+bwd. ``--sweep`` also times other tile sizes of ours
(`triton_conv.ConvBlocks`), to choose the defaults. On the CPU (the interpreter smoke test)
there are no kernel times: wall-clock times stand in for both.

    PYTHONPATH=$PWD:$PWD/kernels python benchmarks/gpu_conv.py [--sweep]
    PYTHONPATH=$PWD:$PWD/kernels TRITON_INTERPRET=1 python benchmarks/gpu_conv.py --device cpu \\
        --shapes 2,64,256:64+64+128 --reps 1 --warmup 0  # smoke test: Triton's CPU interpreter
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from archsearch_kernels import causal_conv1d, fla_available

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_throughput import environment, proxy_config

if TYPE_CHECKING:  # the module imports triton: loaded in `implementations`
    from archsearch_kernels.triton_conv import ConvBlocks

ConvFn = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | tuple[torch.Tensor, ...]"]
WIDTH = 4
HBM_TBPS = 4.8  # H200 peak, for the "at peak" column only


Shape = tuple[str, int, int, int, int, "tuple[int, ...] | None"]


def gdn_shapes() -> list[Shape]:
    """(label, B, T, C, in_proj width, q|k|v widths) of the two benchmark proxies' GDN layers."""
    shapes = []
    for label, depth, width, batch, seq in (("12x512", 12, 512, 32, 1024),
                                            ("24x1024", 24, 1024, 16, 2048)):
        spec = proxy_config(depth, width, "G", vocab=512).layers[0]
        row = spec.conv_dim + spec.value_dim + 2 * spec.v_heads  # in_proj's q|k|v|gate|a|b
        split = (spec.key_dim, spec.key_dim, spec.value_dim)
        shapes.append((label, batch, seq, spec.conv_dim, row, split))
    return shapes


def piece_implementations(impls: dict[str, ConvFn], split: tuple[int, ...]) -> dict[str, ConvFn]:
    """q, k, v as GDN's recurrence takes them: contiguous, apart (see the module docstring)."""
    from archsearch_kernels.triton_conv import DEFAULT_BLOCKS, causal_conv1d_triton

    pieces: dict[str, ConvFn] = {}
    if "fla" in impls:
        fla = impls["fla"]
        pieces["fla, q|k|v copied apart"] = lambda x, w: tuple(
            p.contiguous() for p in fla(x, w).split(split, dim=-1))
    pieces["ours, q|k|v written apart"] = lambda x, w: causal_conv1d_triton(
        x, w, "silu", DEFAULT_BLOCKS, split=split)
    return pieces


def implementations(device: torch.device, sweep: bool) -> dict[str, ConvFn]:
    from archsearch_kernels.triton_conv import DEFAULT_BLOCKS, causal_conv1d_triton

    impls: dict[str, ConvFn] = {}
    if device.type == "cuda" and fla_available():
        from fla.modules.causal_conv1d import causal_conv1d as fla_conv

        impls["fla"] = lambda x, w: fla_conv(x, w, activation="silu")[0]
    impls["ours"] = lambda x, w: causal_conv1d_triton(x, w, "silu", DEFAULT_BLOCKS)
    impls["torch eager"] = lambda x, w: causal_conv1d(x, w, activation="silu")[0]
    if sweep:
        for blocks in sweep_blocks():
            if blocks != DEFAULT_BLOCKS:
                impls[f"ours {describe(blocks)}"] = (
                    lambda x, w, b=blocks: causal_conv1d_triton(x, w, "silu", b))
    return impls


def sweep_blocks() -> list[ConvBlocks]:
    """The ds step's choices against the defaults, the other kernels at theirs (the sixth
    session's sweep; the fifth's, over forward, dx and "tile"/"chunk" tiles, chose those and is
    in docs/GPU.md): "chunk" sums at the tiles it won with, and "unrolled" sums (W <= 4) at
    tiles that compile without register spills for bf16, W = 4 (ptxas, sm_90a); time chunks
    for one of them; each with the ds scratch in fp32 and in x's dtype."""
    from archsearch_kernels.triton_conv import ConvBlocks

    ds = [("chunk", 16, 64, 2, 256), ("chunk", 8, 64, 2, 256)]
    ds += [("unrolled", t, d, w, 256) for t, d, w in ((16, 64, 2), (16, 64, 4), (8, 64, 2),
                                                      (16, 128, 4), (8, 128, 2), (32, 64, 4))]
    ds += [("unrolled", 16, 64, 4, chunk) for chunk in (64, 128, 512)]
    return [ConvBlocks(ds_t=t, ds_d=d, ds_warps=w, time_chunk=chunk, dw_sum=dw_sum,
                       ds_dtype=ds_dtype)
            for dw_sum, t, d, w, chunk in ds for ds_dtype in ("fp32", "input")]


def describe(b: ConvBlocks) -> str:
    return (f"f{b.fwd_t}x{b.fwd_d}/{b.fwd_warps} ds{b.ds_t}x{b.ds_d}/{b.ds_warps} "
            f"c{b.time_chunk}{'' if b.dw_sum == 'tile' else ' dw-' + b.dw_sum}"
            f"{'' if b.ds_dtype == 'fp32' else ' ds-in-x-dtype'} "
            f"dx{b.dx_t}x{b.dx_d}/{b.dx_warps}")


def median_us(fn: Callable[[], object], reps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    if device.type != "cuda":
        times = []
        for _ in range(reps):
            began = time.perf_counter()
            fn()
            times.append((time.perf_counter() - began) * 1e6)
        return statistics.median(times)
    torch.cuda.synchronize(device)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(reps)]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize(device)
    return statistics.median(start.elapsed_time(end) * 1e3 for start, end in events)


def kernel_us(fn: Callable[[], object], reps: int, device: torch.device) -> tuple[float, float]:
    """(device microseconds, launches) per call of fn: its kernels, memsets and copies, summed.

    The profiler records every kernel on the device while fn runs; the mean over reps calls
    after a warm-up (the caller's) leaves out compilation and autotuning.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            fn()
        torch.cuda.synchronize(device)
    on_device = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    return sum(e.time_range.elapsed_us() for e in on_device) / reps, len(on_device) / reps


def run_shape(label: str, B: int, T: int, C: int, row: int, split: tuple[int, ...] | None,
              impls: dict[str, ConvFn], device: torch.device, reps: int, warmup: int) -> None:
    gen = torch.Generator(device=device).manual_seed(0)
    wide = torch.randn(B, T, row, device=device, generator=gen).to(torch.bfloat16)
    wide.requires_grad_()
    x = wide[..., :C]  # the q|k|v split of in_proj's output
    weight = (torch.rand(C, WIDTH, device=device, generator=gen) * 2 - 1).mul(WIDTH**-0.5)
    weight = weight.to(torch.bfloat16).requires_grad_()
    dy = torch.randn(B, T, C, device=device, generator=gen).to(torch.bfloat16)

    x64 = x.detach().double().requires_grad_()
    w64 = weight.detach().double().requires_grad_()
    y64 = causal_conv1d(x64, w64, activation="silu")[0]
    ref = (y64.detach(), *torch.autograd.grad(y64, (x64, w64), dy.double()))
    del x64, w64, y64

    element_bytes = B * T * C * 2
    traffic = {"fwd": 2 * element_bytes, "fwd+bwd": 5 * element_bytes}
    print(f"\n{label}: x [{B}, {T}, {C}] (row stride {row}), W={WIDTH}, bf16, SiLU; "
          f"at {HBM_TBPS} TB/s the least traffic takes {traffic['fwd'] / HBM_TBPS / 1e6:.0f} us "
          f"fwd, {traffic['fwd+bwd'] / HBM_TBPS / 1e6:.0f} us fwd+bwd")
    print(f"{'implementation':<40} {'event us':>14} {'kernel us':>14} {'launches':>9} "
          f"{'ev/fla':>10} {'kern/fla':>10} {'GB/s':>10} {'err y':>8} {'err dx':>8} {'err dw':>8}")
    fla_times = fla_kernel = None
    dy_pieces = [p.contiguous() for p in dy.split(split or [C], dim=-1)]
    if split is not None:
        impls = {**impls, **piece_implementations(impls, split)}
    for name, conv in impls.items():
        def forward(conv: ConvFn = conv) -> None:
            with torch.no_grad():
                conv(x, weight)

        def forward_backward(conv: ConvFn = conv) -> tuple[object, ...]:
            y = conv(x, weight)
            if isinstance(y, tuple):  # pieces: each its own contiguous gradient, as fla gives
                return (y, *torch.autograd.grad(y, (x, weight), dy_pieces))
            return (y, *torch.autograd.grad(y, (x, weight), dy))

        try:
            y, *grads = forward_backward()
            y = torch.cat(y, dim=-1) if isinstance(y, tuple) else y  # outside the timed calls
            errors = [(o.double() - r).abs().max().item() for o, r in zip([y, *grads], ref)]
            del y, grads
            times = (median_us(forward, reps, warmup, device),
                     median_us(forward_backward, reps, warmup, device))
            if device.type == "cuda":
                (fwd_k, fwd_n), (both_k, both_n) = (kernel_us(forward, reps, device),
                                                    kernel_us(forward_backward, reps, device))
                kernel, launches = (fwd_k, both_k), f"{fwd_n:.0f}/{both_n:.0f}"
            else:
                kernel, launches = times, "-"
        except Exception as err:  # noqa: BLE001 - report a failing implementation, keep going
            print(f"{name:<40} failed: {type(err).__name__}: {err}")
            continue
        if name == "fla":
            fla_times, fla_kernel = times, kernel

        def pair(values: tuple[float, ...], fmt: str = ".0f") -> str:
            return "/".join(f"{v:{fmt}}" for v in values)

        ratios = ["" if ref_t is None else pair([t / f for t, f in zip(ts, ref_t)], ".2f")
                  for ts, ref_t in ((times, fla_times), (kernel, fla_kernel))]
        bandwidth = pair([traffic[k] / (t * 1e3) for k, t in zip(traffic, kernel)])
        print(f"{name:<40} {pair(times):>14} {pair(kernel):>14} {launches:>9} {ratios[0]:>10} "
              f"{ratios[1]:>10} {bandwidth:>10} " + " ".join(f"{e:>8.1e}" for e in errors),
              flush=True)
    print(f"(max |ref|: y {ref[0].abs().max():.2f}, dx {ref[1].abs().max():.2f}, "
          f"dw {ref[2].abs().max():.1f}; pairs are fwd/fwd+bwd)")


def parse_shape(text: str) -> Shape:
    """B,T,C, optionally with q|k|v widths: B,T,C:q+k+v (their sum C)."""
    dims, _, pieces = text.partition(":")
    B, T, C = (int(v) for v in dims.split(","))
    split = tuple(int(v) for v in pieces.split("+")) if pieces else None
    if split is not None and sum(split) != C:
        raise argparse.ArgumentTypeError(f"widths {pieces} do not sum to C={C}")
    return f"{B}x{T}x{C}", B, T, C, C + 40, split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--sweep", action="store_true", help="also time other tile sizes of ours")
    parser.add_argument("--shapes", nargs="+", type=parse_shape, default=None,
                        metavar="B,T,C[:q+k+v]", help="instead of the two proxies' shapes")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(environment(device))
    impls = implementations(device, args.sweep)
    if "fla" not in impls:
        print("fla: not timed (needs CUDA and flash-linear-attention)")
    for shape in args.shapes or gdn_shapes():
        run_shape(*shape, impls, device, args.reps, args.warmup)


if __name__ == "__main__":
    main()
