"""Numbers and tables as escaped HTML text."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence

import pandas as pd

from archsearch.analysis import columns as C

Cell = Callable[[pd.Series], str]  # a table column: the row -> its (already escaped) HTML


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def number(value: object, digits: int = 4) -> str:
    """Losses and accuracies: ``digits`` decimals; large counts with thousands separators."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return esc(value)
    if not math.isfinite(x):
        return "–"
    if abs(x) >= 1e5:
        return f"{x:.3g}" if abs(x) >= 1e9 else f"{x:,.0f}"
    return f"{x:.{digits}f}"


def size(value: object) -> str:
    """Bytes in binary units."""
    try:
        n = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return esc(value)
    if not math.isfinite(n):
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def count(value: object) -> str:
    """Parameter and FLOP counts: 50.0k, 1.2M, 7.4B."""
    if not _finite(value):
        return "–"
    x = float(value)  # type: ignore[arg-type]
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.1f}{unit}"
    return f"{x:.0f}"


def metric_value(metric: str, value: object) -> str:
    if metric == "inference_bytes":
        return size(value)
    if metric in C.COST:
        return count(value)
    return number(value)


def with_interval(row: pd.Series, metric: str) -> str:
    """``3.2140 [3.2001, 3.2302]``, or the bare value when there is no interval."""
    text = metric_value(metric, row.get(metric))
    lo, hi = row.get(C.lower(metric)), row.get(C.upper(metric))
    if _finite(lo) and _finite(hi):
        text += f' <span class="ci">[{number(lo)}, {number(hi)}]</span>'
    return text


def table(rows: pd.DataFrame, cells: Sequence[tuple[str, Cell]], css: str = "") -> str:
    """An HTML table; each cell function returns escaped HTML for its row."""
    head = "".join(f"<th>{esc(title)}</th>" for title, _ in cells)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(row)}</td>" for _, cell in cells) + "</tr>"
        for _, row in rows.iterrows()
    )
    cls = f' class="{esc(css)}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
