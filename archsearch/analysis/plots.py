"""Matplotlib plots of the analysis tables, shared by the notebooks and the HTML report.

Each function draws on an ``Axes`` it is given and returns it, so callers choose figure size and
layout; nothing here touches pyplot's global state, so the report can draw on bare ``Figure``s. Colours are by pattern (``pattern_colors``) and stay the same across plots of one sweep.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import EngFormatter, FuncFormatter, MaxNLocator

from archsearch.analysis import columns as C
from archsearch.analysis.pareto import ObjectiveLike, as_objectives, pareto_front


def pattern_colors(patterns: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """A stable colour per pattern (sorted), from tab10 or, past ten patterns, tab20."""
    names = sorted(set(map(str, patterns)))
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {p: tuple(cmap(i % cmap.N)) for i, p in enumerate(names)}


def plot_front(
    ax: Axes,
    table: pd.DataFrame,
    x: ObjectiveLike,
    y: ObjectiveLike,
    *,
    colors: dict[str, tuple[float, ...]] | None = None,
) -> Axes:
    """Per-pattern means (``by_pattern`` rows) with intervals, every point labelled by pattern;
    the Pareto front of the two objectives joined by a line and drawn larger."""
    ox, oy = as_objectives([x, y])
    rows = table.dropna(subset=[ox.metric, oy.metric])
    colors = colors or pattern_colors(rows[C.PATTERN])
    front = pareto_front(rows, [ox, oy]) if len(rows) else rows
    for _, row in rows.iterrows():
        pattern = str(row[C.PATTERN])
        on_front = row.name in front.index
        ax.errorbar(row[ox.metric], row[oy.metric], xerr=_err(row, ox.metric),
                    yerr=_err(row, oy.metric), fmt="o", ms=8 if on_front else 5,
                    color=colors.get(pattern), mec="black" if on_front else "none",
                    elinewidth=0.8, capsize=2, zorder=3)
    _label_points(ax, rows[ox.metric].astype(float), rows[oy.metric].astype(float),
                  rows[C.PATTERN].astype(str))
    if len(front) > 1:
        ordered = front.sort_values(ox.metric)
        ax.plot(ordered[ox.metric], ordered[oy.metric], "--", color="0.4", lw=1, zorder=2,
                label="Pareto front")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel(_axis_label(ox.metric, ox.mode))
    ax.set_ylabel(_axis_label(oy.metric, oy.mode))
    if ox.metric in C.COST and len(rows):
        _cost_axis(ax, rows[ox.metric].astype(float), ox.metric == "inference_bytes")
    ax.grid(alpha=0.3)
    return ax


def plot_gaps(ax: Axes, gaps: pd.DataFrame, *, colors: dict[str, tuple[float, ...]] | None = None,
              title: str | None = None) -> Axes:
    """Grouped bars of ``category_gaps`` / ``copy_run_gaps``: one group per label, one bar per
    pattern, with intervals; positive = the pattern beats the reference."""
    # A category with no tokens in the validation set has no loss: leave out its empty slot.
    drawn = gaps.dropna(subset=["gap"])
    labels = (drawn.sort_values("order")["label"].drop_duplicates().tolist()
              if len(drawn) else [])
    patterns = sorted(gaps["pattern"].unique()) if len(gaps) else []
    colors = colors or pattern_colors(patterns)
    width = 0.8 / max(1, len(patterns))
    for i, pattern in enumerate(patterns):
        rows = gaps[gaps["pattern"] == pattern].set_index("label").reindex(labels)
        xs = np.arange(len(labels)) + (i - (len(patterns) - 1) / 2) * width
        err = np.vstack([(rows["gap"] - rows["lo"]).to_numpy(float),
                         (rows["hi"] - rows["gap"]).to_numpy(float)])
        ax.bar(xs, rows["gap"].to_numpy(float), width, yerr=np.nan_to_num(err),
               color=colors.get(pattern), label=pattern, capsize=2,
               error_kw={"elinewidth": 0.8})
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(np.arange(len(labels)), labels, rotation=30 if len(labels) > 4 else 0,
                  ha="right" if len(labels) > 4 else "center")
    reference = gaps.attrs.get("reference", "reference")
    ax.set_ylabel(f"loss({reference}) - loss(pattern), nats")
    ax.set_title(title or f"gap against {reference} (positive: pattern better)", fontsize=10)
    if patterns:
        ax.legend(fontsize=7, ncols=2 if len(patterns) > 5 else 1)
    ax.grid(axis="y", alpha=0.3)
    return ax


def plot_curves(ax: Axes, curves: pd.DataFrame, trials: pd.DataFrame, metric: str, *,
                colors: dict[str, tuple[float, ...]] | None = None) -> Axes:
    """``metric`` against tokens seen, one line per trial coloured by its pattern."""
    patterns = trials.set_index([C.SWEEP, C.TRIAL_ID])[C.PATTERN] if len(trials) else pd.Series()
    colors = colors or pattern_colors(patterns)
    seen: set[str] = set()
    if len(curves) and metric in curves.columns:
        groups = [(str(patterns.get(key, "?")), key, rows)
                  for key, rows in curves.groupby([C.SWEEP, C.TRIAL_ID], sort=True)]
        for pattern, _, rows in sorted(groups, key=lambda g: (g[0], g[1])):  # legend by pattern
            rows = rows.dropna(subset=[metric]).sort_values(C.TOKENS_SEEN)
            ax.plot(rows[C.TOKENS_SEEN], rows[metric], marker=".", lw=1, ms=3,
                    color=colors.get(pattern), label=None if pattern in seen else pattern)
            seen.add(pattern)
    ax.set_xlabel("tokens seen")
    ax.xaxis.set_major_formatter(EngFormatter(places=0, sep=""))
    ax.set_ylabel(metric)
    if seen:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return ax


def plot_pattern_curves(ax: Axes, table: pd.DataFrame, metric: str, *,
                        colors: dict[str, tuple[float, ...]] | None = None,
                        emergence: pd.DataFrame | None = None, threshold: float | None = None,
                        legend: bool = True) -> Axes:
    """``pattern_curves`` rows: ``metric`` against tokens seen, one line per pattern (the mean of
    its trials) with a shaded 95% band. With ``emergence`` (``emergence_by_pattern``), a dotted
    line where each pattern's copying emerged; with ``threshold``, the verdict's threshold."""
    patterns = sorted(table[C.PATTERN].astype(str).unique()) if len(table) else []
    colors = colors or pattern_colors(patterns)
    if len(table) and metric in table.columns:
        for pattern, rows in table.groupby(C.PATTERN, sort=True):
            rows = rows.dropna(subset=[metric]).sort_values(C.TOKENS_SEEN)
            color = colors.get(str(pattern))
            ax.plot(rows[C.TOKENS_SEEN], rows[metric], marker=".", lw=1.2, ms=4, color=color,
                    label=str(pattern))
            if C.lower(metric) in rows and C.upper(metric) in rows:
                ax.fill_between(rows[C.TOKENS_SEEN].astype(float),
                                rows[C.lower(metric)].astype(float),
                                rows[C.upper(metric)].astype(float), color=color, alpha=0.15,
                                lw=0)
    if emergence is not None and len(emergence):
        for _, row in emergence.dropna(subset=[C.TOKENS_SEEN]).iterrows():
            ax.axvline(float(row[C.TOKENS_SEEN]), color=colors.get(str(row[C.PATTERN])), ls=":",
                       lw=1.2)
    if metric.startswith(C.COPY_GAIN):
        ax.axhline(0, color="black", lw=0.8)
    if threshold is not None:
        ax.axhline(threshold, color="0.45", ls="--", lw=0.9, label=f"threshold {threshold:g}")
    ax.set_xlabel("tokens seen")
    ax.xaxis.set_major_formatter(EngFormatter(places=0, sep=""))
    ax.set_ylabel(f"{metric} (nats)")
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return ax


def plot_copy_positions(ax: Axes, table: pd.DataFrame, prefix: str = C.COPY_GAIN, *,
                        colors: dict[str, tuple[float, ...]] | None = None) -> Axes:
    """``by_pattern`` rows: ``copy_gain_pos_<k>`` (or, with ``prefix="copy_loss"``,
    ``copy_loss_pos_<k>``) at the 1st, 2nd, ... copyable token of a repeat, one line per pattern
    with 95% intervals. Copying shows as a gain that is large from the first positions on."""
    columns = C.copy_positions(table.columns, prefix)
    colors = colors or pattern_colors(table[C.PATTERN] if len(table) else [])
    xs = np.array([k for _, k, _ in columns], dtype=float)
    for _, row in table.iterrows():
        ys = np.array([row[c] for c, _, _ in columns], dtype=float)
        if not np.isfinite(ys).any():
            continue
        lo = np.array([row.get(C.lower(c), np.nan) for c, _, _ in columns], dtype=float)
        hi = np.array([row.get(C.upper(c), np.nan) for c, _, _ in columns], dtype=float)
        err = np.nan_to_num(np.vstack([ys - lo, hi - ys])).clip(min=0)
        ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, capsize=2, lw=1.2,
                    color=colors.get(str(row[C.PATTERN])), label=str(row[C.PATTERN]))
    if prefix == C.COPY_GAIN:
        ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(xs, [label for _, _, label in columns])
    ax.set_xlabel("position in the repeat (1 = first token that can be copied)")
    ax.set_ylabel(f"{prefix} (nats)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, ncols=2 if len(table) > 5 else 1)
    ax.grid(alpha=0.3)
    return ax


def plot_placement(ax: Axes, table: pd.DataFrame, metric: str) -> Axes:
    """``by_placement`` rows: ``metric`` against attention fraction, one line per placement."""
    for placement, rows in table.groupby("placement", sort=True):
        rows = rows.dropna(subset=[metric]).sort_values(C.ATTENTION_FRACTION)
        yerr = None
        if C.lower(metric) in rows and C.upper(metric) in rows:
            yerr = np.nan_to_num(np.vstack([rows[metric] - rows[C.lower(metric)],
                                            rows[C.upper(metric)] - rows[metric]])).clip(min=0)
        ax.errorbar(rows[C.ATTENTION_FRACTION], rows[metric], yerr=yerr, marker="o", capsize=2,
                    label=str(placement))
    ax.set_xlabel("attention fraction (attention layers / depth)")
    ax.set_ylabel(metric)
    ax.legend(title="placement", fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def _label_points(ax: Axes, xs: pd.Series, ys: pd.Series, labels: pd.Series) -> None:
    """Label every point, moving a label up or down when it would cover one already placed
    (close patterns are common: the labels are the point of the plot)."""
    ax.autoscale_view()
    placed: list[tuple[float, float, float]] = []  # (left, bottom, width) in points, roughly
    scale = 72 / ax.figure.dpi
    for x, y, label in sorted(zip(xs, ys, labels, strict=True)):
        px, py = (v * scale for v in ax.transData.transform((x, y)))
        width = 5.2 * len(label)
        for dy in (3, -11, 13, -21, 23, -31, 33):
            box = (px + 5, py + dy, width)
            if not any(abs(box[1] - b) < 9 and box[0] < a + w and a < box[0] + box[2]
                       for a, b, w in placed):
                break
        placed.append(box)
        ax.annotate(label, (x, y), xytext=(5, dy), textcoords="offset points", fontsize=8,
                    zorder=4)


def _cost_axis(ax: Axes, values: pd.Series, in_bytes: bool) -> None:
    """Log scale when costs span more than a decade (7B next to 60M); else linear, 1.2M style.

    Bytes get binary units (KiB, MiB), as the report's tables use."""
    positive = values[values > 0]
    if len(positive) and positive.max() / positive.min() > 10:
        ax.set_xscale("log")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _bytes(x)) if in_bytes
                                 else EngFormatter(sep=""))


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"


def _err(row: pd.Series, metric: str) -> np.ndarray | None:
    lo, hi = row.get(C.lower(metric)), row.get(C.upper(metric))
    if lo is None or hi is None or not np.isfinite([lo, hi]).all():
        return None
    return np.array([[row[metric] - lo], [hi - row[metric]]]).clip(min=0)


def _axis_label(metric: str, mode: str) -> str:
    name = C.COST_LABELS.get(metric, metric)
    return f"{name} ({'lower' if mode == 'min' else 'higher'} is better)"
