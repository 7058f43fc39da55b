"""What a sweep prints when it ends: counts, the Pareto front of its trials, its patterns ranked.

``sweep_summary`` is called by the CLI on the runner's ``SweepOutcome`` (the sweep itself
depends on no analysis).

The front is over completed full-budget trials only: trials ASHA stopped early carry losses
from a smaller budget; comparing them with full-budget ones would favour whatever stopped
first, so they (and failed trials) never enter the front. It is one row per trial, each seed
on its own. The ranking (``ranking_table``) is one row per pattern: means over its seeds with
intervals, and whether each pattern can be told apart from the best (archsearch.analysis
.resolution; docs/ANALYSIS.md, "Resolution").
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from archsearch.analysis.pareto import full_budget, pareto_front
from archsearch.analysis.ranking import PatternRanking, rank_patterns
from archsearch.analysis.resolution import (
    BEHIND,
    BEST,
    TIED,
    Resolution,
    decimals_for,
    noise_note,
    number,
    statement,
)
from archsearch.errors import ArchsearchError
from archsearch.space.schema import Objective
from archsearch.sweep.folder import CURVES_FILE, JOURNAL_FILE, TRIALS_FILE
from archsearch.sweep.status import COMPLETED, ENDED, FAILED, RUNNING, STOPPED

if TYPE_CHECKING:
    from archsearch.sweep.runner import SweepOutcome


def trial_front(rows: Sequence[dict[str, Any]], objectives: Sequence[Objective]) -> list[dict]:
    """The Pareto front of the trials (``analysis.pareto_front``: completed full-budget trials
    with every objective), as the rows themselves, best first on the first objective."""
    if not rows:
        return []
    front = pareto_front(pd.DataFrame(list(rows)), objectives)
    return [rows[i] for i in front.index]


def sweep_summary(outcome: SweepOutcome) -> str:
    """What the sweep prints at the end: counts, the trials' Pareto front, failures, where the
    results are, then the patterns ranked with intervals and, last, whether the ranking is
    resolved (a winner only when the seeds tell it apart from every other pattern)."""
    rows, space, folder = outcome.rows, outcome.space, outcome.folder
    objectives = space.spec.objectives
    front = trial_front(rows, objectives)
    statuses = [r.get("status") for r in rows]
    names = ", ".join(f"{o.metric} ({o.mode})" for o in objectives)
    full = len(full_budget(pd.DataFrame(list(rows)))) if rows else 0
    lines = [(f"{len(rows)} trials: {statuses.count(COMPLETED)} completed, "
              f"{statuses.count(STOPPED)} stopped early, {statuses.count(FAILED)} failed")]
    if statuses.count(RUNNING):
        lines[0] += f", {statuses.count(RUNNING)} unfinished"
    kernels = gdn_kernel_line(rows)
    if kernels:
        lines.append(kernels)
    if not outcome.finished:
        ended = sum(s in ENDED for s in statuses)
        lines.insert(0, f"interrupted: {ended} of {outcome.total} trials finished; continue "
                        f"with: archsearch resume {folder.location}")
    if front:
        lines += ["", (f"Pareto front of {names} over {full} full-budget completed trials "
                      "(one row per trial, each seed on its own):"),
                  front_table(front, objectives, [t.name for t in space.tunables])]
    else:
        lines += ["", f"no full-budget completed trial: no Pareto front of {names}"]
    failed = [r for r in rows if r.get("status") == FAILED]
    if failed:
        lines += ["", "failed trials:"]
        lines += [f"  {r['trial_id']}  {r.get('pattern')}  {r.get('error')}" for r in failed[:10]]
        if len(failed) > 10:
            lines.append(f"  ... and {len(failed) - 10} more (trials.parquet, column 'error')")
    noted = [(r, "; ".join(filter(None, (r.get("note"), r.get("cuda_graph_note"))))) for r in rows]
    noted = [(r, note) for r, note in noted if note]
    if noted:
        lines += ["", "notes:"]
        lines += [f"  {r['trial_id']}  {r.get('pattern')}  {note}" for r, note in noted[:10]]
    lines += ["", f"results in {folder.location}/",
              f"  {TRIALS_FILE}   one row per trial (status, parameters, last metrics, costs)",
              f"  {CURVES_FILE}   every evaluation of every trial",
              (f"  {JOURNAL_FILE}   the Optuna study "
               f"(optuna-dashboard {folder.local / JOURNAL_FILE})")]
    if full:
        lines += ["", *ranking_lines(rows, objectives)]
    return "\n".join(lines)


def gdn_kernel_line(rows: Sequence[dict[str, Any]]) -> str:
    """Which kernels ran the GDN layers on a GPU ("GDN layers ran on flashqla (7 trials)"), or
    "" when none did (CPU sweeps, all-attention spaces): trials' ``gdn_kernel`` column."""
    counts: dict[str, int] = {}
    for row in rows:
        kernel = row.get("gdn_kernel")
        if isinstance(kernel, str) and kernel and kernel != "torch":
            counts[kernel] = counts.get(kernel, 0) + 1
    if not counts:
        return ""
    parts = [f"{k} ({n} trial{'s' if n > 1 else ''})" for k, n in sorted(counts.items())]
    return "GDN layers ran on " + ", ".join(parts)


def front_table(front: Sequence[dict[str, Any]], objectives: Sequence[Objective],
                tuned: Sequence[str]) -> str:
    """pattern | each objective | params | copying | the tuned values (if the space tunes any).

    ``copying`` is the trial's ``copy_emerged`` verdict: yes, not yet, or - when unknown."""
    headers = ["pattern", *(f"{o.metric} ({o.mode})" for o in objectives), "params", "copying"]
    if tuned:
        headers.append("settings")
    body = []
    for row in front:
        cells = [str(row.get("pattern")),
                 *(f"{row[o.metric]:.4f}" for o in objectives),
                 _count(row.get("params")), _copying(row.get("copy_emerged"))]
        if tuned:
            cells.append(" ".join(f"{name}={_short(row.get(f'param.{name}'))}" for name in tuned
                                  if row.get(f"param.{name}") is not None))
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(headers)]
    right = {i for i in range(1, len(objectives) + 2)}  # numbers align right

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, body)])


def _count(value: Any) -> str:
    if not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.2f}{unit}"
    return f"{int(value)}"


def _copying(verdict: Any) -> str:
    if not isinstance(verdict, int | float) or not math.isfinite(verdict):
        return "-"
    return "yes" if verdict else "not yet"


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def ranking_lines(rows: Sequence[dict[str, Any]], objectives: Sequence[Objective]) -> list[str]:
    """The patterns ranked with intervals, a line per objective on what the seeds resolve,
    and last the verdict on the weighted score. Needs a full-budget completed trial."""
    try:
        rec = rank_patterns(pd.DataFrame(list(rows)), objectives)
    except ArchsearchError as err:  # the end of a sweep must not fail over its summary
        return [f"no ranking of the patterns: {err}"]
    assert rec.resolution is not None
    weights = ", ".join(f"{m} {w:.2f}" for m, w in rec.weights.items())
    legend = ("; best, tied (cannot be told apart from the best) or behind"
              if rec.resolution.noise.known else "")
    lines = [_wrap(f"Patterns, best first by the weighted score ({weights} of each objective's "
                   f"pattern means, min-max normalised: 0 = best); {noise_note(rec.resolution)}"
                   f"{legend}:"),
             ranking_table(rec, objectives), ""]
    if len(objectives) > 1 and rec.resolution.noise.known:
        lines += [_wrap(f"  {o.metric}: {statement(rec.by_objective[o.metric], advice=False)}")
                  for o in objectives]
    lines.append(_wrap(f"verdict: {rec.statement()}"))
    return lines


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100, subsequent_indent="    ", break_long_words=False,
                         break_on_hyphens=False)


def ranking_table(rec: PatternRanking, objectives: Sequence[Objective]) -> str:
    """pattern | seeds | each objective's mean with its interval and mark | score | score - best.

    With a seed-noise estimate a mean shows ``+-`` the half-width of its pooled interval and a
    mark (best, tied: cannot be told apart from the best, behind); without one, the single
    trial's evaluation interval ``[lo, hi]`` and no mark."""
    assert rec.resolution is not None
    headers = ["#", "pattern", "seeds", *(f"{o.metric} ({o.mode})" for o in objectives),
               "score", "score - best"]
    body = []
    for i, row in rec.table.iterrows():
        cells = [str(i + 1), str(row["pattern"]), str(int(row["n"]))]
        for o in objectives:
            cells.append(_mean_cell(rec.by_objective[o.metric], str(row["pattern"])))
        cells.append(f"{row['score']:.3f}")
        cells.append(_versus_best(rec.resolution, str(row["pattern"])))
        body.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(headers)]
    right = {0, 2, len(headers) - 2}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, body)])


def _mean_cell(res: Resolution, pattern: str) -> str:
    row = res.row(pattern)
    lo, hi, mean = float(row["lo"]), float(row["hi"]), float(row["mean"])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return number(mean)
    if not res.noise.known:  # a single trial's evaluation bootstrap: not symmetric
        return f"{number(mean)} [{number(lo)}, {number(hi)}]"
    decimals = max(4, decimals_for(hi - lo))
    return f"{number(mean, decimals)} +-{number((hi - lo) / 2, decimals)} {_mark(row['status'])}"


def _versus_best(res: Resolution, pattern: str) -> str:
    row = res.row(pattern)
    if row["status"] == BEST:
        return "best"
    lo, hi = float(row["diff_lo"]), float(row["diff_hi"])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return number(float(row["diff"]), 3, signed=True)
    decimals = max(3, decimals_for(hi - lo))
    return (f"{number(float(row['diff']), decimals, signed=True)} "
            f"+-{number((hi - lo) / 2, decimals)} {_mark(row['status'])}")


def _mark(status: str) -> str:
    return {BEST: "best", TIED: "tied", BEHIND: "behind"}.get(status, "")
