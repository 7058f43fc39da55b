"""``archsearch scale``: train every chosen pattern at every rung and seed with Ray Tune.

The run is a sweep over a fixed list of trials: ``run_in_folder`` from the sweep runs every
ladder point (pattern x rung x seed) once, with the sweep's trainable, checkpoints, retries,
journal, parquet writer and resume, and no early stopping (every point must reach its full
budget to be fitted). ``LadderSearchSpace`` is the bridge: the space, plus the points, so that
``resolve`` turns a point id into that point's fixed ``TrialConfig``.

The folder ``<storage>/<name>/`` (default name ``<space name>-scale``) holds ``space.yaml`` (the
effective space), ``scale.json`` (the plan: rungs, series and their rules, points, fit settings),
the Optuna journal, ``trials.parquet`` and ``curves.parquet`` (column ``param.ladder_point``
names the point) and the checkpoints under ``runs/``, as a sweep folder does. As for a sweep,
``archsearch resume FOLDER`` continues an interrupted run; ``scale`` into a folder whose run has
started refuses and says so (a run that failed before any trial started is replaced).

The runner is injectable (``runner=``): anything that takes a ``ScaleJob`` and leaves the parquet
files behind. The default, ``tune_runner``, is the Ray one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archsearch.data.checks import check_data
from archsearch.errors import ArchsearchError
from archsearch.scaling.ladder import (
    LadderPoint,
    LadderSpace,
    Series,
    check_ladder,
    load_ladder_space,
    plan_ladder,
    series_from_candidates,
    series_from_choices,
)
from archsearch.space import Candidate, SearchSpace, TrialConfig
from archsearch.sweep.folder import SCALE_FILE

POINT_KEY = "ladder_point"  # the Tune config key (and parquet column param.ladder_point)
FORMAT = "archsearch.scale"
VERSION = 1


class ScaleError(ArchsearchError):
    """A scale run that cannot start or continue as asked."""


class LadderSearchSpace:
    """What the sweep machinery asks of a space, for a ladder: the validated base space's
    ``spec`` and ``tunables``, with trials resolved from ladder point ids.

    The sweep's runner, trainable, resource callback and results writer call only ``spec``,
    ``tunables``, ``resolve``, ``suggest``, ``missing``, ``candidate`` and ``stats``; each is
    spelled out here, so a new need fails loudly instead of reaching a half-copied space.
    """

    def __init__(self, base: SearchSpace, points: Sequence[LadderPoint],
                 origins: Mapping[str, str]) -> None:
        self.base = base
        self.spec = base.spec
        self.tunables = base.tunables
        self.points = {p.point: p for p in points}
        self._origins = dict(origins)  # series key -> "3:1 even_end" (how analysis reads origins)

    def resolve(self, params: Mapping[str, Any]) -> TrialConfig:
        if POINT_KEY in params:
            return self.points[str(params[POINT_KEY])].trial
        return self.base.resolve(params)

    def suggest(self, trial: Any) -> None:
        """Optuna define-by-run: a trial of the ladder is one of its points."""
        trial.suggest_categorical(POINT_KEY, list(self.points))

    def missing(self, params: Mapping[str, Any]) -> list[str]:
        """What ``params`` lacks to be a trial of the ladder: its point, if not one of them."""
        return [] if str(params.get(POINT_KEY)) in self.points else [POINT_KEY]

    def candidate(self, pattern: str) -> Candidate:
        for point in self.points.values():
            if point.pattern == pattern:
                return Candidate(pattern, point.trial.layers,
                                 (self._origins.get(point.series, "list"),))
        return self.base.candidate(pattern)

    def stats(self, candidate: Candidate) -> Any:
        return self.base.stats(candidate)


@dataclass(frozen=True)
class ScaleJob:
    """Everything a runner needs to train a ladder into ``location``."""

    space: LadderSearchSpace
    location: str  # <storage>/<name>, absolute path or URI
    points: tuple[LadderPoint, ...]
    resume: bool
    address: str | None = None
    verbose: bool = False
    shared_storage_ok: bool = False
    retry_errored: bool = False
    train_fn: Callable[..., Mapping[str, Any]] | None = field(default=None, repr=False)


Runner = Callable[[ScaleJob], None]


@dataclass(frozen=True)
class ScaleOutcome:
    location: str
    points: int
    completed: int
    failed: list[dict[str, Any]]
    unfinished: int  # neither completed nor failed: the run was interrupted
    summary: str


def run_scale(
    space_path: str,
    name: str | None = None,
    storage: str | None = None,
    overrides: Sequence[str] = (),
    from_sweep: str | None = None,
    top_k: int = 3,
    address: str | None = None,
    verbose: bool = False,
    shared_storage_ok: bool = False,
    runner: Runner | None = None,
    train_fn: Callable[..., Mapping[str, Any]] | None = None,
) -> ScaleOutcome:
    """Plan the ladder of ``space_path`` and train it in a new folder (``resume_scale``
    continues one).

    Patterns: the first ``top_k`` of the ranking ``recommend`` reads from the sweep at
    ``from_sweep`` (``scaling.choose``), each with its best tuned values, else every candidate of
    the space.
    """
    from archsearch.sweep.folder import JOURNAL_FILE, SPACE_FILE, SweepFolder
    from archsearch.sweep.runner import trials_started

    ls, text = _load(space_path, overrides)
    check_data(ls.space)
    if from_sweep is not None:
        from archsearch.scaling.choose import top_patterns

        series = series_from_choices(ls.space, top_patterns(from_sweep, top_k))
    else:
        series = series_from_candidates(ls.space)
    points = plan_ladder(ls, series)
    folder = SweepFolder.under(storage or ls.space.spec.storage,
                               name or f"{ls.space.spec.name}-scale")
    manifest = _manifest(ls, series, points, folder.location, space_path, overrides, from_sweep)
    with folder.lock("scale"):
        if folder.exists():  # its sweep.json: the space.yaml written below would replace its own
            raise ScaleError(f"{folder.location} holds a sweep, not a scale run; pick another "
                             f"--name")
        if folder.read_bytes(SCALE_FILE) is not None:
            if trials_started(folder):
                raise ScaleError(f"a scale run already exists in {folder.location}; continue it "
                                 f"with 'archsearch resume {folder.location}' or pick another "
                                 f"--name")
            # A run that failed before any trial started (Ray did not start, a check failed)
            # left only its plan: take the folder over, with nothing of the old study kept.
            folder.remove(JOURNAL_FILE)
        folder.write_bytes(SPACE_FILE, text.encode())
        folder.write_bytes(SCALE_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
        job = ScaleJob(space=_bridge(ls.space, series, points), location=folder.location,
                       points=tuple(points), resume=False, address=address, verbose=verbose,
                       shared_storage_ok=shared_storage_ok, train_fn=train_fn)
        (runner or tune_runner)(job)
    return _outcome(folder, len(points))


def resume_scale(location: str, address: str | None = None, verbose: bool = False,
                 shared_storage_ok: bool = False, retry_errored: bool = False,
                 runner: Runner | None = None,
                 train_fn: Callable[..., Mapping[str, Any]] | None = None) -> ScaleOutcome:
    """Continue the scale run in ``location`` from its own files (space.yaml and scale.json);
    what ``archsearch resume`` does for a scale folder."""
    from archsearch.sweep.folder import SweepFolder
    from archsearch.sweep.runner import read_space

    folder = SweepFolder.at(location)
    with folder.lock("resume"):
        raw = folder.read_bytes(SCALE_FILE)
        if raw is None:
            raise ScaleError(f"{location} is not a scale folder (no {SCALE_FILE})")
        manifest = _read_manifest(raw, folder.location)
        space = read_space(folder)
        check_data(space)
        ls = check_ladder(space)
        try:
            series = [Series.from_dict(s) for s in manifest["series"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ScaleError(f"{folder.location}/{SCALE_FILE}: its series cannot be read "
                             f"({type(err).__name__}: {err})") from None
        points = plan_ladder(ls, series)
        _check_same_plan(manifest, {"points": [p.as_dict() for p in points]}, location)
        job = ScaleJob(space=_bridge(space, series, points), location=folder.location,
                       points=tuple(points), resume=True, address=address, verbose=verbose,
                       shared_storage_ok=shared_storage_ok, retry_errored=retry_errored,
                       train_fn=train_fn)
        (runner or tune_runner)(job)
    return _outcome(folder, len(points))


def is_scale_folder(location: str) -> bool:
    from archsearch.sweep.folder import SweepFolder

    return SweepFolder.at(location).read_bytes(SCALE_FILE) is not None


def _read_manifest(raw: bytes, location: str) -> dict[str, Any]:
    try:
        manifest = json.loads(raw)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("points"), list):
        raise ScaleError(f"{location}/{SCALE_FILE} is not a scale plan (expected a JSON object "
                         f"with its rungs, series and points)")
    return manifest


def _load(space_path: str, overrides: Sequence[str]) -> tuple[LadderSpace, str]:
    if not overrides:  # straight from the file: ladder errors carry line numbers
        return load_ladder_space(space_path), Path(space_path).read_text(encoding="utf-8")
    from archsearch.sweep.overrides import load_with_overrides

    space, text = load_with_overrides(space_path, overrides)
    return check_ladder(space), text


def _bridge(space: SearchSpace, series: Sequence[Series],
            points: Sequence[LadderPoint]) -> LadderSearchSpace:
    origins = {s.key: (f"{s.rule.ratio} {s.rule.placement}" if s.rule.kind == "generate"
                       else "list") for s in series}
    return LadderSearchSpace(space, points, origins)


def _manifest(ls: LadderSpace, series: Sequence[Series], points: Sequence[LadderPoint],
              location: str, source: str, overrides: Sequence[str],
              from_sweep: str | None) -> dict[str, Any]:
    spec = ls.space.spec
    ladder = ls.ladder
    windows = {s: getattr(v, "window", None) for s, v in ls.space.symbols.items()}
    return {
        "format": FORMAT, "version": VERSION, "name": location.rstrip("/").rsplit("/", 1)[-1],
        "location": location, "source": str(source), "overrides": list(overrides),
        "from_sweep": from_sweep, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "space": spec.name,
        "objectives": [{"metric": o.metric, "mode": o.mode} for o in spec.objectives],
        "kinds": ls.space.pattern_kinds(), "windows": windows,
        "fit": {"metrics": list(ladder.metrics), "compute": ladder.compute,
                "target_params": ladder.target_params, "target_tokens": ladder.target_tokens,
                "bootstrap": ladder.bootstrap, "seed": ladder.seed},
        "rungs": [{"index": r.index, "d_model": r.d_model, "depth": r.depth,
                   "label": r.label} for r in ls.rungs],
        "seeds": list(ladder.seeds),
        "series": [s.as_dict() for s in series],
        "points": [p.as_dict() for p in points],
    }


def _check_same_plan(old: Mapping[str, Any], new: Mapping[str, Any], location: str) -> None:
    def key(points: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        return [(p["point"], p["pattern"], p["tokens"]) for p in points]

    try:
        same = key(old["points"]) == key(new["points"])
    except (KeyError, TypeError) as err:
        raise ScaleError(f"{location}/{SCALE_FILE}: its points cannot be read "
                         f"({type(err).__name__}: {err})") from None
    if not same:
        raise ScaleError(f"{location}/{SCALE_FILE}: its points differ from the plan its "
                         f"{location}/space.yaml makes now (rungs, seeds, patterns or token "
                         f"budgets); start a new run with 'archsearch scale' and another --name")


def _outcome(folder: Any, total: int) -> ScaleOutcome:
    from archsearch.sweep.folder import TRIALS_FILE
    from archsearch.sweep.results import read_table
    from archsearch.sweep.status import COMPLETED, FAILED

    rows = read_table(folder, TRIALS_FILE)
    completed = sum(r.get("status") == COMPLETED for r in rows)
    failed = [r for r in rows if r.get("status") == FAILED]
    unfinished = total - completed - len(failed)
    lines = [f"{total} ladder points: {completed} completed, {len(failed)} failed"
             + (f", {unfinished} not finished (interrupted?)" if unfinished else "")]
    for row in failed[:10]:
        lines.append(f"  {row.get('param.' + POINT_KEY)}  {row.get('pattern')}  {row.get('error')}")
    lines += ["", f"results in {folder.location}/",
              f"  {SCALE_FILE}   the plan: rungs, patterns and their rules, points",
              f"  {TRIALS_FILE}   one row per point (column param.{POINT_KEY})",
              f"next: archsearch recommend {folder.location}",
              f"continue it if interrupted: archsearch resume {folder.location}"]
    return ScaleOutcome(folder.location, total, completed, failed, unfinished, "\n".join(lines))


# ------------------------------------------------------------------ the Ray runner


def tune_runner(job: ScaleJob) -> None:
    """Train every point with Ray Tune, as a sweep trains its trials (module docstring)."""
    from archsearch.sweep.folder import SweepFolder
    from archsearch.sweep.runner import SweepOptions, run_in_folder

    options = SweepOptions(job.address, job.verbose, job.shared_storage_ok)
    run_in_folder(job.space, SweepFolder.at(job.location), options, job.train_fn,
                  retry_errored=job.retry_errored,
                  points=[{POINT_KEY: p.point} for p in job.points])
