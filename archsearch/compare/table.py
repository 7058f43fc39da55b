"""The compact table ``archsearch compare`` prints: gaps, copy gains, the regressions, files."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from archsearch.compare.run import CompareResult


def _num(value: object, width: int, digits: int = 4) -> str:
    x = float(value)  # type: ignore[arg-type]
    return f"{'-':>{width}}" if not math.isfinite(x) else f"{x:>{width}.{digits}f}"


def _interval(lo: object, hi: object) -> str:
    return f"[{_num(lo, 8)}, {_num(hi, 8)}]"


def terminal_table(result: CompareResult) -> str:
    c = result.comparison
    lines = [(f"REF {result.reference} vs CAND {result.candidate}: {c.n_tokens:,} tokens in "
             f"{c.n_docs:,} documents (window {result.window}, tokenizer {result.tokenizer})"),
             "gap = loss(REF) - loss(CAND), nats per token; > 0: CAND is better",
             f"{'group':<14}{'gap':>9}  {'95% interval':<20}{'tokens':>10}{'REF':>8}{'CAND':>8}"]
    pos_head = False
    for r in c.gaps.itertuples():
        if r.n == 0:
            continue
        if str(r.group).startswith("pos_") and not pos_head:
            lines.append("part of speech (spaCy, the tag of the token's word):")
            pos_head = True
        indent = "  " if str(r.group).startswith(("copy_", "pos_")) else ""
        lines.append(f"{indent + str(r.group):<14}{_num(r.gap, 9)}  {_interval(r.lo, r.hi):<20}"
                     f"{r.n:>10,}{_num(r.reference_loss, 8, 3)}{_num(r.candidate_loss, 8, 3)}")
    lines.append("copy_gain = loss(first occurrence) - loss(copy), nats; > 0: the model copies")
    for r in result.copy_gain.itertuples():
        if r.metric == "copy_emerged":
            continue
        lines.append(f"{r.metric:<20} REF {_num(r.reference, 7)} "
                     f"{_interval(r.reference_lo, r.reference_hi)}  CAND "
                     f"{_num(r.candidate, 7)} {_interval(r.candidate_lo, r.candidate_hi)}")
    lines.append(f"regression of the gap (intercept: {c.baseline} words; t from errors "
                 "clustered by document)")
    is_pos = c.regression["term"].str.startswith("pos_")
    fits = [(c.regression[~is_pos], "")]
    if is_pos.any():
        title = f"regression on part of speech (intercept: {c.pos_baseline}; same controls)"
        fits.append((c.regression[is_pos], title))
    for rows, title in fits:
        if title:
            lines.append(title)
        terms = [f"{r.term} {r.coef:+.4f} (t {r.t_cluster:.1f})" for r in rows.itertuples()]
        for start in range(0, len(terms), 4):
            lines.append("  " + "   ".join(terms[start:start + 4]))
    if result.files:
        lines.append("written: " + ", ".join(str(f) for f in result.files))
    return "\n".join(lines)
