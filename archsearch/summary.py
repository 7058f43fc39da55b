"""Human-readable summaries of a search space: what ``validate`` and ``patterns`` print."""

from __future__ import annotations

from archsearch.space import SearchSpace


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
    r = spec.resources
    lines.append(f"resources per trial: {r.cpus:g} CPU, {r.gpus:g} GPU; storage: {spec.storage}")
    return "\n".join(lines)


def pattern_table(space: SearchSpace) -> str:
    header = f"{'pattern':<24} {'depth':>5} {'attn':>6}  origins"
    rows = [header, "-" * len(header)]
    for c in space.candidates:
        stats = space.stats(c)
        rows.append(f"{c.pattern:<24} {stats.depth:>5} {stats.attention_fraction:>6.1%}  "
                    f"{', '.join(c.origins)}")
    return "\n".join(rows)
