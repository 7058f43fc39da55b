"""The results tables a run starts from: read, backed up, and rebuilt if they cannot be read.

Before a run touches anything, each readable table is copied to ``<name>.bak``. A table that
cannot be read (truncated, not parquet) is never overwritten blindly: it is kept aside as
``<name>.unreadable-<time>`` and rebuilt, with a warning that says so, from what else the folder
holds:
- trials.parquet: its ``.bak``, the Optuna journal (parameters, state, objective values,
  fidelity and errors of every trial) and the last curve row of each trial (every metric of
  its last report);
- curves.parquet: its ``.bak``, the report saved with every complete checkpoint, and each
  trial's last report (its row in trials.parquet).
Rows from several sources are merged keeping the more complete one (``more_complete``). If
nothing can rebuild an unreadable table, the run is refused in one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from archsearch.errors import ArchsearchError
from archsearch.space import SearchSpace
from archsearch.sweep.checkpoints import all_reports
from archsearch.sweep.folder import CURVES_FILE, TRIALS_FILE, SweepFolder
from archsearch.sweep.journal import trial_key
from archsearch.sweep.results import (
    TRAILING,
    CurveRows,
    Rows,
    UnreadableTable,
    metrics_of,
    more_complete,
    new_row,
    parse_table,
)
from archsearch.sweep.status import FAILED, RUNNING, ended_status


@dataclass
class Tables:
    trials: Rows
    curves: CurveRows
    warnings: list[str]


def load_tables(folder: SweepFolder, space: SearchSpace, study: Any) -> Tables:
    """The tables of ``folder`` as a run starts (module docstring)."""
    warnings: list[str] = []
    trials_rows = _read_or_none(folder, TRIALS_FILE, warnings)
    curves_rows = _read_or_none(folder, CURVES_FILE, warnings)
    curves: CurveRows = {}
    if curves_rows is not None:
        curves = {(r["trial_id"], int(r["step"])): r for r in curves_rows}
    if trials_rows is not None:
        trials = {r["trial_id"]: r for r in trials_rows}
    else:
        trials = _rebuild_trials(folder, space, study, curves)
        warnings.append(f"{TRIALS_FILE} rebuilt: {len(trials)} trials from "
                        f"{TRIALS_FILE}.bak, the Optuna journal and {CURVES_FILE}")
    if curves_rows is None:
        curves = _rebuild_curves(folder, trials)
        warnings.append(f"{CURVES_FILE} rebuilt: {len(curves)} evaluations from "
                        f"{CURVES_FILE}.bak, the checkpoints' reports and {TRIALS_FILE}")
    return Tables(trials, curves, warnings)


def _read_or_none(folder: SweepFolder, name: str, warnings: list[str]) -> list[dict] | None:
    """The rows, after backing the file up; None (and the file kept aside) if unreadable."""
    data = folder.read_bytes(name)
    if data is None:
        return []
    try:
        rows = parse_table(data, f"{folder.location}/{name}")
    except UnreadableTable as err:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder.write_bytes(f"{name}.unreadable-{stamp}", data)
        warnings.append(f"{err}; kept as {name}.unreadable-{stamp}")
        return None
    folder.write_bytes(f"{name}.bak", data)
    return rows


def _backup_rows(folder: SweepFolder, name: str) -> list[dict[str, Any]]:
    data = folder.read_bytes(f"{name}.bak")
    if data is None:
        return []
    try:
        return parse_table(data, f"{folder.location}/{name}.bak")
    except UnreadableTable:
        return []


def _rebuild_trials(folder: SweepFolder, space: SearchSpace, study: Any,
                    curves: CurveRows) -> Rows:
    rows: Rows = {r["trial_id"]: r for r in _backup_rows(folder, TRIALS_FILE)}
    last = _last_curve_rows(curves.values())
    objectives = [o.metric for o in space.spec.objectives]
    for frozen in study.get_trials(deepcopy=False):
        trial_id = trial_key(frozen.number, frozen.user_attrs)
        try:
            row = new_row(space, trial_id, frozen.params)
        except (KeyError, ValueError, TypeError):  # parameters this space cannot resolve
            continue
        row.update(started_at=None, **{f"version.{p}": None for p in ("torch", "archsearch",
                                                                       "ray", "optuna")})
        row.update(_outcome(frozen, objectives))
        if trial_id in last:
            row.update({k: v for k, v in last[trial_id].items() if k != "wall_time_s"})
        rows[trial_id] = more_complete(rows[trial_id], row) if trial_id in rows else row
    if not rows and study.get_trials(deepcopy=False) == []:
        raise ArchsearchError(f"{folder.location}/{TRIALS_FILE} cannot be read and neither "
                              f"{TRIALS_FILE}.bak nor the Optuna journal can rebuild it; move it "
                              f"away to start the results afresh")
    return rows


def _outcome(frozen: Any, objectives: Sequence[str]) -> dict[str, Any]:
    from optuna.trial import TrialState

    fidelity = float(frozen.user_attrs.get("fidelity", 0.0))
    if frozen.state == TrialState.COMPLETE:
        values = dict(zip(objectives, frozen.values or [], strict=False))
        return {"status": ended_status(fidelity, failed=False), "fidelity": fidelity, **values}
    if frozen.state == TrialState.FAIL:
        return {"status": FAILED, "fidelity": fidelity,
                "error": frozen.user_attrs.get("error", "failed")}
    return {"status": RUNNING}


def _rebuild_curves(folder: SweepFolder, trials: Rows) -> CurveRows:
    curves: CurveRows = {(r["trial_id"], int(r["step"])): r
                         for r in _backup_rows(folder, CURVES_FILE)}
    sources = [(trial_id, metrics) for trial_id, metrics in all_reports(folder.location)]
    sources += [(row["trial_id"], _report_of(row)) for row in trials.values() if row.get("step")]
    for trial_id, metrics in sources:
        values = metrics_of(metrics)
        step = int(values.pop("step"))
        curves.setdefault((trial_id, step), {"trial_id": trial_id, "step": step,
                                             "tokens_seen": values.pop("tokens_seen", None),
                                             "wall_time_s": None, **values})
    return curves


def _report_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics of a trial row's last report (not its identity, shape or provenance)."""
    return {k: v for k, v in row.items() if k not in TRAILING and "." not in k}


def _last_curve_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for row in rows:
        trial_id = row["trial_id"]
        if trial_id not in last or row["step"] > last[trial_id]["step"]:
            last[trial_id] = dict(row)
    return last
