"""CPU training throughput: archsearch's HybridLM vs transformers' OlmoHybrid (torch path).

Both models are built from one HybridConfig with identical weights (exported through
``archsearch.export.hf``), their logits are checked to agree, then each runs the same training
step (forward, cross entropy, backward, AdamW, fp32) on the same batches. Timings alternate
between the two models so that machine noise hits both alike; the median step time is reported.

    PYTHONPATH=kernels:. .venv/bin/python benchmarks/bench_cpu_train.py [--steps 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from archsearch.export.hf import hf_config, to_hf_state_dict
from archsearch.model.config import AttentionSpec, GDNSpec, HybridConfig
from archsearch.model.hybrid_lm import HybridLM

TARGET_RATIO = 3.0


def quickstart_config(scale: int = 1) -> HybridConfig:
    """The quickstart proxy (scale 1) and its 4x-parameter sibling (scale 2: twice the width)."""
    heads = 4 * scale
    return HybridConfig.from_pattern(
        "GGGAGGGA",
        vocab_size=1024,
        d_model=128 * scale,
        mlp_hidden=352 * scale,
        attention=AttentionSpec(heads=heads, kv_heads=heads, head_dim=32),
        gdn=GDNSpec(heads=heads, v_heads=heads, head_dim_k=32, head_dim_v=64),
    )


def transformers_twin(model: HybridLM) -> torch.nn.Module:
    """transformers' OlmoHybridForCausalLM with our weights, forced onto its pure-torch kernels."""
    import transformers.models.olmo_hybrid.modeling_olmo_hybrid as modeling
    from transformers import OlmoHybridForCausalLM

    # transformers binds fla / causal-conv1d at import when they import (fla even on CPU, where
    # it then fails); the wrappers' __wrapped__ chain ends at the torch reference implementation.
    for name in (
        "torch_chunk_gated_delta_rule",
        "torch_recurrent_gated_delta_rule",
        "causal_conv1d_fn",
        "causal_conv1d_update",
    ):
        setattr(modeling, name, inspect.unwrap(getattr(modeling, name)))
    config = hf_config(model.config)
    config._attn_implementation = "sdpa"
    twin = OlmoHybridForCausalLM(config)
    twin.load_state_dict(to_hf_state_dict(model), strict=True)
    return twin


def train_step_fn(
    model: torch.nn.Module, ours: bool
) -> Callable[[torch.Tensor, torch.Tensor], float]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> float:
        start = time.perf_counter()
        if ours:
            loss = model.loss(inputs, targets)
        else:
            logits = model(input_ids=inputs, use_cache=False).logits
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    return step


def bench(
    name: str,
    config: HybridConfig,
    batch: int,
    seq: int,
    steps: int,
    warmup: int,
    profile: bool = False,
) -> dict:
    torch.manual_seed(0)
    ours = HybridLM(config)
    theirs = transformers_twin(ours)
    tokens = torch.randint(0, config.vocab_size, (batch, seq + 1))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    with torch.no_grad():
        diff = (
            (ours(inputs[:2]) - theirs(input_ids=inputs[:2], use_cache=False).logits)
            .abs()
            .max()
            .item()
        )
    if diff > 1e-4:
        raise SystemExit(f"{name}: logits disagree with transformers (max abs diff {diff:.2e})")
    steps_fn = {
        "archsearch": train_step_fn(ours, True),
        "transformers": train_step_fn(theirs, False),
    }
    times: dict[str, list[float]] = {key: [] for key in steps_fn}
    for i in range(warmup + steps):
        for key, fn in steps_fn.items():  # alternate, so noise hits both
            elapsed = fn(inputs, targets)
            if i >= warmup:
                times[key].append(elapsed)
    tok = batch * seq
    result = {key: tok / statistics.median(values) for key, values in times.items()}
    if profile:
        for key, fn in steps_fn.items():
            print_profile(f"{name} / {key}", fn, inputs, targets)
    return {"name": name, "params": ours.num_params(), "diff": diff, **result}


def print_profile(
    title: str,
    step: Callable[[torch.Tensor, torch.Tensor], float],
    inputs: torch.Tensor,
    targets: torch.Tensor,
) -> None:
    """One profiled training step: top ops by self time, and the share spent in dense GEMMs
    (the part both implementations share, which bounds any speed-up)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(inputs, targets)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    gemm = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm"))
    print(
        f"\n== {title}: {total / 1e3:.0f} ms profiled, {100 * gemm / total:.0f}% in aten::mm/addmm"
    )
    print(events.table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=48))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument(
        "--profile", action="store_true", help="also profile one step of each model"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [
        bench(
            "quickstart d128",
            quickstart_config(1),
            args.batch,
            args.seq,
            args.steps,
            args.warmup,
            args.profile,
        ),
        bench(
            "4x d256",
            quickstart_config(2),
            args.batch,
            args.seq,
            args.steps,
            args.warmup,
            args.profile,
        ),
    ]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch} x seq {args.seq}, "
        f"fp32, fwd+bwd+AdamW, median of {args.steps} steps"
    )
    header = f"{'model':<16} {'params':>10} {'archsearch tok/s':>17} {'transformers tok/s':>19} {'ratio':>7} {'logit diff':>11}"
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = r["archsearch"] / r["transformers"]
        flag = "" if ratio >= TARGET_RATIO else f"  (< {TARGET_RATIO:.0f}x target)"
        print(
            f"{r['name']:<16} {r['params']:>10,} {r['archsearch']:>17,.0f} {r['transformers']:>19,.0f} "
            f"{ratio:>6.2f}x {r['diff']:>11.1e}{flag}"
        )


if __name__ == "__main__":
    main()
