"""Where a training step's GPU time goes: kernels grouped by kind (GDN kernels, attention,
matmuls, inductor's fused kernels, optimiser, other), shared by the GPU benchmarks' --profile."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import torch

# substrings of kernel names, first match wins (lower-cased); GDN before matmul: fla's kernels
# have "chunk" / "fwd" in their names; TileLang names its kernels "main_kernel" or, for fla's GDN
# backward kernel under Triton 3.6, "kernel_kernel"; "_conv_" is our Triton short conv; "qla"
# and "gdn" catch FlashQLA's kernels before "flash" would count them as attention
KERNEL_KINDS = (
    ("GDN (fla / TileLang)", ("qla", "gdn", "chunk", "gated_delta", "wy_", "solve_tril", "kkt",
                              "l2norm", "causal_conv", "fused_recurrent", "tilelang",
                              "main_kernel", "recompute_w_u", "prepare_wy", "kernel_kernel",
                              "_conv_")),
    ("attention", ("flash", "fmha", "cudnn", "sdpa", "attention", "attn")),
    ("matmul", ("gemm", "nvjet", "xmma", "cutlass", "cublas", "sm90_", "matmul")),
    ("optimizer", ("adam", "multi_tensor", "foreach")),
    ("inductor fused", ("triton_",)),
)


TOP_KERNELS = 24  # kernels listed per profile, largest GPU time first
TOP_OTHER = 6  # then the largest uncategorised ("other") kernels not among those


def kind_of(kernel: str) -> str:
    name = kernel.lower()
    for kind, keys in KERNEL_KINDS:
        if any(k in name for k in keys):
            return kind
    return "other"


def _kernels(step: Callable[[], object], device: torch.device, steps: int
             ) -> tuple[list[tuple[str, float]], float]:
    """(kernel name, ms) of every kernel ``steps`` calls of ``step`` ran, and the wall ms a call."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.cuda.synchronize(device)
    began = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize(device)
    wall_ms = 1e3 * (time.perf_counter() - began) / steps
    return [(event.name, event.device_time / 1e3) for event in prof.events()
            if event.device_type == torch.autograd.DeviceType.CUDA], wall_ms


def kernel_ms(step: Callable[[], object], device: torch.device, steps: int = 5) -> float:
    """GPU time of one call of ``step``: its kernels' durations summed, launch gaps left out (a
    wall-clock time per call also counts the host's work when the GPU waits for it)."""
    kernels, _ = _kernels(step, device, steps)
    return sum(ms for _, ms in kernels) / steps


def profile(step: Callable[[], object], device: torch.device, steps: int = 3) -> str:
    """GPU time per step by kind of kernel, kernels per step, and the GPU's busy fraction."""
    events, wall_ms = _kernels(step, device, steps)
    per_kind: dict[str, float] = defaultdict(float)
    per_kernel: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    kernels = 0
    for name, total_ms in events:
        kernels += 1
        ms = total_ms / steps  # per step
        per_kind[kind_of(name)] += ms
        entry = per_kernel[(kind_of(name), name[:60])]
        entry[0] += ms
        entry[1] += 1 / steps
    busy = sum(per_kind.values())
    parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_kind.items(), key=lambda kv: -kv[1]))
    # the largest kernels outside matmuls and attention: where launches and copies pile up
    top = sorted(((v[0], v[1], kind, name) for (kind, name), v in per_kernel.items()
                  if kind in ("other", "GDN (fla / TileLang)", "inductor fused")), reverse=True)
    # and the largest "other" ones below that cut: uncategorised copies, casts, fills and
    # reductions (the hybrid's "other" is 1.2 ms a step above all attention's at 12 x 512)
    shown = top[:TOP_KERNELS] + [row for row in top[TOP_KERNELS:]
                                 if row[2] == "other"][:TOP_OTHER]
    lines = "".join(f"\n    {ms:6.2f} ms {count:5.0f}x  {kind:<20} {name}"
                    for ms, count, kind, name in shown)
    return (f"ms/step on the GPU: {parts}; total {busy:.2f} of {wall_ms:.2f} wall "
            f"({100 * busy / wall_ms:.0f}% busy), {kernels / steps:.0f} kernels/step{lines}")
