"""Forward+backward time of our chunked gated delta rule vs causal SDPA, side by side, on CPU.

Why: a GDN proxy layer should not make CPU sweeps much slower than an attention layer. Targets
(B=8, H=4, K=V=32, fp32): GDN within 3x of SDPA at T=256 and within 2x at T=1024.

    PYTHONPATH=kernels:. .venv/bin/python benchmarks/bench_gdn_op.py [--chunk-sizes 32 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from archsearch_kernels import chunk_gated_delta_rule


def median_ms(step: Callable[[], None], warmup: int, repeats: int) -> float:
    """Median wall time of `step` in ms after warm-up (median: robust to a noisy shared CPU)."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


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
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    torch.manual_seed(0)
    B, H, D = args.batch, args.heads, args.head_dim
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, fwd+bwd, "
          f"B={B} H={H} K=V={D}, median of {args.repeats} after {args.warmup} warm-up")
    print(f"{'T':>6} {'chunk':>6} {'SDPA ms':>9} {'GDN ms':>9} {'GDN/SDPA':>9}")
    for T in args.seq_lens:
        sdpa = median_ms(sdpa_step(B, H, T, D), args.warmup, args.repeats)
        for C in args.chunk_sizes:
            gdn = median_ms(gdn_step(B, H, T, D, C), args.warmup, args.repeats)
            print(f"{T:>6} {C:>6} {sdpa:>9.2f} {gdn:>9.2f} {gdn / sdpa:>8.2f}x")


if __name__ == "__main__":
    main()
