"""``trials.parquet`` (one row per trial) and ``curves.parquet`` (one row per report).

A Tune callback in the driver keeps both tables in memory, keyed by the trial's stable id and by
(id, step), and rewrites the files atomically as results arrive, so they can be read while the
sweep runs. A run starts from the rows of the runs before it (tables.py loads them) and only adds
or updates rows: **no code path drops a row, and a completed trial's row is never replaced by a
less complete one.** A report produced again (a trial continued from a checkpoint) replaces the
curve row with the same key.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from ray.tune import Callback

from archsearch.errors import ArchsearchError
from archsearch.space import SearchSpace
from archsearch.sweep.checkpoints import RUNS_DIR
from archsearch.sweep.folder import CURVES_FILE, JOURNAL_FILE, TRIALS_FILE, SweepFolder
from archsearch.sweep.stall import stall_error
from archsearch.sweep.status import COMPLETED, FAILED, RUNNING, STOPPED, ended_status
from archsearch.sweep.trainable import FAILURE, META, RUN_KEY

GRAPH_NOTE = "cuda_graph_note"  # the trainer's text: why a GPU trial's steps are not graphed
GDN_KERNEL = "gdn_kernel"  # the trainer's: which kernel ran the GDN layers (fla, flashqla, torch)
TEXT_COLUMNS = (GRAPH_NOTE, GDN_KERNEL)  # text the trainer reports beside its numbers
_RANK = {COMPLETED: 3, STOPPED: 2, FAILED: 1, RUNNING: 0}  # how complete a row is
LEADING = ["trial_id", "pattern", "status", "error", "fidelity", "step", "tokens_seen"]
CURVE_LEADING = ["trial_id", "step", "tokens_seen", "wall_time_s"]
TRAILING = ["attention_fraction", "depth", "origins", "wall_time_s", "seed", "failures",
            "resumed_from_step", "note", GRAPH_NOTE, GDN_KERNEL, "run",
            "version.torch", "version.archsearch", "version.ray", "version.optuna",
            "host", "node_ip", "node_id", "started_at", "finished_at"]
PACKAGES = ("torch", "archsearch", "ray", "optuna")
# Keys Tune adds to every result, and ours that are not metrics.
_NOT_METRICS = {"training_iteration", "time_total_s", "time_this_iter_s", "time_since_restore",
                "timesteps_total", "episodes_total", "timesteps_since_restore",
                "iterations_since_restore", "timestamp", "date", "pid", "hostname", "node_ip",
                "config", "checkpoint_dir_name", "done", "trial_id", "should_checkpoint",
                "experiment_tag", META, RUN_KEY}
# Rewrites are skipped while less than this many times the last write's duration has passed:
# a small sweep writes on every report (nothing lost if the driver dies), a huge one backs off
# so that writing stays under about a tenth of the driver's time.
WRITE_BACKOFF = 10.0


def metrics_of(result: Mapping[str, Any]) -> dict[str, float]:
    """The trainer's numeric metrics in a Tune result (per-category losses, probes, costs...)."""
    return {k: v for k, v in result.items()
            if k not in _NOT_METRICS and isinstance(v, int | float) and not isinstance(v, bool)}


def classify(result: Mapping[str, Any] | None, errored: bool = False) -> str:
    """completed (full budget), stopped (ASHA stopped it early), or failed."""
    result = result or {}
    failed = errored or FAILURE in (result.get(META) or {})
    return ended_status(result.get("fidelity", 0.0), failed)


class UnreadableTable(ArchsearchError):
    """A results table that cannot be read (truncated, not parquet)."""


Rows = dict[str, dict[str, Any]]
CurveRows = dict[tuple[str, int], dict[str, Any]]


class ResultsWriter(Callback):
    """Keeps trials.parquet and curves.parquet current while the sweep runs."""

    def __init__(self, folder: SweepFolder, space: SearchSpace, trials: Rows, curves: CurveRows,
                 run: str) -> None:
        self.folder, self.space, self.run = folder, space, run
        self._trials, self._curves = trials, curves
        self._last_write = self._write_cost = 0.0

    # ------------------------------------------------------------ Tune callback hooks

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        if row["status"] != COMPLETED:
            row.update(status=RUNNING, error=None, finished_at=None, run=self.run)
        self.write(throttle=True)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:
        row = self._row(trial)
        metrics = metrics_of(result)
        if "step" in metrics:
            key = (row["trial_id"], int(metrics["step"]))
            self._curves[key] = {"trial_id": row["trial_id"], "step": int(metrics["step"]),
                                 "tokens_seen": metrics.get("tokens_seen"),
                                 "wall_time_s": result.get("time_total_s"),
                                 **{k: v for k, v in metrics.items()
                                    if k not in ("step", "tokens_seen")}}
        if row["status"] != COMPLETED:
            self._update(row, trial, result)
            row["status"] = RUNNING
        self.write(throttle=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, classify(trial.last_result), _failure(trial.last_result))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        trial_id = trial.config[RUN_KEY]["trial_id"]
        shown = f"{RUNS_DIR}/{self.run}/{trial_id}"
        folders = [Path(trial.local_path)] if trial.local_path else []
        if not self.folder.remote:
            folders.append(self.folder.local / shown)
        self._finish(trial, FAILED, stall_error(folders, shown) or error_line(trial))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        row = self._row(trial)
        row["failures"] = trial.num_failures
        row["error"] = f"retrying: {error_line(trial)}"
        self.write()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.write()

    # ------------------------------------------------------------ tables

    def write(self, throttle: bool = False) -> None:
        began = time.monotonic()
        if throttle and began - self._last_write < WRITE_BACKOFF * self._write_cost:
            return
        curves = sorted(self._curves.values(), key=lambda r: (r["trial_id"], r["step"]))
        write_table(self.folder, TRIALS_FILE, list(self._trials.values()), LEADING, TRAILING)
        write_table(self.folder, CURVES_FILE, curves, CURVE_LEADING, [])
        if self.folder.remote:
            self.folder.publish(JOURNAL_FILE)
        self._last_write = time.monotonic()
        self._write_cost = self._last_write - began

    def absorb_files(self) -> None:
        """Merge into memory what the files on disk hold (written by another copy of this
        writer), keeping the more complete version of every row."""
        for row in read_table(self.folder, TRIALS_FILE):
            mine = self._trials.get(row["trial_id"])
            self._trials[row["trial_id"]] = more_complete(mine, row) if mine else row
        for row in read_table(self.folder, CURVES_FILE):
            self._curves.setdefault((row["trial_id"], int(row["step"])), row)

    def _row(self, trial: Any) -> dict[str, Any]:
        trial_id = trial.config[RUN_KEY]["trial_id"]
        row = self._trials.get(trial_id)
        if row is None:
            row = self._trials[trial_id] = new_row(self.space, trial_id, trial.config)
            row["run"] = self.run
        return row

    def _update(self, row: dict[str, Any], trial: Any, result: Mapping[str, Any]) -> None:
        row.update(metrics_of(result))
        for column in TEXT_COLUMNS:
            if isinstance(result.get(column), str):
                row[column] = result[column]
        row["wall_time_s"] = result.get("time_total_s", row.get("wall_time_s"))
        row["failures"] = trial.num_failures
        meta = result.get(META) or {}
        for key in ("host", "node_ip", "node_id", "resumed_from_step", "note"):
            if meta.get(key) is not None:
                row[key] = meta[key]
        for package, version in (meta.get("versions") or {}).items():
            if version is not None:
                row[f"version.{package}"] = version  # the worker's, which may differ

    def _finish(self, trial: Any, status: str, error: str | None) -> None:
        row = self._row(trial)
        if row["status"] == COMPLETED:  # never replaced by a less complete version
            return
        if trial.last_result:
            self._update(row, trial, trial.last_result)
        row.update(status=status, error=error, finished_at=_now())
        self.write()


def more_complete(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The more complete of two versions of one row (status, then step), with the other's
    columns filling its gaps."""
    def rank(row: Mapping[str, Any]) -> tuple[int, int]:
        return _RANK.get(row.get("status"), 0), int(row.get("step") or 0)

    best, other = (a, b) if rank(a) >= rank(b) else (b, a)
    merged = dict(other)
    merged.update({k: v for k, v in best.items() if v is not None})
    return merged


def new_row(space: SearchSpace, trial_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's row before its first report: identity, sampled parameters, pattern shape."""
    config = {k: v for k, v in params.items() if k != RUN_KEY}
    resolved = space.resolve(config)
    candidate = space.candidate(resolved.pattern)
    stats = space.stats(candidate)
    return {
        "trial_id": trial_id, "pattern": resolved.pattern, "status": RUNNING,
        "error": None, "fidelity": 0.0, "step": 0, "tokens_seen": 0,
        **{f"param.{k}": v for k, v in config.items()},
        "attention_fraction": stats.attention_fraction, "depth": stats.depth,
        "origins": ", ".join(candidate.origins), "wall_time_s": 0.0,
        "seed": resolved.training.seed, "failures": 0,
        **{f"version.{p}": _version(p) for p in PACKAGES},
        "started_at": _now(), "finished_at": None,
    }


def read_table(folder: SweepFolder, name: str) -> list[dict[str, Any]]:
    """The rows of a parquet file in the sweep folder ([] if it does not exist yet); an
    ``UnreadableTable`` (one line) if it cannot be read."""
    data = folder.read_bytes(name)
    if data is None:
        return []
    return parse_table(data, f"{folder.location}/{name}")


def parse_table(data: bytes, shown_as: str) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
    except (pa.ArrowException, OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [""])[0]
        raise UnreadableTable(f"{shown_as} cannot be read ({type(err).__name__}: {first})"
                              ) from None
    return [{k: _clean(v) for k, v in row.items()} for row in rows]


def write_table(folder: SweepFolder, name: str, rows: list[dict[str, Any]],
                leading: list[str], trailing: list[str]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    present = {k for row in rows for k in row}
    middle = sorted(present - set(leading) - set(trailing),
                    key=lambda k: (not k.startswith("param."), k))
    columns = leading + middle + trailing
    table = pa.table({c: _column([_cell(row.get(c)) for row in rows]) for c in columns})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    folder.write_bytes(name, sink.getvalue())


def error_line(trial: Any) -> str:
    """One line naming the exception that ended (or interrupted) a trial."""
    err = None
    try:
        err = trial.get_pickled_error()
    except Exception:  # noqa: BLE001 - an unreadable error file must not stop the sweep
        err = None
    if err is None:
        text = (trial.get_error() or "").strip().splitlines()
        return text[-1] if text else "unknown error"
    cause = getattr(err, "cause", None)
    if cause is not None:
        err = cause
    text = str(err).strip().splitlines()
    first = text[0] if text else ""
    if type(err).__name__ in ("RayTaskError", "TuneError") and len(text) > 1:
        first = text[-1]  # the wrapped exception's own line comes last
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _failure(result: Mapping[str, Any] | None) -> str | None:
    return ((result or {}).get(META) or {}).get(FAILURE)


def _column(values: list[Any]) -> Any:
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # e.g. a choice mixing numbers and strings
        return pa.array([None if v is None else str(v) for v in values])


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
