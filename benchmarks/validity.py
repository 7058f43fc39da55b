"""Set published findings about attention / linear-recurrent hybrids against a sweep's results.

    python benchmarks/validity.py sweeps/calibration          # a markdown report on stdout

For each finding (docs/VALIDITY.md says where each comes from) the sweep's patterns are picked
by their attention fraction and placement, every comparison is a difference of per-pattern means
over seeds with the pooled seed-noise t-interval (archsearch.analysis.resolution, 95%), and the
verdict is **reproduced** (the interval lies on the published side of 0), **reversed** (on the
other side) or **not resolved** (it includes 0, or the noise is unknown with one seed). A probe
whose accuracy is within noise of chance for both patterns cannot show anything: its rows say so.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd

from archsearch.analysis import columns as C
from archsearch.analysis.intervals import (
    pooled_difference_interval,
    pooled_mean_interval,
    pooled_noise,
)
from archsearch.analysis.load import load_sweep
from archsearch.analysis.pareto import full_budget


def pick(trials: pd.DataFrame, attention: float | None = None, origin: str | None = None
         ) -> str | None:
    """The pattern with this attention fraction, or made by this generator setting
    (``origin``, e.g. "3:1 even_end", as the ``origins`` column records it)."""
    rows = trials
    if attention is not None:
        rows = rows[np.isclose(rows[C.ATTENTION_FRACTION].astype(float), attention)]
    if origin is not None:
        rows = rows[rows[C.ORIGINS].astype(str).str.contains(origin, regex=False)]
    patterns = sorted(set(rows[C.PATTERN]))
    return patterns[0] if patterns else None


def compare(trials: pd.DataFrame, metric: str, a: str, b: str, lower_is_claimed: bool
            ) -> tuple[str, str]:
    """(mean(a) - mean(b) with its interval, verdict) for the claim mean(a) < mean(b)
    (``lower_is_claimed``) or mean(a) > mean(b)."""
    if metric not in trials.columns:
        return "-", f"not measured ({metric} not in the results)"
    values = {p: g[metric].astype(float).dropna().to_numpy()
              for p, g in trials.groupby(C.PATTERN)}
    noise = pooled_noise(v for v in values.values())
    va, vb = values.get(a, np.array([])), values.get(b, np.array([]))
    if not len(va) or not len(vb):
        return "-", "not measured (pattern missing)"
    d = pooled_difference_interval(float(va.mean()), len(va), float(vb.mean()), len(vb), noise)
    if not math.isfinite(d.lo):
        return f"{d.estimate:+.4f}", "not resolved (one seed: seed noise unknown)"
    text = f"{d.estimate:+.4f} [{d.lo:+.4f}, {d.hi:+.4f}]"
    if d.lo <= 0 <= d.hi:
        return text, "not resolved"
    claimed_side = d.hi < 0 if lower_is_claimed else d.lo > 0
    return text, "**reproduced**" if claimed_side else "**reversed**"


def means_table(trials: pd.DataFrame, metric: str, patterns: list[tuple[str, str]]) -> list[str]:
    values = {p: g[metric].astype(float).dropna().to_numpy() for p, g in trials.groupby(C.PATTERN)}
    noise = pooled_noise(values.values())
    lines = [f"| ratio (GDN:attention) | pattern | seeds | {metric} (95% interval) |",
             "|---|---|---|---|"]
    for label, pattern in patterns:
        v = values.get(pattern)
        if v is None or not len(v):
            continue
        m = pooled_mean_interval(float(v.mean()), len(v), noise)
        interval = f" [{m.lo:.4f}, {m.hi:.4f}]" if math.isfinite(m.lo) else ""
        lines.append(f"| {label} | `{pattern}` | {len(v)} | {m.estimate:.4f}{interval} |")
    return lines


def above_chance(trials: pd.DataFrame, metric: str, chance: str, patterns: list[str]) -> bool:
    """Whether any of ``patterns`` scores ``metric`` (an accuracy, on one split) above its chance
    level: the lower end of its mean's pooled seed-noise interval lies above chance. The
    probe's own ``informative`` flag judges all splits together, so it cannot say this for the
    longer-than-trained split alone."""
    if metric not in trials.columns or chance not in trials.columns:
        return True
    values = {p: g[metric].astype(float).dropna().to_numpy() for p, g in trials.groupby(C.PATTERN)}
    noise = pooled_noise(values.values())
    level = float(trials[chance].astype(float).max())
    for pattern in patterns:
        v = values.get(pattern)
        if v is None or not len(v):
            continue
        m = pooled_mean_interval(float(v.mean()), len(v), noise)
        if (m.lo if math.isfinite(m.lo) else m.estimate) > level:
            return True
    return False


def report(folder: str) -> str:
    sweep = load_sweep(folder)
    trials = full_budget(sweep.trials)
    if not len(trials):
        return f"{folder}: no full-budget completed trial"
    attn, gdn = pick(trials, 1.0), pick(trials, 0.0)
    # Olmo Hybrid's placement: attention spread evenly, the last layer attention
    three = pick(trials, origin="3:1 even_end") or pick(trials, 0.25)
    one = pick(trials, origin="1:1 even_end") or pick(trials, 0.5)
    seven = pick(trials, origin="7:1 even_end")
    seeds = trials.groupby(C.PATTERN).size()
    tokens = trials["tokens_seen"].median() if "tokens_seen" in trials else math.nan
    params = trials["params"].median() if "params" in trials else math.nan
    out = [f"Sweep `{sweep.path.name}`: {len(trials)} full-budget trials, {len(seeds)} patterns, "
           f"{int(seeds.min())}-{int(seeds.max())} seeds each, {tokens / 1e6:.1f}M training tokens "
           f"and about {params / 1e6:.1f}M parameters per trial. Differences are pattern a minus "
           "pattern b, means over seeds, 95% pooled seed-noise t-intervals.", ""]
    rows = []

    def add(finding: str, claim: str, metric: str, a: str | None, b: str | None,
            lower: bool, published: str, note: str = "") -> None:
        if a is None or b is None:
            rows.append(f"| {finding} | {claim} | {metric} | - | not measured (no such pattern) "
                        f"| {published} |")
            return
        text, verdict = compare(trials, metric, a, b, lower)
        rows.append(f"| {finding} | {claim}: `{a}` vs `{b}` | {metric} | {text} | {verdict}"
                    f"{note} | {published} |")

    add("Olmo Hybrid ladders", "3:1 hybrid < all GDN", "val_loss", three, gdn, True,
        "3:1 < all GDN < transformer at 60M-1B")
    add("Olmo Hybrid ladders", "all GDN < all attention", "val_loss", gdn, attn, True,
        "(same)")
    add("Olmo Hybrid token analysis", "3:1 hybrid < all attention on content words",
        "semantic_loss", three, attn, True, "hybrid gains about 0.04 nats on content words")
    add("Kimi Linear ratio ablation", "1:1 < all attention", "val_loss", one, attn, True,
        "ppl 5.66 vs 5.77")
    add("Kimi Linear ratio ablation", "3:1 < all attention", "val_loss", three, attn, True,
        "ppl 5.65 vs 5.77")
    add("Kimi Linear ratio ablation", "3:1 < 7:1", "val_loss", three, seven, True,
        "ppl 5.65 vs 5.70")
    add("Kimi Linear ratio ablation", "3:1 and 1:1 within 0.01 ppl (tied)", "val_loss", three,
        one, True, "ppl 5.65 vs 5.66: expect not resolved")
    for metric in ("copy_loss_16_plus", "copy_gain_16_plus"):
        lower = metric.startswith("copy_loss")
        add("Olmo Hybrid: transformers copy long verbatim runs better",
            "all attention better than 3:1", metric, attn, three, lower,
            "transformer better on verbatim copies, more so for long runs (7B)")
    at_chance = " (both at chance on this split: the probe cannot show it)"
    copy_ok = above_chance(trials, "probe_copy_acc_long", "probe_copy_chance", [attn, three])
    add("Repeat After Me / Olmo Hybrid", "all attention better than 3:1 on the copy probe",
        "probe_copy_acc_long", attn, three, False, "transformers copy beyond training length",
        "" if copy_ok else at_chance)
    add("Olmo Hybrid synthetic probes", "3:1 better than all attention at entity tracking",
        "probe_entity_acc", three, attn, False, "the hybrid wins pronoun memory and entity "
        "tracking (7B)")
    add("Olmo Hybrid synthetic probes", "all attention better than 3:1 at bracket matching",
        "probe_brackets_acc", attn, three, False, "the transformer wins bracket matching (7B)")
    add("Zoology", "all attention better than all GDN at associative recall", "probe_mqar_acc",
        attn, gdn, False, "attention solves MQAR; gated convolutions / fixed state do not")
    for probe in ("parity", "s5"):
        ok = above_chance(trials, f"probe_{probe}_acc_long", f"probe_{probe}_chance", [gdn, attn])
        add("Grazzi et al.: negative eigenvalues track state", f"all GDN better than all "
            f"attention on {probe} beyond trained lengths", f"probe_{probe}_acc_long", gdn, attn,
            False, "GDN with beta in [0, 2] extrapolates parity; transformers do not",
            "" if ok else at_chance)
    front_three = pick(trials, origin="3:1 front")
    front_one = pick(trials, origin="1:1 front")
    front_seven = pick(trials, origin="7:1 front")
    add("Placement matters (Nemotron-H, Jet-Nemotron)", "3:1 spread evenly < 3:1 at the front",
        "val_loss", three, front_three, True,
        "Nemotron-H spreads attention evenly, never first; learned placement beat uniform")
    add("Placement matters (Nemotron-H, Jet-Nemotron)", "1:1 spread evenly < 1:1 at the front",
        "val_loss", one, front_one, True, "(same)")
    add("Placement matters (Nemotron-H, Jet-Nemotron)", "7:1 spread evenly < 7:1 at the front",
        "val_loss", seven, front_seven, True, "(same)")
    out += ["| finding | claim | metric | a - b | verdict | published |",
            "|---|---|---|---|---|---|", *rows, ""]
    ratios = [("0:1 (all attention)", attn), ("1:1", one), ("3:1", three),
              ("7:1 (as the generator rounds it)", seven), ("all GDN", gdn)]
    out += ["Validation loss by ratio (attention spread evenly, last layer attention):", "",
            *means_table(trials, "val_loss", [(k, v) for k, v in ratios if v]), ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="a finished sweep folder (e.g. of calibration.yaml)")
    print(report(parser.parse_args().sweep))


if __name__ == "__main__":
    main()
