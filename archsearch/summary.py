"""Human-readable summaries of a search space: what ``validate`` and ``patterns`` print."""

from __future__ import annotations

from typing import Any

from archsearch.model.cost import cost_report
from archsearch.space import SearchSpace, TrialConfig
from archsearch.space.build import hybrid_config
from archsearch.space.distributions import Choice


def describe_space(space: SearchSpace) -> str:
    spec = space.spec
    lines = [f"{space.file}: valid search space '{spec.name}'"]
    if spec.description:
        lines.append(f"  {spec.description.strip()}")
    lines.append(f"patterns: {len(space.candidates)} distinct candidates")
    for c in space.candidates[:12]:
        stats = space.stats(c)
        lines.append(f"  {c.pattern:<24} depth {stats.depth:>3}  attention "
                     f"{stats.attention_fraction:5.1%}  ({', '.join(c.origins)})")
    if len(space.candidates) > 12:
        lines.append(f"  ... and {len(space.candidates) - 12} more (archsearch patterns lists all)")
    if space.tunables:
        lines.append(f"parameters: {len(space.tunables)} tuned besides the pattern")
        for t in space.tunables:
            when = f"  (when the pattern has {t.symbol})" if t.symbol else ""
            lines.append(f"  {t.name:<28} {t.distribution}{when}")
    else:
        lines.append("parameters: only the pattern is searched")
    if spec.search.algorithm == "grid":
        lines.append(f"grid: {len(space.grid())} points")
    objectives = ", ".join(f"{o.metric} ({o.mode})" for o in spec.objectives)
    lines.append(f"objectives: {objectives}")
    s = spec.search
    asha = (f"ASHA on {s.asha.metric} ({s.asha.mode}), grace {s.asha.grace_period}, "
            f"reduction {s.asha.reduction_factor:g}") if s.asha else "no early stopping"
    lines.append(f"search: {s.algorithm}, {s.samples} trials, {s.concurrency} at a time, "
                 f"seed {s.seed}, {asha}, {s.max_failures} retries")
    t, d = spec.training, spec.data
    lines.append(f"training: {t.tokens} tokens per trial, batch {t.batch_size} x {d.seq_len} "
                 f"tokens, lr {t.lr}, precision {t.precision}")
    lines.append(f"data: {d.corpus}, tokenizer {d.tokenizer}, probes {', '.join(map(str, d.probes))}"
                 if isinstance(d.probes, list) else f"data: {d.corpus}")
    if spec.ladder is not None:
        sizes = ", ".join(f"{int(r['depth'])}x{int(r['d_model'])}" for r in spec.ladder.rungs
                          if "depth" in r and "d_model" in r)
        lines.append(f"ladder (archsearch scale): {len(spec.ladder.rungs)} rungs ({sizes}), "
                     f"seeds {spec.ladder.seeds}, {spec.ladder.tokens_per_param:g} tokens per "
                     f"parameter")
    r = spec.resources
    lines.append(f"resources per trial: {r.cpus:g} CPU, {r.gpus:g} GPU; storage: {spec.storage}")
    return "\n".join(lines)


def base_config(space: SearchSpace, pattern: str) -> TrialConfig:
    """The trial at the first value of every tuned field (first choice, low end of a range)."""
    params: dict[str, Any] = {"pattern": pattern}
    for tunable in space.relevant(pattern):
        dist = tunable.distribution
        params[tunable.name] = dist.values[0] if isinstance(dist, Choice) else dist.low
    return space.resolve(params)


def pattern_table(space: SearchSpace) -> str:
    """One row per distinct candidate: shape and the cost-model figures."""
    seq_len = space.spec.data.seq_len
    seq_len = seq_len.values[0] if isinstance(seq_len, Choice) else getattr(seq_len, "low", seq_len)
    header = (f"{'pattern':<22} {'depth':>5} {'attn':>6} {'params':>15} {'non-emb params':>15} "
              f"{'train FLOP/tok':>14} {'infer mem':>10}  origins")
    rows = [header, "-" * len(header)]
    for c in space.candidates:
        stats = space.stats(c)
        cost = cost_report(hybrid_config(base_config(space, c.pattern)), seq_len)
        rows.append(
            f"{c.pattern:<22} {stats.depth:>5} {stats.attention_fraction:>6.1%} "
            f"{cost.params:>15,} {cost.non_embedding_params:>15,} "
            f"{cost.train_flops_per_token:>14.3g} {_bytes(cost.inference_memory_bytes):>10}  "
            f"{', '.join(c.origins)}"
        )
    note = (f"costs at sequence length {seq_len} (inference memory: KV cache + recurrent state of "
            "one sequence at that context, 2-byte values)")
    if space.tunables:
        note += "; tuned fields at their first choice or lowest value"
    return "\n".join([*rows, "", note])


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
