"""A search space's own proxies on one GPU: tokens/s per pattern, eager steps vs CUDA graphs,
and where each step's time goes.

Every model is what a sweep of the space trains: the candidate resolved and size-matched by the
space (``SearchSpace.resolve``), its batch and sequence length, bf16, compiled blocks, and the
trainer's step (``archsearch.train_step``). Modes:
- ``compiled``: the trainer's eager step (what sweeps ran so far);
- ``graphs``: the same step captured once as a CUDA graph and replayed (``training.cuda_graphs``).
Patterns default to the space's all-attention, first hybrid and all-GDN candidates; the ratio
column is each pattern's tokens/s over all attention's in the same mode.

``--profile`` prints, per pattern and mode, the GPU time of one step by kind of kernel (GDN
kernels, attention, matmuls, inductor's fused kernels, optimiser, other), the kernels launched
per step, and how busy the GPU was: kernel time / wall time of the profiled steps. A step whose
kernels add up to much less than its wall time is launch-bound: the GPU waits on the host.

    PYTHONPATH=$PWD:$PWD/kernels python benchmarks/gpu_proxy.py search_spaces/calibration.yaml \\
        --profile
    PYTHONPATH=$PWD:$PWD/kernels python benchmarks/gpu_proxy.py search_spaces/calibration.yaml \\
        --profile --modes graphs --set symbols.G.heads=6 --set symbols.G.head_dim_k=64  # 6 x 64, not 8 x 48
    PYTHONPATH=$PWD:$PWD/kernels python benchmarks/gpu_proxy.py search_spaces/gpu_flashqla.yaml \\
        --modes graphs --flash-qla both          # 128-wide GDN heads: FlashQLA vs fla's kernels
    PYTHONPATH=$PWD:$PWD/kernels python benchmarks/gpu_proxy.py search_spaces/quickstart.yaml \\
        --device cpu --modes compiled --steps 2 --warmup 1          # smoke test (CPU: eager)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_profile import profile
from gpu_throughput import (
    add_gdn_switches,
    apply_gdn_switches,
    describe_conv_blocks,
    environment,
    free_memory,
    step_times,
    sync,
)

from archsearch.model import gdn
from archsearch.model.hybrid_lm import HybridLM
from archsearch.space import SearchSpace, TrialConfig
from archsearch.space.build import hybrid_config
from archsearch.sweep.overrides import load_with_overrides
from archsearch.train_step import GraphedTrainStep, make_optimizer, train_step


def default_patterns(space: SearchSpace) -> list[str]:
    """All attention, the first hybrid, all GDN, as far as the space has them."""
    fractions = {p: space.stats(space.candidate(p)).attention_fraction
                 for p in space.pattern_choices}
    picks = [p for p in fractions if fractions[p] == 1.0][:1]
    picks += [p for p in fractions if 0 < fractions[p] < 1][:1]
    picks += [p for p in fractions if fractions[p] == 0][:1]
    return picks


def trial_of(space: SearchSpace, pattern: str) -> TrialConfig:
    """The trial a sweep of ``space`` trains for ``pattern``, written as the space lists it
    (``archsearch patterns SPACE`` lists them; ``(GGGA)*2`` may be listed as ``GGGAGGGA``)."""
    if pattern not in space.pattern_choices:
        raise SystemExit(f"pattern {pattern!r} is not one of the space's: "
                         f"{', '.join(space.pattern_choices)}")
    point = next(p for p in space.grid() if p["pattern"] == pattern) \
        if space.spec.search.algorithm == "grid" else {"pattern": pattern}
    return space.resolve(point)


def build_step(trial: TrialConfig, mode: str, device: torch.device
               ) -> tuple[HybridLM, Callable[[torch.Tensor, torch.Tensor], torch.Tensor], object]:
    torch.manual_seed(0)
    config = hybrid_config(trial, trial.data.vocab_size)
    model = HybridLM(config).to(device)
    if device.type == "cuda":
        model.compile_blocks(dynamic_width=trial.training.dynamic_mlp_width)
    graphs = mode == "graphs" and device.type == "cuda"
    optimizer = make_optimizer(model, trial.training, capturable=graphs)
    amp = torch.bfloat16 if device.type == "cuda" else None
    lr, clip = trial.training.lr, trial.training.grad_clip
    if graphs:
        graphed = GraphedTrainStep(model, optimizer, clip, amp)
        return model, lambda x, y: graphed(x, y, lr), graphed
    return model, lambda x, y: train_step(model, optimizer, x, y, lr, clip, amp), None


def measure(trial: TrialConfig, mode: str, args: argparse.Namespace, device: torch.device
            ) -> dict[str, object]:
    free_memory(device)
    batch, seq_len = trial.training.batch_size, trial.data.seq_len
    model, step_fn, graphed = build_step(trial, mode, device)
    vocab = model.config.vocab_size
    gen = torch.Generator(device="cpu").manual_seed(1)
    batches = [torch.randint(0, vocab, (batch, seq_len + 1), generator=gen).to(device)
               for _ in range(2)]
    counter = iter(range(1 << 30))

    def step() -> torch.Tensor:
        ids = batches[next(counter) % 2]
        return step_fn(ids[:, :-1], ids[:, 1:])

    began = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - began
    for _ in range(args.warmup):
        loss = step()
    sync(device)
    times = step_times(step, args.steps, device)
    loss = step()
    if not torch.isfinite(loss):
        raise RuntimeError(f"loss became {loss.item()}")
    row: dict[str, object] = {
        "pattern": trial.pattern, "mode": mode, "params": model.num_params(),
        "batch": f"{batch}x{seq_len}", "tokens_per_s": batch * seq_len / statistics.median(times),
        "first_step_s": first, "spread": (max(times) - min(times)) / statistics.median(times),
        "gdn": gdn.gdn_kernel(model.config, device, torch.bfloat16) or "-",
        "graph": "yes" if graphed is not None and graphed.replaying else
                 (f"no ({graphed.note})" if graphed is not None else "-"),
    }
    if args.profile and device.type == "cuda":
        row["profile"] = profile(step, device)
    del model
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("space")
    parser.add_argument("--patterns", nargs="+", help="default: all A, first hybrid, all G")
    parser.add_argument("--modes", nargs="+", default=["compiled", "graphs"],
                        choices=["compiled", "graphs"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=5, help="steps after the first, untimed")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of the space, as `archsearch sweep --set` does "
                             "(e.g. symbols.G.head_dim_k=64)")
    parser.add_argument("--flash-qla", choices=["on", "off", "both"],
                        help="let fla hand 128-wide GDN heads to FlashQLA, or not, or time every "
                             "pattern both ways side by side (default: as $FLA_FLASH_QLA says)")
    add_gdn_switches(parser)
    args = parser.parse_args()
    device = torch.device(args.device)
    apply_gdn_switches(args)
    space, _ = load_with_overrides(args.space, args.set)
    patterns = args.patterns or default_patterns(space)
    for pattern in patterns:  # a misspelt one stops here, before any model is timed
        trial_of(space, pattern)
    print(f"{args.space} {' '.join(args.set)}: {environment(device)}; GDN conv {args.gdn_conv}, "
          f"gates in {args.gates}, in_proj {args.in_proj}, fla input {args.pack_batch}, "
          f"fla warps {args.fla_warps}, "
          f"conv blocks {describe_conv_blocks(args)}",
          flush=True)
    rows = []
    flags = {None: [None], "on": ["1"], "off": ["0"], "both": ["1", "0"]}[args.flash_qla]
    for mode in args.modes:
        for pattern in patterns:
            for flag in flags:
                if flag is not None:  # read by fla and gdn.kernel_path at every call
                    os.environ["FLA_FLASH_QLA"] = flag
                try:
                    row = measure(trial_of(space, pattern), mode, args, device)
                except Exception as err:  # noqa: BLE001 - report and go on to the next model
                    row = {"pattern": pattern, "mode": mode,
                           "error": f"{type(err).__name__}: {err}"}
                rows.append(row)
                print(f"row: {row}", flush=True)
    header = (f"{'pattern':<12} {'mode':<9} {'params':>7} {'batch':>8} {'tokens/s':>11} "
              f"{'vs attn':>7} {'1st step':>8} {'spread':>6}  {'GDN':<8}  graph")
    print(f"\n{header}\n{'-' * len(header)}")
    for row in rows:
        if "error" in row:
            print(f"{row['pattern']:<12} {row['mode']:<9} failed: {row['error'][:200]}")
            continue
        attention = next((r["tokens_per_s"] for r in rows if "error" not in r
                          and r["mode"] == row["mode"] and r["pattern"] == patterns[0]), None)
        ratio = f"{row['tokens_per_s'] / attention:.2f}x" if attention else "-"
        print(f"{row['pattern']:<12} {row['mode']:<9} {row['params'] / 1e6:>6.1f}M "
              f"{row['batch']:>8} {row['tokens_per_s']:>11,.0f} {ratio:>7} "
              f"{row['first_step_s']:>7.1f}s {100 * row['spread']:>5.1f}%  {row['gdn']:<8}  "
              f"{row['graph']}")
    for row in rows:
        if "profile" in row:
            print(f"{row['pattern']} {row['mode']}: {row['profile']}")


if __name__ == "__main__":
    main()
