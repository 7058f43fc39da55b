"""The Pareto front of a sweep's objectives, over completed full-budget trials only.

Trials ASHA stopped early carry losses from a smaller budget; comparing them with full-budget
ones would favour whatever stopped first, so they (and failed trials) never enter the front.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from archsearch.space.schema import Objective
from archsearch.sweep.results import COMPLETED, FULL_BUDGET


def eligible(rows: Sequence[dict[str, Any]], objectives: Sequence[Objective]) -> list[dict]:
    """Completed trials at full budget with a finite value for every objective."""
    def ok(row: dict[str, Any]) -> bool:
        values = [row.get(o.metric) for o in objectives]
        return (row.get("status") == COMPLETED and (row.get("fidelity") or 0) >= FULL_BUDGET
                and all(isinstance(v, int | float) and math.isfinite(v) for v in values))
    return [r for r in rows if ok(r)]


def pareto_front(rows: Sequence[dict[str, Any]], objectives: Sequence[Objective]) -> list[dict]:
    """Non-dominated eligible rows, sorted by the first objective (best first)."""
    candidates = eligible(rows, objectives)

    def key(row: dict[str, Any]) -> tuple[float, ...]:  # smaller is better on every axis
        return tuple(row[o.metric] if o.mode == "min" else -row[o.metric] for o in objectives)

    keyed = [(key(r), r) for r in candidates]
    front = [r for k, r in keyed
             if not any(all(a <= b for a, b in zip(other, k, strict=True)) and other != k
                        for other, _ in keyed)]
    return sorted(front, key=key)


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
