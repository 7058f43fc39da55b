"""Human-readable summaries of a search space: what ``validate`` and ``patterns`` print."""

from __future__ import annotations

from typing import Any

from archsearch.model.cost import cost_report
from archsearch.space import SearchSpace, TrialConfig
from archsearch.space.build import hybrid_config
from archsearch.space.distributions import Choice, first_value
from archsearch.space.match import MEASURE_LABELS, RESIZE_LABELS, RESIZED_FIELDS, format_size


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
    match = describe_match(space)
    if match:
        lines.append(match)
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
    mps = " (GPUs shared under CUDA MPS)" if r.mps else ""
    lines.append(f"resources per trial: {r.cpus:g} CPU, {r.gpus:g} GPU{mps}; "
                 f"storage: {spec.storage}")
    return "\n".join(lines)


def base_config(space: SearchSpace, pattern: str) -> TrialConfig:
    """The trial at the first value of every tuned field (first choice, low end of a range)."""
    params: dict[str, Any] = {"pattern": pattern}
    for tunable in space.relevant(pattern):
        params[tunable.name] = first_value(tunable.distribution)
    return space.resolve(params)


def describe_match(space: SearchSpace) -> str | None:
    """One line on ``model.match``: the target, how candidates are resized, how close they land."""
    rule = space.spec.model.match
    if rule is None:
        return None
    results = [r for r in (base_config(space, c.pattern).match for c in space.candidates) if r]
    first = results[0]
    values = [r.value for r in results if r.value is not None]
    span = f", {first.field} {min(values)}..{max(values)}" if values else ""
    reference = (f"the size of {first.reference}" if first.reference != format_size(
        first.target, rule.measure) else "a fixed size")
    worst = max(abs(r.deviation) for r in results)
    return (f"match: {MEASURE_LABELS[rule.measure]} of {format_size(first.target, rule.measure)} "
            f"({reference}), resizing {RESIZE_LABELS[rule.resize]}{span}; every candidate within "
            f"{worst:.2%} (tolerance {rule.tolerance:.2%})")


def pattern_table(space: SearchSpace) -> str:
    """One row per distinct candidate: shape and the cost-model figures (and, when the space
    matches sizes, the resized field's value and the deviation from the target)."""
    seq_len = space.spec.data.seq_len
    seq_len = seq_len.values[0] if isinstance(seq_len, Choice) else getattr(seq_len, "low", seq_len)
    rule = space.spec.model.match
    trials = [base_config(space, c.pattern) for c in space.candidates]
    resized = _resized_cells(trials)
    width = max([len(r) for r in resized] + [len(RESIZED_FIELDS[rule.resize])]) if rule else 0
    matched = (f" {RESIZED_FIELDS[rule.resize]:>{width}} {'vs target':>9}" if rule else "")
    header = (f"{'pattern':<22} {'depth':>5} {'attn':>6} {'params':>15} {'non-emb params':>15} "
              f"{'train FLOP/tok':>14} {'infer mem':>10}{matched}  origins")
    rows = [header, "-" * len(header)]
    for c, trial, cell in zip(space.candidates, trials, resized, strict=True):
        stats = space.stats(c)
        cost = cost_report(hybrid_config(trial), seq_len)
        match = trial.match
        matched = (f" {cell:>{width}} {match.deviation:>+9.2%}" if match else "")
        origins = [*c.origins, *(["reference"] if match and match.reference == c.pattern else [])]
        rows.append(
            f"{c.pattern:<22} {stats.depth:>5} {stats.attention_fraction:>6.1%} "
            f"{cost.params:>15,} {cost.non_embedding_params:>15,} "
            f"{cost.train_flops_per_token:>14.3g} {_bytes(cost.inference_memory_bytes):>10}"
            f"{matched}  {', '.join(origins)}"
        )
    note = (f"costs at sequence length {seq_len} (inference memory: KV cache + recurrent state of "
            "one sequence at that context, 2-byte values)")
    if space.tunables:
        note += "; tuned fields at their first choice or lowest value"
    notes = [note]
    if rule is not None:
        first = next(t.match for t in trials if t.match)
        notes.append(
            f"matched on {MEASURE_LABELS[rule.measure]}: target {format_size(first.target, rule.measure)}"
            f" ({_reference_note(first.reference, first.target, rule.measure)}), tolerance "
            f"{rule.tolerance:.2%}; {RESIZED_FIELDS[rule.resize]}: unresized -> matched value; "
            f"vs target: (size - target) / target")
    return "\n".join([*rows, "", *notes])


def _resized_cells(trials: list[TrialConfig]) -> list[str]:
    cells = []
    for trial in trials:
        match = trial.match
        if match is None:
            cells.append("")
        elif match.value is None:
            cells.append("-")  # nothing to resize in this stack
        elif match.value == match.natural:
            cells.append(f"{match.value}")
        else:
            cells.append(f"{match.natural}->{match.value}")
    return cells


def _reference_note(reference: str, target: float, measure: str) -> str:
    if reference == format_size(target, measure):
        return "a fixed size"
    return f"{reference} at its own size"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")
