"""Matplotlib figures rendered to inline SVG for the report.

Bare ``Figure`` objects (no pyplot) keep the report free of global state and of any GUI backend.
Several SVGs inlined in one page share one id space, and matplotlib names its groups and glyphs
the same in every figure (``axes_1``, ``DejaVuSans-48``): every id, and every reference to one, is
prefixed with the figure's key. A fixed hash salt keeps the other ids (clip paths, markers) the
same on every run.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

Draw = Callable[[Axes], object]


def svg(key: str, draws: list[Draw], *, width: float = 6.4, height: float = 4.2,
        columns: int | None = None) -> str:
    """One figure with a panel per ``draw`` (side by side, or ``columns`` to a row), as an
    ``<svg>`` element; ``width`` and ``height`` are a panel's, in inches."""
    cols = min(columns or len(draws), len(draws))
    rows = math.ceil(len(draws) / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, draw in zip(axes, draws, strict=False):
        draw(ax)
    for ax in axes[len(draws):]:
        fig.delaxes(ax)  # the unused cells of the last row
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"archsearch-{key}", "svg.fonttype": "path"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return _scope_ids(text[text.index("<svg"):], key)  # drop the XML declaration and DOCTYPE


_ID_OR_REFERENCE = re.compile(r'(\sid="|href="#|url\(#)([^")]+)')


def _scope_ids(text: str, key: str) -> str:
    """Prefix ids and the references to them (``href="#x"``, ``url(#x)``) with ``key``."""
    return _ID_OR_REFERENCE.sub(lambda m: f"{m[1]}{key}-{m[2]}", text)
