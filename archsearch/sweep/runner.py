"""``archsearch sweep`` and ``archsearch resume``: set up Ray Tune around a search space and run it.

A sweep folder holds everything needed to continue: the effective space file (overrides
applied), ``sweep.json`` (where it came from), Ray's experiment state, the Optuna journal and the
parquet results. ``resume_sweep`` rebuilds the trainable from those and calls ``Tuner.restore``,
which keeps finished trials, continues unfinished ones from their checkpoints and samples the rest
with the restored sampler.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from archsearch.errors import ArchsearchError
from archsearch.space import SearchSpace
from archsearch.sweep import cluster
from archsearch.sweep.folder import (
    CURVES_FILE,
    JOURNAL_FILE,
    SPACE_FILE,
    SWEEP_FILE,
    TRIALS_FILE,
    SweepFolder,
)
from archsearch.sweep.overrides import load_with_overrides
from archsearch.sweep.pareto import eligible, front_table, pareto_front
from archsearch.sweep.progress import ProgressLine
from archsearch.sweep.resources import TrialResources, max_gpus
from archsearch.sweep.results import (
    COMPLETED,
    FAILED_STATUS,
    RUNNING,
    STOPPED,
    ResultsWriter,
    read_table,
)
from archsearch.sweep.search import SweepSearch, make_scheduler, num_samples
from archsearch.sweep.trainable import TrainFn, TrialSetup, run_trial

# The data cache of a sweep on URI storage: None = each node's default cache (the data module's
# $ARCHSEARCH_CACHE or ~/.cache/archsearch). archsearch.scaling.run uses it too.
NODE_DATA_CACHE: str | None = None


class SweepError(ArchsearchError):
    """A sweep that cannot start or resume as asked."""


@dataclass(frozen=True)
class SweepOptions:
    """How to run: where Ray is and how chatty to be (the space file says what to run)."""

    address: str | None = None  # None: a private local Ray
    verbose: bool = False
    shared_storage_ok: bool = False


@dataclass(frozen=True)
class SweepOutcome:
    folder: SweepFolder
    rows: list[dict[str, Any]]
    front: list[dict[str, Any]]
    summary: str  # what the CLI prints at the end
    finished: bool = True  # False: interrupted (Ctrl-C) before every trial ended
    errored: bool = False  # some trial ended in an error


def run_sweep(space_path: str, name: str | None = None, storage: str | None = None,
              overrides: Sequence[str] = (), options: SweepOptions = SweepOptions(),
              train_fn: TrainFn | None = None) -> SweepOutcome:
    """Start a new sweep of ``space_path`` in ``<storage>/<name>`` and run it to the end."""
    space, text = load_with_overrides(space_path, overrides)
    folder = SweepFolder.under(storage or space.spec.storage, name or space.spec.name)
    if folder.exists():
        raise SweepError(f"a sweep already exists in {folder.location}; continue it with "
                         f"'archsearch resume {folder.location}' or pick another --name")
    _connect(space, folder, options)
    try:
        folder.write_bytes(SPACE_FILE, text.encode())
        folder.write_bytes(SWEEP_FILE, json.dumps({
            "name": folder.name, "location": folder.location, "source": str(space_path),
            "overrides": list(overrides), "created_at": datetime.now(UTC).isoformat(),
            "address": options.address,
        }, indent=2).encode())
        with cluster.ray_environment(options.verbose):
            tuner = _new_tuner(space, folder, train_fn)
            return _finish(tuner.fit(), space, folder)
    finally:
        cluster.disconnect()


def resume_sweep(location: str, options: SweepOptions = SweepOptions(),
                 retry_errored: bool = False, train_fn: TrainFn | None = None) -> SweepOutcome:
    """Continue a sweep whose driver stopped (killed, interrupted, machine lost)."""
    folder = SweepFolder.at(location)
    record = folder.read_bytes(SWEEP_FILE)
    if record is None:
        raise SweepError(f"{location} is not a sweep folder (no {SWEEP_FILE})")
    created_at = json.loads(record)["location"]
    if created_at != folder.location:
        raise SweepError(f"this sweep was created at {created_at}; resume it there (a moved "
                         f"sweep folder cannot be resumed: its journal path is recorded)")
    for name in (SPACE_FILE, JOURNAL_FILE, TRIALS_FILE, CURVES_FILE):
        folder.fetch(name)
    space = SearchSpace.from_text((folder.local / SPACE_FILE).read_text(encoding="utf-8"),
                                  str(folder.local / SPACE_FILE))
    _connect(space, folder, options)
    try:
        from ray.tune import Tuner

        if not Tuner.can_restore(folder.location):
            raise SweepError(f"{location} has no Ray experiment state to resume from")
        with cluster.ray_environment(options.verbose):
            tuner = Tuner.restore(folder.location, trainable=_trainable(space, folder, train_fn),
                                  resume_unfinished=True, resume_errored=retry_errored,
                                  restart_errored=False)
            return _finish(tuner.fit(), space, folder)
    finally:
        cluster.disconnect()


# ---------------------------------------------------------------- setup


def _connect(space: SearchSpace, folder: SweepFolder, options: SweepOptions) -> None:
    """Start or join Ray, then check the sweep can run there (disconnecting if not)."""
    connection = cluster.connect(options.address, options.verbose)
    try:
        resources = space.spec.resources
        cluster.check_resources(connection, resources.cpus, max_gpus(resources))
        cluster.check_storage(folder.location, connection, options.shared_storage_ok)
    except BaseException:
        cluster.disconnect()
        raise


def _trainable(space: SearchSpace, folder: SweepFolder, train_fn: TrainFn | None) -> Any:
    from ray import tune

    # Shared storage holds one data cache for all nodes; with a URI each node keeps its own.
    cache = NODE_DATA_CACHE if folder.remote else str(folder.local / "data_cache")
    setup = TrialSetup(space=space, data_cache=cache,
                       objectives=tuple(o.metric for o in space.spec.objectives),
                       train_fn=train_fn)
    return tune.with_resources(tune.with_parameters(run_trial, setup=setup),
                               TrialResources(space))


def _new_tuner(space: SearchSpace, folder: SweepFolder, train_fn: TrainFn | None) -> Any:
    from ray import tune

    search = space.spec.search
    total = num_samples(space)
    return tune.Tuner(
        _trainable(space, folder, train_fn),
        tune_config=tune.TuneConfig(
            search_alg=SweepSearch(space, folder.local / JOURNAL_FILE),
            scheduler=make_scheduler(space),
            num_samples=total,
            max_concurrent_trials=search.concurrency,
            trial_dirname_creator=_trial_dirname,
            reuse_actors=True,  # a fresh actor re-imports torch and Ray: seconds per trial
        ),
        run_config=tune.RunConfig(
            name=folder.name,
            storage_path=folder.storage,
            verbose=0,
            callbacks=[ResultsWriter(folder, space), ProgressLine(space.spec.objectives, total)],
            failure_config=tune.FailureConfig(max_failures=search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


# ---------------------------------------------------------------- the end


def _finish(results: Any, space: SearchSpace, folder: SweepFolder) -> SweepOutcome:
    rows = read_table(folder, TRIALS_FILE)
    objectives = space.spec.objectives
    front = pareto_front(rows, objectives)
    ended = [r for r in rows if r.get("status") in (COMPLETED, STOPPED, FAILED_STATUS)]
    finished = len(ended) >= num_samples(space)
    summary = summarize(rows, front, space, folder, finished)
    return SweepOutcome(folder, rows, front, summary, finished, errored=bool(results.errors))


def summarize(rows: list[dict[str, Any]], front: list[dict[str, Any]], space: SearchSpace,
              folder: SweepFolder, finished: bool = True) -> str:
    objectives = space.spec.objectives
    statuses = [r.get("status") for r in rows]
    names = ", ".join(f"{o.metric} ({o.mode})" for o in objectives)
    full = len(eligible(rows, objectives))
    lines = [(f"{len(rows)} trials: {statuses.count(COMPLETED)} completed, "
              f"{statuses.count(STOPPED)} stopped early, {statuses.count(FAILED_STATUS)} failed")]
    if statuses.count(RUNNING):
        lines[0] += f", {statuses.count(RUNNING)} unfinished"
    if not finished:
        lines.insert(0, f"interrupted: {len(rows) - statuses.count(RUNNING)} of "
                        f"{num_samples(space)} trials finished; continue with: "
                        f"archsearch resume {folder.location}")
    if front:
        lines += ["", f"Pareto front of {names} over {full} full-budget completed trials:",
                  front_table(front, objectives, [t.name for t in space.tunables])]
    else:
        lines += ["", f"no full-budget completed trial: no Pareto front of {names}"]
    failed = [r for r in rows if r.get("status") == FAILED_STATUS]
    if failed:
        lines += ["", "failed trials:"]
        lines += [f"  {r['trial_id']}  {r.get('pattern')}  {r.get('error')}" for r in failed[:10]]
        if len(failed) > 10:
            lines.append(f"  ... and {len(failed) - 10} more (trials.parquet, column 'error')")
    where = folder.location
    lines += ["", f"results in {where}/",
              f"  {TRIALS_FILE}   one row per trial (status, parameters, last metrics, costs)",
              f"  {CURVES_FILE}   every evaluation of every trial",
              (f"  {JOURNAL_FILE}   the Optuna study "
               f"(optuna-dashboard {folder.local / JOURNAL_FILE})")]
    return "\n".join(lines)
