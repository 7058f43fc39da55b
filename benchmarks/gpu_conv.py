"""GDN's short conv alone on one GPU: fla's causal_conv1d vs ours (Triton) vs our torch conv.

Shapes (bf16, W = 4, SiLU): the 12 x 512 calibration proxy's GDN conv (B=32, T=1024, C=1536)
and the 24 x 1024 throughput benchmark's (B=16, T=2048, C=3072; `gpu_throughput.proxy_config`).
As in the GDN layer, x is the q|k|v column slice of a wider in_proj output (row stride > C).

Prints per shape and implementation: median microseconds of the forward alone and of forward +
backward (dx and dweight: `torch.autograd.grad`), CUDA events around each call after a warm-up;
the ratio to fla; the bandwidth that time means for the least traffic the op needs (fwd: read x,
write y; fwd+bwd: x twice, y, dy, dx); and the max abs error of y, dx, dweight against float64
(our torch conv in float64 on the same bf16 inputs). ``--sweep`` also times other tile sizes of
ours (`triton_conv.ConvBlocks`), to choose the defaults.

    PYTHONPATH=$PWD:$PWD/kernels python benchmarks/gpu_conv.py [--sweep]
    PYTHONPATH=$PWD:$PWD/kernels TRITON_INTERPRET=1 python benchmarks/gpu_conv.py --device cpu \\
        --shapes 2,64,96 --reps 1 --warmup 0             # smoke test: Triton's CPU interpreter
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

ConvFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
WIDTH = 4
HBM_TBPS = 4.8  # H200 peak, for the "at peak" column only


def gdn_shapes() -> list[tuple[str, int, int, int, int]]:
    """(label, B, T, C, in_proj width) of the two benchmark proxies' GDN layers."""
    shapes = []
    for label, depth, width, batch, seq in (("12x512", 12, 512, 32, 1024),
                                            ("24x1024", 24, 1024, 16, 2048)):
        spec = proxy_config(depth, width, "G", vocab=512).layers[0]
        row = spec.conv_dim + spec.value_dim + 2 * spec.v_heads  # in_proj's q|k|v|gate|a|b
        shapes.append((label, batch, seq, spec.conv_dim, row))
    return shapes


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
    """Forward tiles (backward at its default), then backward tiles and time chunks."""
    from archsearch_kernels.triton_conv import ConvBlocks

    fwd = [ConvBlocks(fwd_t=t, fwd_d=d, fwd_warps=w)
           for t, d, w in ((64, 128, 4), (16, 128, 4), (32, 256, 4), (64, 256, 8))]
    bwd = [ConvBlocks(bwd_t=t, bwd_d=d, bwd_warps=w, time_chunk=chunk)
           for t, d, w in ((8, 128, 4), (8, 256, 4), (16, 128, 4), (8, 64, 2), (16, 64, 4),
                           (32, 128, 4))
           for chunk in (128, 256, 1024)]
    return fwd + bwd


def describe(b: ConvBlocks) -> str:
    return (f"fwd {b.fwd_t}x{b.fwd_d}/{b.fwd_warps}w bwd {b.bwd_t}x{b.bwd_d}/{b.bwd_warps}w "
            f"chunk {b.time_chunk}")


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


def run_shape(label: str, B: int, T: int, C: int, row: int, impls: dict[str, ConvFn],
              device: torch.device, reps: int, warmup: int) -> None:
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
    print(f"{'implementation':<52} {'fwd us':>8} {'fwd+bwd':>8} {'vs fla':>12} {'GB/s':>11} "
          f"{'err y':>8} {'err dx':>8} {'err dw':>8}")
    fla_times = None
    for name, conv in impls.items():
        def forward(conv: ConvFn = conv) -> None:
            with torch.no_grad():
                conv(x, weight)

        def forward_backward(conv: ConvFn = conv) -> tuple[torch.Tensor, ...]:
            y = conv(x, weight)
            return (y, *torch.autograd.grad(y, (x, weight), dy))

        try:
            out = forward_backward()
            errors = [(o.double() - r).abs().max().item() for o, r in zip(out, ref)]
            del out
            times = (median_us(forward, reps, warmup, device),
                     median_us(forward_backward, reps, warmup, device))
        except Exception as err:  # noqa: BLE001 - report a failing implementation, keep going
            print(f"{name:<52} failed: {type(err).__name__}: {err}")
            continue
        if name == "fla":
            fla_times = times
        ratio = "" if fla_times is None else "/".join(
            f"{t / f:.2f}" for t, f in zip(times, fla_times))
        bandwidth = "/".join(f"{traffic[k] / (t * 1e3):.0f}" for k, t in zip(traffic, times))
        print(f"{name:<52} {times[0]:>8.1f} {times[1]:>8.1f} {ratio:>12} {bandwidth:>11} "
              + " ".join(f"{e:>8.1e}" for e in errors), flush=True)
    print(f"(max |ref|: y {ref[0].abs().max():.2f}, dx {ref[1].abs().max():.2f}, "
          f"dw {ref[2].abs().max():.1f}; 'vs fla' and 'GB/s' are fwd/fwd+bwd)")


def parse_shape(text: str) -> tuple[str, int, int, int, int]:
    B, T, C = (int(v) for v in text.split(","))
    return f"{B}x{T}x{C}", B, T, C, C + 40


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--sweep", action="store_true", help="also time other tile sizes of ours")
    parser.add_argument("--shapes", nargs="+", type=parse_shape, default=None,
                        metavar="B,T,C", help="instead of the two proxies' shapes")
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
