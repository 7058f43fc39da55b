"""The report's sections, each built from the loaded sweep: HTML text with inline SVG plots."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import pandas as pd

from archsearch import analysis as A
from archsearch.analysis import columns as C
from archsearch.analysis import plots
from archsearch.errors import ArchsearchError
from archsearch.metrics import COPY_EMERGED_NATS
from archsearch.report.figures import svg
from archsearch.report.format import esc, metric_value, number, table, with_interval
from archsearch.report.page import Section, plot
from archsearch.space.schema import Objective

_MAX_TABLE_ROWS = 25
_MAX_ERROR_CHARS = 600


@dataclass(frozen=True)
class Context:
    """Everything the sections share, computed once."""

    sweep: A.Sweep
    objectives: list[Objective]
    colors: dict[str, tuple[float, ...]]
    recommendation: A.PatternRanking | None  # None when no trial completed its budget
    reference: str | None


def summary(ctx: Context) -> Section:
    sweep, trials = ctx.sweep, ctx.sweep.trials
    facts: list[tuple[str, str]] = [("sweep folder", f"<code>{esc(sweep.path)}</code>")]
    space = sweep.space
    if space is not None:
        spec = space.spec
        facts.append(("search space", f"<b>{esc(spec.name)}</b> {esc(spec.description.strip())}"))
        shown = ", ".join(f"<code>{esc(c.pattern)}</code>" for c in space.candidates[:16])
        more = " …" if len(space.candidates) > 16 else ""
        facts.append(("candidate patterns", f"{len(space.candidates)}: {shown}{more}"))
        s = spec.search
        asha = (f"; ASHA on {esc(s.asha.metric)} (grace {s.asha.grace_period}, reduction "
                f"{s.asha.reduction_factor:g})" if s.asha else "; no early stopping")
        facts.append(("search", (f"{esc(s.algorithm)}, {s.samples} trials, {s.concurrency} at "
                                 f"a time, seed {s.seed}{asha}")))
        t, d = spec.training, spec.data
        facts.append(("budget per trial", (f"{esc(t.tokens)} tokens (batch "
                                           f"{esc(t.batch_size)} × {esc(d.seq_len)} tokens)")))
    else:
        facts.append(("search space", "no space file in the sweep folder"))
    facts.append(("objectives", ", ".join(f"{esc(o.metric)} ({esc(o.mode)})"
                                          for o in ctx.objectives)))
    if C.TOKENS_SEEN in trials:
        facts.append(("tokens trained", f"{trials[C.TOKENS_SEEN].fillna(0).sum():,.0f} in all"))
    if C.WALL_TIME in trials:
        facts.append(("trial time", f"{trials[C.WALL_TIME].fillna(0).sum() / 60:.1f} min in all"))
    for column in sorted(c for c in trials.columns if str(c).startswith("version.")) + ["host"]:
        if column in trials:
            values = sorted(map(str, trials[column].dropna().unique()))
            facts.append((column, esc(", ".join(values))))
    dl = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in facts)
    counts = _status_counts(trials)
    body = (f'<dl class="facts">{dl}</dl><h3>Trials by status</h3>'
            + table(counts, [("status", lambda r: esc(r["status"])),
                             ("trials", lambda r: str(r["trials"])),
                             ("meaning", lambda r: esc(r["meaning"]))]))
    return Section("summary", "Summary", body)


def _status_counts(trials: pd.DataFrame) -> pd.DataFrame:
    meaning = {C.COMPLETED: "ran to the end of its budget", C.STOPPED: "stopped early by ASHA",
               C.FAILED: "raised an error (see below)", C.RUNNING: "still training"}
    counts = trials[C.STATUS].value_counts() if C.STATUS in trials else pd.Series(dtype=int)
    full = len(A.full_budget(trials))
    rows = [{"status": s, "trials": int(n), "meaning": meaning.get(s, "")} for s, n in counts.items()]
    rows.append({"status": "full budget", "trials": full,
                 "meaning": "completed at fidelity 1.0: the trials every front and table uses"})
    return pd.DataFrame(rows)


def recommendation(ctx: Context) -> str:
    """The box at the top: a recommended pattern only when the seeds resolve it; otherwise the
    patterns that cannot be told apart, and what to run next."""
    rec = ctx.recommendation
    if rec is None:
        return ('<div class="pick">No recommendation: no trial completed its full budget with '
                "every objective.</div>")
    res = rec.resolution
    assert res is not None
    weights = ", ".join(f"{esc(m)} {w:.2f}" for m, w in rec.weights.items())
    score_line = (f"weights: {weights}; each objective's per-pattern mean is min-max normalised "
                  f"across the {len(rec.table)} patterns, 0 = best, 1 = worst")
    if rec.resolved:
        lines = [('<div class="pick"><div>Recommended pattern</div>'
                  f'<div class="pattern">{esc(rec.pattern)}</div><ul>'),
                 f"<li>Best weighted score {rec.score:.3f} ({score_line}).</li>",
                 (f"<li>{esc(A.statement(res, 'the weighted score'))}; every other pattern is "
                 f"behind too ({esc(A.noise_note(res))}).</li>")]
    elif len(rec.table) < 2:
        lines = [('<div class="pick"><div>Only one pattern</div>'
                  f'<div class="pattern">{esc(rec.pattern)}</div><ul>'),
                 "<li>Only one pattern completed its budget: nothing to compare with.</li>"]
    else:
        title = ("Not resolved at this size" if res.noise.known
                 else "Not resolved: one seed per pattern")
        tied = " · ".join(esc(p) for p in rec.tied)
        lines = [(f'<div class="pick" style="{_UNRESOLVED_STYLE}"><div>{title}: no winner'
                  f'</div><div class="pattern">{tied}</div><ul>'),
                 f"<li>{esc(rec.statement())}.</li>",
                 (f"<li>Best measured weighted score: <code>{esc(rec.pattern)}</code>, "
                  f"{rec.score:.3f} ({score_line}).</li>")]
    if rec.runner_up is not None:
        margin = rec.margin_interval
        behind = A.with_interval(margin) if margin is not None else f"{rec.margin:.3f}"
        diffs = "; ".join(f"{esc(m)} {_signed_interval(rec.difference_intervals[m], m)}"
                          for m in rec.differences)
        lines.append(f"<li>Runner-up <code>{esc(rec.runner_up)}</code>, {behind} behind on the "
                     f"score. Runner-up minus best: {diffs}.</li>")
        if res.noise.known and len(ctx.objectives) > 1:
            lines += [f"<li>On {esc(m)} alone: {esc(A.statement(r, advice=False))}.</li>"
                      for m, r in rec.by_objective.items()]
    if rec.knee is not None:
        same = " (the same pattern)" if rec.knee == rec.pattern else ""
        lines.append(f"<li>Knee of the Pareto front: <code>{esc(rec.knee)}</code>{same}, the "
                     "front point farthest from the line through the front's extremes.</li>")
    which = "recommended" if rec.resolved else "best-measured"
    lines.append(f"<li>The {which} pattern is {'on' if rec.on_front else 'not on'} the Pareto "
                 "front of the objectives.</li></ul></div>")
    return "".join(lines)


# An amber box: the same layout as a recommendation, but it must not read as one.
_UNRESOLVED_STYLE = "background: #fff6e5; border-left-color: #b26a00"


def _signed_interval(interval: A.Interval, metric: str) -> str:
    if metric in C.COST:
        return f"{interval.estimate:+.3g}"
    return A.with_interval(interval, signed=True)


def fronts(ctx: Context) -> Section:
    trials = ctx.sweep.trials
    means = A.by_pattern(trials)
    if not len(means):
        return Section("fronts", "Pareto fronts", "<p>No trial completed its full budget.</p>")
    parts = []
    pairs = list(itertools.combinations(ctx.objectives, 2))
    names = {(a.metric, b.metric) for a, b in pairs}
    if {"semantic_loss", "copy_loss"} <= set(means.columns) and not (
            ("semantic_loss", "copy_loss") in names or ("copy_loss", "semantic_loss") in names):
        pairs.insert(0, (Objective("semantic_loss"), Objective("copy_loss")))
    for i, (x, y) in enumerate(pairs[:3]):
        if x.metric not in means or y.metric not in means:
            continue
        volume = A.hypervolume(trials, [x, y])
        drawing = svg(f"front-{i}", [partial(plots.plot_front, table=means, x=x, y=y,
                                             colors=ctx.colors)])
        parts.append(plot(f"front-{i}", drawing,
                          f"{esc(y.metric)} against {esc(x.metric)}: per-pattern means with 95% "
                          "intervals; the front's patterns are outlined. Hypervolume of the "
                          f"trials' front: {volume:.4g} (reference: each objective's worst value "
                          "plus 10% of its range)."))
    quality = next((o for o in ctx.objectives if o.metric not in C.COST and o.metric in means),
                   None)
    costs = [c for c in ("params", "train_flops_per_token", "inference_bytes") if c in means]
    if quality is not None and costs:
        drawing = svg("cost", [partial(plots.plot_front, table=means, x=Objective(c), y=quality,
                                       colors=ctx.colors) for c in costs], width=5.0)
        parts.append(plot("cost", drawing, f"{esc(quality.metric)} against cost: parameters, "
                                            "training FLOPs per token, inference memory (a log "
                                            "axis when costs span more than a decade). The "
                                            "dashed line is each pair's front."))
    return Section("fronts", "Pareto fronts", "".join(parts) or "<p>No objective pair to plot.</p>")


def top_patterns(ctx: Context) -> Section:
    rec = ctx.recommendation
    if rec is None:
        return Section("patterns", "Top patterns", "<p>No trial completed its full budget.</p>")
    res = rec.resolution
    assert res is not None
    scored = rec.table.copy()
    ranks = A.pareto_ranks(scored, ctx.objectives)
    scored["front"] = ranks.reindex(scored.index)
    cells = [("rank", lambda r: str(int(r["rank"]))),
             ("pattern", lambda r: f'<code>{esc(r[C.PATTERN])}</code>'),
             ("seeds", lambda r: str(int(r["n"])))]
    for o in ctx.objectives:
        cells.append((f"{o.metric} ({o.mode})", partial(_ranked_cell, metric=o.metric)))
    cells.append(("score", partial(_ranked_cell, metric="score")))
    cells.append(("score − best", _versus_best_cell))
    cells.append(("Pareto rank", lambda r: number(r["front"], 0)))
    if C.ATTENTION_FRACTION in scored:
        cells.append(("attention", lambda r: f"{float(r[C.ATTENTION_FRACTION]):.0%}"))
    extra = A.by_pattern(ctx.sweep.trials, [c for c in C.COST if c in ctx.sweep.trials])
    scored = scored.merge(extra[[C.PATTERN, *[c for c in C.COST if c in extra]]],
                          on=C.PATTERN, how="left", suffixes=("", "_cost"))
    for cost in ("params", "inference_bytes"):
        if cost in scored:
            cells.append((C.COST_LABELS[cost], partial(_cost_cell, metric=cost)))
    shown = scored.head(_MAX_TABLE_ROWS)
    note = (f"<p>{len(scored) - len(shown)} more patterns not shown.</p>"
            if len(scored) > len(shown) else "")
    if res.noise.known:
        how = (f"Full-budget trials, one row per pattern: {esc(A.noise_note(res))}. Each "
               "objective and the score carry a mark: <b>best</b>; <b>tied</b>, the interval of "
               "its difference from the best includes 0, so the seeds cannot tell it apart from "
               "the best; <b>behind</b>, the interval excludes 0.")
    else:
        how = ("Per-pattern values of full-budget trials. Every pattern ran one seed, so the "
               "seed-to-seed noise is unknown and this order may be noise: the intervals are "
               "each trial's evaluation bootstrap, which measures validation sampling only, not "
               "how much another seed would move the result.")
    return Section("patterns", "Top patterns",
                   f"<p>{how} Ranked by the weighted score; "
                   f"{esc(A.statement(res, 'the weighted score'))}.</p>"
                   + table(shown, cells) + note)


def _interval_cell(row: pd.Series, metric: str) -> str:
    return with_interval(row, metric)


def _ranked_cell(row: pd.Series, metric: str) -> str:
    """The mean with its interval and, when the seeds measure noise, best / tied / behind."""
    text = with_interval(row, metric)
    status = row.get(f"{metric}_status")
    if status in (A.BEST, A.TIED, A.BEHIND):
        text += f" <b>{esc(status)}</b>"
    return text


def _versus_best_cell(row: pd.Series) -> str:
    if row.get("score_status") == A.BEST:
        return "–"
    interval = A.Interval(float(row["score_vs_best"]), float(row["score_vs_best_lo"]),
                          float(row["score_vs_best_hi"]), int(row["n"]))
    return esc(A.with_interval(interval, signed=True))


def _cost_cell(row: pd.Series, metric: str) -> str:
    return metric_value(metric, row.get(metric))


def categories(ctx: Context) -> Section:
    trials = ctx.sweep.trials
    if not len(A.full_budget(trials)):
        return Section("categories", "Per-category loss gaps",
                       "<p>No trial completed its full budget.</p>")
    if ctx.reference is None:
        return Section("categories", "Per-category loss gaps",
                       "<p>No all-attention pattern completed its budget, so there is no reference"
                       " to compare against: run <code>archsearch report --reference PATTERN"
                       "</code>.</p>")
    gaps = A.category_gaps(trials, ctx.reference)
    runs = A.copy_run_gaps(trials, ctx.reference)
    parts = [(f"<p>gap = loss(<code>{esc(ctx.reference)}</code>) − loss(pattern) per token "
              "category, with 95% intervals: positive means the pattern predicts that category "
              "better than the reference (Ai2's Olmo Hybrid analysis: the hybrid gains most on "
              "content words, least on tokens continuing a verbatim copy).</p>")]
    if len(gaps):
        parts.append(plot("categories", svg("categories", [partial(
            plots.plot_gaps, gaps=gaps, colors=ctx.colors)], width=11, height=4.4),
            "Per-category gap against the reference."))
    if len(runs):
        parts.append(plot("copy-runs", svg("copy-runs", [partial(
            plots.plot_gaps, gaps=runs, colors=ctx.colors,
            title=f"copy-token gap against {ctx.reference} by run length")], width=8, height=4),
            "Gap on copy tokens by the length of the verbatim run they continue."))
    if len(parts) == 1:
        parts.append("<p>Only the reference pattern completed its budget.</p>")
    return Section("categories", "Per-category loss gaps", "".join(parts))


_PROBE_ACC = re.compile(r"^probe_(.+)_acc$")


def probe_names(columns: Sequence[object]) -> list[str]:
    """Probes with an accuracy column (``probe_<name>_acc``), in column order."""
    return [m[1] for c in columns if (m := _PROBE_ACC.match(str(c))) and m[1] != "mean"]


def probes(ctx: Context) -> Section | None:
    """Probe accuracies per pattern against each probe's chance level; None without probes.

    A pattern's cell is marked "≈ chance" when its 95% interval reaches down to chance; a probe
    on which every pattern is at chance is marked uninformative: it tells no pattern apart.
    """
    trials = ctx.sweep.trials
    names = probe_names(trials.columns)
    if not names:
        return None
    done = A.full_budget(trials)
    if not len(done):
        return Section("probes", "Probes", "<p>No trial completed its full budget.</p>")
    accs = [f"probe_{n}_{k}" for n in names for k in ("acc", "acc_in", "acc_long")]
    means = A.by_pattern(trials, [c for c in accs if c in trials.columns])
    chance = {n: _chance(done, n) for n in names}
    at_chance = {n: [_at_chance(row, n, chance[n]) for _, row in means.iterrows()] for n in names}
    verdicts = pd.DataFrame([_verdict(n, chance[n], at_chance[n]) for n in names])
    verdict = table(verdicts, [
        ("probe", lambda r: f"<code>{esc(r['probe'])}</code>"),
        ("chance", lambda r: number(r["chance"], 3)),
        ("patterns above chance", lambda r: f"{r['above']} of {r['patterns']}"),
        ("verdict", lambda r: ('<span class="uninformative">uninformative: at chance for every '
                               "pattern</span>") if r["uninformative"] else "informative")])
    cells = [("pattern", lambda r: f"<code>{esc(r[C.PATTERN])}</code>"),
             ("trials", lambda r: str(int(r["n"])))]
    for n in names:
        cells.append((n, partial(_probe_cell, name=n, chance=chance[n])))
    rows = table(means, cells)
    intro = ("<p>Each probe fine-tunes a copy of every trained proxy for a fixed small budget "
             "(<code>evaluation.probe_steps</code>) and is scored on held-out instances: "
             "accuracy over all of them with its 95% interval, then at training lengths "
             "(<i>in</i>) and beyond them (<i>long</i>). Chance is one over the number of possible "
             "answers, what guessing scores. A cell marked <i>≈ chance</i> has an interval "
             "that reaches down to chance; a probe at chance for every pattern is "
             "uninformative: it separates nothing here.</p>")
    return Section("probes", "Probes", intro + verdict + rows)


def _verdict(name: str, chance: float, at_chance: list[bool | None]) -> dict[str, object]:
    known = [f for f in at_chance if f is not None]
    return {"probe": name, "chance": chance, "above": sum(not f for f in known),
            "patterns": len(known), "uninformative": bool(known) and all(known)}


def _chance(done: pd.DataFrame, name: str) -> float:
    column = f"probe_{name}_chance"
    if column not in done:
        return float("nan")
    values = done[column].astype(float)
    return float(values.mean()) if values.notna().any() else float("nan")


def _at_chance(row: pd.Series, name: str, chance: float) -> bool | None:
    """Whether the pattern's accuracy interval reaches down to chance (None: unknown)."""
    lo = row.get(C.lower(f"probe_{name}_acc"))
    try:
        lo, chance = float(lo), float(chance)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(lo) and math.isfinite(chance)):
        return None
    return lo <= chance


def _probe_cell(row: pd.Series, name: str, chance: float) -> str:
    metric = f"probe_{name}_acc"
    text = with_interval(row, metric)
    splits = [f"{split} {number(row.get(f'{metric}_{split}'), 2)}" for split in ("in", "long")
              if _finite_value(row.get(f"{metric}_{split}"))]
    if splits:
        text += f'<br><span class="ci">{" · ".join(splits)}</span>'
    if _at_chance(row, name, chance):
        text += ' <span class="uninformative">≈ chance</span>'
    return text


def _finite_value(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def curves(ctx: Context) -> Section:
    data, trials = ctx.sweep.curves, ctx.sweep.trials
    metrics = [o.metric for o in ctx.objectives if o.metric in data.columns and o.metric not in C.COST]
    if "val_loss" in data.columns and "val_loss" not in metrics:
        metrics.append("val_loss")
    if not len(data) or not metrics:
        return Section("curves", "Learning curves", "<p>The sweep wrote no learning curves.</p>")
    drawing = svg("curves", [partial(plots.plot_curves, curves=data, trials=trials, metric=m,
                                     colors=ctx.colors) for m in metrics[:3]], width=5.0)
    return Section("curves", "Learning curves", plot(
        "curves", drawing, "Every trial's evaluations against tokens seen, coloured by pattern "
                           "(stopped and failed trials included, up to where they ended)."))


def copying(ctx: Context) -> Section:
    """Whether each pattern copies yet: copy_gain with intervals, the verdict, by position."""
    title = "Copying"
    trials = ctx.sweep.trials
    if C.COPY_GAIN not in trials.columns:
        return Section("copying", title, "<p>This sweep has no copy scores (<code>copy_gain</code>"
                                         "): it was run before archsearch measured them.</p>")
    gains = [C.COPY_GAIN, *[c for c, _, _ in C.copy_buckets(trials.columns, C.COPY_GAIN)]]
    positions = [c for prefix in (C.COPY_GAIN, "copy_loss")
                 for c, _, _ in C.copy_positions(trials.columns, prefix)]
    metrics = [m for m in ["copy_loss", *gains, *positions] if m in trials.columns]
    means = A.by_pattern(trials, metrics)
    if not len(means):
        return Section("copying", title, "<p>No trial completed its full budget.</p>")
    emerged = _verdicts(trials)
    when = A.emergence_by_pattern(A.copy_emergence(ctx.sweep.curves, trials))
    scored = means.merge(emerged, on=C.PATTERN, how="left").merge(
        when[[C.PATTERN, C.STEP, C.TOKENS_SEEN, "verdict"]], on=C.PATTERN, how="left")
    cells = [("pattern", lambda r: f"<code>{esc(r[C.PATTERN])}</code>"),
             ("trials", lambda r: str(int(r["n"]))),
             ("copy_loss", partial(_interval_cell, metric="copy_loss")),
             ("copy_gain", partial(_interval_cell, metric=C.COPY_GAIN))]
    for column, _, label in C.copy_buckets(trials.columns, C.COPY_GAIN):
        cells.append((f"gain, run {label}", partial(_interval_cell, metric=column)))
    cells.append(("copying at the end", lambda r: esc(r.get("final", "–"))))
    cells.append(("emerged at", _emerged_cell))
    parts = [(f"<p><b>copy_gain</b> = loss at a repeated span's first occurrence − loss at its "
              "copy, averaged over copy tokens whose earlier occurrence is in the model's "
              "window (nats, 95% intervals). A model that predicts repeated text from its local "
              "context alone gains about 0 whatever its loss; one that copies gains about the "
              "first occurrence's loss. Induction forms in a phase change during training, so a "
              "proxy may not copy yet at its budget: then <code>copy_loss</code> measures local "
              "prediction on repeated text, not recall. <b>Copying</b> when the interval of "
              f"copy_gain lies above {COPY_EMERGED_NATS:g} nats (<code>copy_emerged</code>); "
              "<i>emerged at</i>: the first evaluation where it did (every seed by then).</p>"),
             table(scored, cells)]
    if positions:
        drawing = svg("copy-positions", [
            partial(plots.plot_copy_positions, table=means, prefix=C.COPY_GAIN,
                    colors=ctx.colors),
            partial(plots.plot_copy_positions, table=means, prefix="copy_loss",
                    colors=ctx.colors)], width=5.5)
        parts.append(plot("copy-positions", drawing,
                          "Gain and loss at the 1st, 2nd, ... token of a repeat that can be "
                          "copied (the last point pools the rest): a copying model's loss drops "
                          "from the first positions on."))
    return Section("copying", title, "".join(parts))


def _verdicts(trials: pd.DataFrame) -> pd.DataFrame:
    """Per pattern, the last evaluation's verdict over its full-budget trials, as text."""
    done = A.full_budget(trials)
    rows = []
    if C.COPY_EMERGED in done.columns:
        for pattern, group in done.groupby(C.PATTERN, sort=True):
            verdict = group[C.COPY_EMERGED].astype(float)
            known, yes = int(verdict.notna().sum()), int((verdict == 1.0).sum())
            text = ("unknown" if not known else "yes" if yes == len(group)
                    else f"{yes} of {len(group)} seeds" if yes else "not yet")
            rows.append({C.PATTERN: pattern, "final": text})
    return pd.DataFrame(rows, columns=[C.PATTERN, "final"])


def _tokens(value: object) -> str:
    try:
        return f"{float(value):,.0f}" if math.isfinite(float(value)) else "–"  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "–"


def _emerged_cell(row: pd.Series) -> str:
    tokens = row.get(C.TOKENS_SEEN)
    if tokens is not None and math.isfinite(float(tokens)):
        return f"{_tokens(tokens)} tokens (step {int(row[C.STEP])})"
    verdict = row.get("verdict")
    return esc(verdict) if isinstance(verdict, str) else "–"


def category_curves(ctx: Context) -> Section:
    """Per-category loss and copy_gain against tokens seen, per pattern, and when copying
    emerged."""
    title = "Learning curves by category"
    data, trials = ctx.sweep.curves, ctx.sweep.trials
    table_ = A.pattern_curves(data, trials) if len(data) else pd.DataFrame()
    metrics = A.curve_metrics(table_.columns) if len(table_) else []
    if not metrics:
        return Section("category-curves", title, "<p>No learning curves of completed full-budget "
                                                 "trials with per-category losses.</p>")
    when = A.emergence_by_pattern(A.copy_emergence(data, trials))
    draws = [partial(plots.plot_pattern_curves, table=table_, metric=m, colors=ctx.colors,
                     legend=i == 0,
                     emergence=when if m == C.COPY_GAIN else None,
                     threshold=COPY_EMERGED_NATS if m == C.COPY_GAIN else None)
             for i, m in enumerate(metrics)]
    parts = [("<p>Each pattern's mean over its full-budget trials at every evaluation, with a "
              "95% band (t over seeds; the evaluation bootstrap for a single trial). Dotted "
              "lines on the copy_gain panel: where each pattern's copying emerged.</p>"),
             plot("category-curves", svg("category-curves", draws, width=4.2, height=2.9,
                                         columns=3),
                  "Per-category validation loss and copy_gain against tokens seen.")]
    if len(when):
        cells = [("pattern", lambda r: f"<code>{esc(r[C.PATTERN])}</code>"),
                 ("trials", lambda r: str(int(r["n"]))),
                 ("copying emerged", lambda r: esc(r["verdict"])),
                 ("at tokens", lambda r: _tokens(r[C.TOKENS_SEEN])),
                 ("at step", lambda r: number(r[C.STEP], 0)),
                 ("earliest seed, tokens", lambda r: _tokens(r["earliest_tokens"]))]
        parts.append("<h3>When copying emerged</h3><p>The evaluation by which "
                     "<code>copy_emerged</code> had first turned 1 in every trial of the pattern "
                     "(for one trial: its first evaluation with the verdict); <i>not yet</i> if "
                     "no trial's did within the budget.</p>" + table(when, cells))
    return Section("category-curves", title, "".join(parts))


def placement(ctx: Context) -> Section | None:
    metric = next((o.metric for o in ctx.objectives if o.metric not in C.COST), None)
    if metric is None:
        return None
    lines = A.by_placement(ctx.sweep.trials, [metric])
    if not len(lines) or lines["placement"].nunique() == 0:
        return None
    drawing = svg("placement", [partial(plots.plot_placement, table=lines, metric=metric)])
    return Section("placement", "Ratio and placement", plot(
        "placement", drawing, f"{esc(metric)} against the share of attention layers, one line per"
                              " placement of the attention layers."))


def problems(ctx: Context) -> Section:
    trials = ctx.sweep.trials
    bad = trials[trials[C.STATUS].isin([C.FAILED, C.STOPPED])] if C.STATUS in trials else trials[:0]
    if not len(bad):
        return Section("problems", "Failed and stopped trials", "<p>None: every trial completed."
                                                                "</p>")
    cells = [("trial", lambda r: f"<code>{esc(r[C.TRIAL_ID])}</code>"),
             ("pattern", lambda r: f"<code>{esc(r[C.PATTERN])}</code>"),
             ("status", lambda r: esc(r[C.STATUS])),
             ("fidelity", lambda r: number(r.get(C.FIDELITY), 2)),
             ("step", lambda r: number(r.get(C.STEP), 0)),
             ("error", lambda r: f'<div class="err">{esc(_short(r.get(C.ERROR)))}</div>')]
    order = bad.sort_values([C.STATUS, C.PATTERN], kind="stable")
    return Section("problems", "Failed and stopped trials", table(order, cells))


def _short(error: object) -> str:
    if error is None or (isinstance(error, float) and math.isnan(error)):
        return ""
    text = str(error).strip()
    return text if len(text) <= _MAX_ERROR_CHARS else text[:_MAX_ERROR_CHARS] + " …"


def build_context(sweep: A.Sweep, objectives: Sequence[A.ObjectiveLike] | None,
                  weights: dict[str, float] | None, reference: str | None) -> Context:
    objs = A.as_objectives(objectives) if objectives else sweep.objectives
    trials = sweep.trials
    metrics = [o.metric for o in objs]
    missing = [m for m in metrics if m not in trials.columns]
    if missing:
        raise ArchsearchError(f"{sweep.path}: no column {', '.join(missing)} in trials.parquet")
    scorable = A.full_budget(trials)[metrics].notna().all(axis=1).any()
    rec = A.rank_patterns(trials, objs, weights) if scorable else None
    try:
        ref = A.reference_pattern(trials, reference)
    except ArchsearchError:
        if reference is not None:
            raise
        ref = None
    colors = plots.pattern_colors(trials[C.PATTERN].dropna().astype(str))
    return Context(sweep, objs, colors, rec, ref)


