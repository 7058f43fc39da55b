"""Forward+backward time of our chunked gated delta rule vs causal SDPA, side by side, on CPU.

Why: a GDN proxy layer should not make CPU sweeps much slower than an attention layer. Targets
(B=8, H=4, K=V=32, fp32): GDN within 3x of SDPA at T=256 and within 2x at T=1024.

    PYTHONPATH=kernels:. .venv/bin/python benchmarks/bench_gdn_op.py [--chunk-sizes 32 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from archsearch_kernels import chunk_gated_delta_rule


def interleaved_times(
    steps: dict[str, Callable[[], None]], warmup: int, repeats: int
) -> dict[str, list[float]]:
    """Wall times in ms of each step, measured in alternation after warm-up.

    Alternating (rather than timing one op's repeats, then the other's) makes load from other
    processes on a shared CPU hit both sides alike, so the ratio stays meaningful.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def sdpa_step(B: int, H: int, T: int, D: int) -> Callable[[], None]:
    """Causal softmax attention fwd+bwd in its native [B, H, T, D] layout."""
    q, k, v = (torch.randn(B, H, T, D, requires_grad=True) for _ in range(3))

    def step() -> None:
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        o.backward(torch.ones_like(o))
        for x in (q, k, v):
            x.grad = None

    return step


def gdn_step(B: int, H: int, T: int, D: int, chunk_size: int) -> Callable[[], None]:
    """Chunked GDN fwd+bwd with gradients for q, k, v, g and beta, inputs shaped like the layer's."""
    q = F.normalize(torch.randn(B, T, H, D), dim=-1).requires_grad_()
    k = F.normalize(torch.randn(B, T, H, D), dim=-1).requires_grad_()
    v = torch.randn(B, T, H, D, requires_grad=True)
    g = (-F.softplus(torch.randn(B, T, H))).requires_grad_()
    beta = torch.rand(B, T, H).sigmoid().requires_grad_()
    leaves = (q, k, v, g, beta)

    def step() -> None:
        o, _ = chunk_gated_delta_rule(q, k, v, g, beta, chunk_size=chunk_size)
        o.backward(torch.ones_like(o))
        for x in leaves:
            x.grad = None

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[64, 32])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    torch.manual_seed(0)
    B, H, D = args.batch, args.heads, args.head_dim
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, fwd+bwd, "
        f"B={B} H={H} K=V={D}; median (and min) of {args.repeats} interleaved runs after "
        f"{args.warmup} warm-up; 1-min load average {os.getloadavg()[0]:.2f} (other processes "
        f"on the CPU inflate medians more than minima)"
    )
    print(
        f"{'T':>6} {'chunk':>6} {'SDPA ms':>9} {'GDN ms':>9} {'GDN/SDPA':>9} "
        f"{'SDPA min':>9} {'GDN min':>9} {'min ratio':>9}"
    )
    for T in args.seq_lens:
        steps = {"sdpa": sdpa_step(B, H, T, D)}
        steps.update({f"gdn{C}": gdn_step(B, H, T, D, C) for C in args.chunk_sizes})
        times = interleaved_times(steps, args.warmup, args.repeats)
        sdpa_med, sdpa_min = statistics.median(times["sdpa"]), min(times["sdpa"])
        for C in args.chunk_sizes:
            med, low = statistics.median(times[f"gdn{C}"]), min(times[f"gdn{C}"])
            print(
                f"{T:>6} {C:>6} {sdpa_med:>9.2f} {med:>9.2f} {med / sdpa_med:>8.2f}x "
                f"{sdpa_min:>9.2f} {low:>9.2f} {low / sdpa_min:>8.2f}x"
            )


if __name__ == "__main__":
    main()
