"""``archsearch scale``: train every chosen pattern at every rung and seed with Ray Tune.

The run reuses the sweep's machinery piece by piece: the same Ray connection and storage checks,
the same trainable (``run_trial``: checkpoints, retries, divergence handling), the same resource
callback, the same parquet writer and progress line. Only the search differs: a fixed grid over
ladder points (pattern x rung x seed), no sampler, no early stopping (every point must reach its
full budget to be fitted). ``LadderSearchSpace`` is the bridge: the space, plus the points, so
that ``resolve`` turns a point id into that point's fixed ``TrialConfig``.

The folder ``<storage>/<name>/`` (default name ``<space name>-scale``) holds ``space.yaml`` (the
effective space), ``scale.json`` (the plan: rungs, series and their rules, points, fit settings),
Ray's experiment state, ``trials.parquet`` and ``curves.parquet`` (column ``param.ladder_point``
names the point). Running the same command again continues an interrupted run (``Tuner.restore``)
provided the plan is unchanged; ``resume_scale(folder)`` does the same from the folder alone.

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

SCALE_FILE = "scale.json"
POINT_KEY = "ladder_point"  # the Tune config key (and parquet column param.ladder_point)
FORMAT = "archsearch.scale"
VERSION = 1


class ScaleError(ArchsearchError):
    """A scale run that cannot start or continue as asked."""


class LadderSearchSpace(SearchSpace):
    """The validated space, resolving ladder point ids to their trial configs.

    It shares the base space's state rather than re-validating it; the sweep's trainable,
    resource callback and results writer only call ``resolve``, ``candidate`` and ``stats``.
    """

    def __init__(self, base: SearchSpace, points: Sequence[LadderPoint],
                 origins: Mapping[str, str]) -> None:
        self.__dict__.update(base.__dict__)
        self.points = {p.point: p for p in points}
        self._origins = dict(origins)  # series key -> "3:1 even_end" (how analysis reads origins)

    def resolve(self, params: Mapping[str, Any]) -> TrialConfig:
        if POINT_KEY in params:
            return self.points[str(params[POINT_KEY])].trial
        return super().resolve(params)

    def candidate(self, pattern: str) -> Candidate:
        for point in self.points.values():
            if point.pattern == pattern:
                return Candidate(pattern, point.trial.layers,
                                 (self._origins.get(point.series, "list"),))
        return super().candidate(pattern)


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
    """Plan the ladder of ``space_path`` and train it, continuing a run already in the folder.

    Patterns: the top ``top_k`` full-budget patterns of the sweep at ``from_sweep`` (by the
    space's objectives, with the tuned values they won with), else every candidate of the space.
    """
    from archsearch.sweep.folder import SPACE_FILE, SweepFolder

    ls, text = _load(space_path, overrides)
    if from_sweep is not None:
        from archsearch.scaling.choose import top_patterns

        series = series_from_choices(ls.space, top_patterns(from_sweep, ls.space, top_k))
    else:
        series = series_from_candidates(ls.space)
    points = plan_ladder(ls, series)
    folder = SweepFolder.under(storage or ls.space.spec.storage, name or f"{ls.space.spec.name}-scale")
    manifest = _manifest(ls, series, points, folder.location, space_path, overrides, from_sweep)
    existing = folder.read_bytes(SCALE_FILE)
    resume = existing is not None
    if resume:
        _check_same_plan(json.loads(existing), manifest, folder.location)
    else:
        folder.write_bytes(SPACE_FILE, text.encode())
        folder.write_bytes(SCALE_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
    job = ScaleJob(space=_bridge(ls.space, series, points), location=folder.location,
                   points=tuple(points), resume=resume, address=address, verbose=verbose,
                   shared_storage_ok=shared_storage_ok, train_fn=train_fn)
    (runner or tune_runner)(job)
    return _outcome(folder, len(points))


def resume_scale(location: str, address: str | None = None, verbose: bool = False,
                 shared_storage_ok: bool = False, retry_errored: bool = False,
                 runner: Runner | None = None,
                 train_fn: Callable[..., Mapping[str, Any]] | None = None) -> ScaleOutcome:
    """Continue the scale run in ``location`` from its own files (space.yaml and scale.json)."""
    from archsearch.sweep.folder import SPACE_FILE, SweepFolder

    folder = SweepFolder.at(location)
    raw = folder.read_bytes(SCALE_FILE)
    text = folder.read_bytes(SPACE_FILE)
    if raw is None or text is None:
        raise ScaleError(f"{location} is not a scale folder (no {SCALE_FILE} or {SPACE_FILE})")
    manifest = json.loads(raw)
    space = SearchSpace.from_text(text.decode(), f"{location}/{SPACE_FILE}")
    ls = check_ladder(space)
    series = [Series.from_dict(s) for s in manifest["series"]]
    points = plan_ladder(ls, series)
    _check_same_plan(manifest, {"points": [p.as_dict() for p in points]}, location)
    job = ScaleJob(space=_bridge(space, series, points), location=folder.location,
                   points=tuple(points), resume=True, address=address, verbose=verbose,
                   shared_storage_ok=shared_storage_ok, retry_errored=retry_errored,
                   train_fn=train_fn)
    (runner or tune_runner)(job)
    return _outcome(folder, len(points))


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

    if key(old["points"]) != key(new["points"]):
        raise ScaleError(f"{location} holds a scale run with a different plan (rungs, seeds, "
                         f"patterns or token budgets changed); pick another --name")


def _outcome(folder: Any, total: int) -> ScaleOutcome:
    from archsearch.sweep.folder import TRIALS_FILE
    from archsearch.sweep.results import COMPLETED, FAILED_STATUS, read_table

    rows = read_table(folder, TRIALS_FILE)
    completed = sum(r.get("status") == COMPLETED for r in rows)
    failed = [r for r in rows if r.get("status") == FAILED_STATUS]
    unfinished = total - completed - len(failed)
    lines = [f"{total} ladder points: {completed} completed, {len(failed)} failed"
             + (f", {unfinished} not finished (interrupted?)" if unfinished else "")]
    for row in failed[:10]:
        lines.append(f"  {row.get('param.' + POINT_KEY)}  {row.get('pattern')}  {row.get('error')}")
    lines += ["", f"results in {folder.location}/",
              f"  {SCALE_FILE}   the plan: rungs, patterns and their rules, points",
              f"  {TRIALS_FILE}   one row per point (column param.{POINT_KEY})",
              f"next: archsearch recommend {folder.location}",
              "continue it if interrupted: run the same command again"]
    return ScaleOutcome(folder.location, total, completed, failed, unfinished, "\n".join(lines))


# ------------------------------------------------------------------ the Ray runner


def tune_runner(job: ScaleJob) -> None:
    """Train every point with Ray Tune, as a sweep trains its trials (module docstring)."""
    from archsearch.sweep import cluster
    from archsearch.sweep.folder import SweepFolder
    from archsearch.sweep.resources import max_gpus

    space = job.space
    folder = SweepFolder.at(job.location)
    connection = cluster.connect(job.address, job.verbose)
    try:
        resources = space.spec.resources
        cluster.check_resources(connection, resources.cpus, max_gpus(resources))
        cluster.check_storage(folder.location, connection, job.shared_storage_ok)
        from ray.tune import Tuner

        with cluster.ray_environment(job.verbose):
            if job.resume and Tuner.can_restore(folder.location):
                tuner = Tuner.restore(folder.location, trainable=_trainable(job, folder),
                                      resume_unfinished=True, resume_errored=job.retry_errored,
                                      restart_errored=False)
            else:
                tuner = _new_tuner(job, folder)
            tuner.fit()
    finally:
        cluster.disconnect()


def _trainable(job: ScaleJob, folder: Any) -> Any:
    from ray import tune

    from archsearch.sweep.resources import TrialResources
    from archsearch.sweep.runner import NODE_DATA_CACHE
    from archsearch.sweep.trainable import TrialSetup, run_trial

    space = job.space
    cache = NODE_DATA_CACHE if folder.remote else str(folder.local / "data_cache")
    setup = TrialSetup(space=space, data_cache=cache,
                       objectives=tuple(o.metric for o in space.spec.objectives),
                       train_fn=job.train_fn)
    return tune.with_resources(tune.with_parameters(run_trial, setup=setup), TrialResources(space))


def _new_tuner(job: ScaleJob, folder: Any) -> Any:
    from ray import tune

    from archsearch.sweep.progress import ProgressLine
    from archsearch.sweep.results import ResultsWriter

    space = job.space
    search = space.spec.search
    ids = [p.point for p in job.points]
    return tune.Tuner(
        _trainable(job, folder),
        param_space={POINT_KEY: tune.grid_search(ids)},
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=search.concurrency,
                                    trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(
            name=folder.name, storage_path=folder.storage, verbose=0, log_to_file=True,
            callbacks=[ResultsWriter(folder, space),
                       ProgressLine(space.spec.objectives, len(ids))],
            failure_config=tune.FailureConfig(max_failures=search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"

