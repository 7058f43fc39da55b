"""``write_report``: load a sweep, build every section, write one self-contained HTML file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from archsearch import analysis as A
from archsearch.errors import ArchsearchError
from archsearch.report import sections
from archsearch.report.format import esc
from archsearch.report.page import render

REPORT_DIR = "report"
REPORT_FILE = "index.html"


def write_report(
    sweep_dir: str | Path,
    out: str | Path | None = None,
    *,
    objectives: Sequence[A.ObjectiveLike] | None = None,
    weights: Mapping[str, float] | None = None,
    reference: str | None = None,
) -> Path:
    """Write the report of the sweep in ``sweep_dir`` to ``out/index.html`` (default
    ``<sweep_dir>/report/``) and return the file's path.

    ``objectives`` default to the sweep's own; ``weights`` (by metric) to equal; ``reference``
    (the pattern the category gaps are measured against) to the all-attention pattern.
    """
    sweep = A.load_sweep(sweep_dir)
    if not len(sweep.trials):
        raise ArchsearchError(f"{sweep.path}: no trials in {A.columns.TRIALS_FILE}")
    ctx = sections.build_context(sweep, objectives, dict(weights) if weights else None, reference)
    parts = [sections.summary(ctx), sections.fronts(ctx), sections.top_patterns(ctx),
             sections.categories(ctx), sections.copying(ctx), sections.probes(ctx),
             sections.placement(ctx), sections.curves(ctx), sections.category_curves(ctx),
             sections.problems(ctx)]
    html = render(
        f"archsearch report: {sweep.name}",
        f"{len(sweep.trials)} trials of {sweep.trials[A.columns.PATTERN].nunique()} patterns; "
        f"objectives {esc(', '.join(f'{o.metric} ({o.mode})' for o in ctx.objectives))}",
        sections.recommendation(ctx),
        [p for p in parts if p is not None],
    )
    folder = Path(out) if out is not None else sweep.path / REPORT_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / REPORT_FILE
        target.write_text(html, encoding="utf-8")
    except OSError as err:
        raise ArchsearchError(f"cannot write the report to {folder}: {err.strerror or err}") from None
    return target
