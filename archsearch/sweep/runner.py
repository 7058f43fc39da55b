"""``archsearch sweep`` and ``archsearch resume``: run a search space's trials with Ray Tune.

A sweep folder holds everything a later run needs, as plain data: the effective space file
(overrides applied), ``sweep.json`` (where it came from), the Optuna journal, the parquet
results and the trials' checkpoints under ``runs/``. Every run, the first one and each resume,
goes the same way (``run_in_folder``):

1. the journal's torn last record, if any, is dropped (journal.py);
2. the tables are backed up, and rebuilt if unreadable (tables.py);
3. ``plan_run`` works out which trials continue, from which checkpoint, and how many are new
   (plan.py);
4. a fresh Ray Tune experiment in ``runs/<NNN>/`` runs them: ``SweepSearch`` hands out the
   continued trials, then asks Optuna for new ones; ``ResultsWriter`` adds to the tables.

Ray's own experiment state is pickled and never read back: a folder someone else wrote cannot
run code here (docs/SWEEPS.md, "Sharing a sweep folder"), and a moved folder resumes as well as
one left in place. One driver at a time holds the folder's lock (lock.py).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from archsearch.autotune import checked_archive, pack_autotune, read_archive
from archsearch.data.checks import check_data
from archsearch.errors import ArchsearchError
from archsearch.mps import CONTROL, cuda_mps
from archsearch.space import SearchSpace
from archsearch.sweep import cluster
from archsearch.sweep.asha import make_scheduler
from archsearch.sweep.checkpoints import RUNS_DIR, latest_checkpoints, next_run_name
from archsearch.sweep.folder import (
    AUTOTUNE_FILE,
    CURVES_FILE,
    JOURNAL_FILE,
    SCALE_FILE,
    SPACE_FILE,
    SWEEP_FILE,
    TRIALS_FILE,
    SweepFolder,
)
from archsearch.sweep.journal import open_study, repair_journal
from archsearch.sweep.overrides import load_with_overrides
from archsearch.sweep.plan import RunPlan, plan_run
from archsearch.sweep.progress import ProgressLine
from archsearch.sweep.resources import TrialResources, max_gpus
from archsearch.sweep.results import (
    ResultsWriter,
    UnreadableTable,
    read_table,
)
from archsearch.sweep.search import SweepSearch, grid_points, make_sampler, num_samples
from archsearch.sweep.stall import remove_unfired
from archsearch.sweep.status import ENDED
from archsearch.sweep.tables import load_tables
from archsearch.sweep.tracking import tracker_callbacks
from archsearch.sweep.trainable import RUN_KEY, TrainFn, TrialSetup, run_trial

# The data cache of a sweep on URI storage: None = each node's default cache (the data module's
# $ARCHSEARCH_CACHE or ~/.cache/archsearch).
NODE_DATA_CACHE: str | None = None


class SweepError(ArchsearchError):
    """A sweep that cannot start or resume as asked."""


@dataclass(frozen=True)
class SweepOptions:
    """How to run: where Ray is and how chatty to be (the space file says what to run)."""

    address: str | None = None  # None: a private local Ray
    verbose: bool = False
    shared_storage_ok: bool = False
    # a tar of Triton autotune choices (archsearch/autotune.py) to seed every node's cache with;
    # None: the sweep folder's own autotune.tar, if an earlier run on a GPU left one
    autotune_cache: str | None = None


@dataclass(frozen=True)
class SweepOutcome:
    folder: SweepFolder
    rows: list[dict[str, Any]]
    space: SearchSpace  # the space it ran (analysis.sweep_summary prints the outcome)
    total: int  # trials the sweep asks for
    finished: bool = True  # False: interrupted (Ctrl-C) before every trial ended
    errored: bool = False  # some trial ended in an error


def run_sweep(space_path: str, name: str | None = None, storage: str | None = None,
              overrides: Sequence[str] = (), options: SweepOptions = SweepOptions(),
              train_fn: TrainFn | None = None) -> SweepOutcome:
    """Start a new sweep of ``space_path`` in ``<storage>/<name>`` and run it to the end."""
    space, text = load_with_overrides(space_path, overrides)
    check_data(space)
    folder = SweepFolder.under(storage or space.spec.storage, name or space.spec.name)
    with folder.lock("sweep"):
        if folder.read_bytes(SCALE_FILE) is not None:
            raise SweepError(f"{folder.location} holds a scale run, not a sweep; pick another "
                             f"--name (continue the scale run with 'archsearch resume "
                             f"{folder.location}')")
        if folder.exists():
            if trials_started(folder):
                raise SweepError(f"a sweep already exists in {folder.location}; continue it with "
                                 f"'archsearch resume {folder.location}' or pick another --name")
            # A sweep that failed before any trial started (Ray did not start, a check failed)
            # left only its record: take the folder over, with nothing of the old study kept.
            folder.remove(JOURNAL_FILE)
        folder.write_bytes(SPACE_FILE, text.encode())
        folder.write_bytes(SWEEP_FILE, json.dumps({
            "name": folder.name, "location": folder.location, "source": str(space_path),
            "overrides": list(overrides), "created_at": datetime.now(UTC).isoformat(),
            "address": options.address,
        }, indent=2).encode())
        return run_in_folder(space, folder, options, train_fn)


def resume_sweep(location: str, options: SweepOptions = SweepOptions(),
                 retry_errored: bool = False, train_fn: TrainFn | None = None) -> SweepOutcome:
    """Continue a sweep whose driver stopped (killed, interrupted, machine lost)."""
    folder = SweepFolder.at(location)
    if not folder.exists():
        raise SweepError(f"{location} is not a sweep folder (no {SWEEP_FILE})")
    with folder.lock("resume"):
        _check_record(folder)
        folder.fetch(SPACE_FILE)
        space = read_space(folder)
        check_data(space)
        return run_in_folder(space, folder, options, train_fn, retry_errored=retry_errored)


def _mps_for(space: SearchSpace, options: SweepOptions) -> contextlib.AbstractContextManager:
    """CUDA MPS around the sweep's private local Ray when ``resources.mps`` asks for it (started
    before Ray, so that its trial processes are MPS clients)."""
    if not space.spec.resources.mps:
        return contextlib.nullcontext()
    if options.address is not None:
        raise SweepError(f"resources.mps: the sweep starts MPS only for its private local Ray; on "
                         f"the cluster at {options.address}, start {CONTROL} -d on every node and "
                         f"set resources.mps: false")
    return cuda_mps()


def read_space(folder: SweepFolder) -> SearchSpace:
    """The sweep's effective space, from its folder; a one-line error if unusable."""
    data = folder.read_bytes(SPACE_FILE)
    if data is None:
        raise SweepError(f"{folder.location} has no {SPACE_FILE}: it is not a sweep folder")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SweepError(f"{folder.location}/{SPACE_FILE} is not UTF-8 text") from None
    return SearchSpace.from_text(text, f"{folder.location}/{SPACE_FILE}")


def run_in_folder(space: SearchSpace, folder: SweepFolder, options: SweepOptions,
                  train_fn: TrainFn | None = None, retry_errored: bool = False,
                  points: Sequence[Mapping[str, Any]] | None = None) -> SweepOutcome:
    """Run what is left of the sweep in ``folder`` (the module docstring's four steps).

    The caller holds the folder's lock. ``points``: run exactly these parameter sets, once each,
    with no early stopping (``archsearch scale``); None: the space's own search.
    """
    for name in (JOURNAL_FILE, TRIALS_FILE, CURVES_FILE):
        folder.fetch(name)
    journal = folder.local / JOURNAL_FILE
    notes = [w for w in [repair_journal(journal)] if w]
    study = open_study(journal, [o.mode for o in space.spec.objectives], make_sampler(space))
    tables = load_tables(folder, space, study)
    notes += tables.warnings
    if tables.trials and not study.get_trials(deepcopy=False):
        raise SweepError(f"{journal} records no trial but {TRIALS_FILE} has {len(tables.trials)}:"
                         f" the journal was lost or replaced; restore it, or start a new sweep")
    metrics = [o.metric for o in space.spec.objectives]
    if points is None:
        total = num_samples(space)
        grid = grid_points(space) if space.spec.search.algorithm == "grid" else None
    else:
        total, grid = len(points), [dict(p) for p in points]

    def ask_retry(params: dict[str, Any], trial_id: str) -> int:
        study.enqueue_trial(params)
        asked = study.ask()
        space.suggest(asked)
        asked.set_user_attr("trial_id", trial_id)
        return asked.number

    plan = plan_run(study, tables.trials, total, metrics, latest_checkpoints(folder.location),
                    grid, retry_errored, ask_retry, space.missing)
    notes += plan.notes
    for line in notes:
        print(f"archsearch: {line}", file=sys.stderr)
    writer = ResultsWriter(folder, space, tables.trials, tables.curves, run="")
    writer.write()  # rebuilt tables reach the disk even if no trial starts
    interrupted = errored = False
    if plan.runs:
        writer.run = next_run_name(folder.location)
        scheduler = None if points is not None else make_scheduler(space, _history(tables))
        seed = _autotune_seed(folder, options)
        mps = _mps_for(space, options)  # refused here, before anything starts; entered below
        trackers = tracker_callbacks(space.spec.tracking, folder)  # fails before Ray starts
        try:
            with mps, cluster.ray_session(options.address, options.verbose) as connection:
                resources = space.spec.resources
                cluster.check_resources(connection, resources.cpus, max_gpus(resources))
                cluster.check_storage(folder.location, connection, options.shared_storage_ok)
                with cluster.ray_environment(options.verbose):
                    tuner = _tuner(space, folder, study, plan, writer, scheduler, train_fn,
                                   seed, trackers)
                    errored = bool(tuner.fit().errors)
        except KeyboardInterrupt:
            interrupted = True
        if options.address is None and max_gpus(space.spec.resources) > 0:
            _keep_autotune(folder)
        if not folder.remote:  # timer files a trial's checkpoints carried along but never fired
            remove_unfired(folder.local / RUNS_DIR / writer.run)
        # Through Ray Client (ray://) the writer ran on the cluster, on a copy of these tables:
        # take what it wrote before writing ours, so neither copy loses rows to the other.
        writer.absorb_files()
        writer.write()
    rows = list(tables.trials.values())
    finished = not interrupted and sum(r.get("status") in ENDED for r in rows) >= total
    return SweepOutcome(folder, rows, space, total, finished, errored)


# ---------------------------------------------------------------- setup


def _tuner(space: SearchSpace, folder: SweepFolder, study: Any, plan: RunPlan,
           writer: ResultsWriter, scheduler: Any, train_fn: TrainFn | None,
           autotune_seed: bytes | None = None, trackers: Sequence[Any] = ()) -> Any:
    from ray import tune

    search = space.spec.search
    return tune.Tuner(
        _trainable(space, folder, train_fn, autotune_seed),
        tune_config=tune.TuneConfig(
            search_alg=SweepSearch(space, study, plan),
            scheduler=scheduler,
            num_samples=plan.runs,
            max_concurrent_trials=search.concurrency,
            trial_dirname_creator=_trial_dirname,
            trial_name_creator=_trial_dirname,  # trackers name their runs by the trial id
            reuse_actors=True,  # a fresh actor re-imports torch and Ray: seconds per trial
        ),
        run_config=tune.RunConfig(
            name=writer.run,
            storage_path=f"{folder.location}/{RUNS_DIR}",
            verbose=0,
            callbacks=[writer, ProgressLine(space.spec.objectives, plan.total, plan.ended),
                       *trackers],
            failure_config=tune.FailureConfig(max_failures=search.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def _trainable(space: SearchSpace, folder: SweepFolder, train_fn: TrainFn | None,
               autotune_seed: bytes | None = None, trackers: Sequence[Any] = ()) -> Any:
    from ray import tune

    # Shared storage holds one data cache for all nodes; with a URI each node keeps its own.
    cache = NODE_DATA_CACHE if folder.remote else str(folder.local / "data_cache")
    setup = TrialSetup(space=space, data_cache=cache,
                       objectives=tuple(o.metric for o in space.spec.objectives),
                       train_fn=train_fn, autotune_seed=autotune_seed)
    return tune.with_resources(tune.with_parameters(run_trial, setup=setup),
                               TrialResources(space))


def _autotune_seed(folder: SweepFolder, options: SweepOptions) -> bytes | None:
    """The autotune archive GPU trials seed their node's Triton cache with (a few KB)."""
    if options.autotune_cache is not None:
        return read_archive(options.autotune_cache)
    data = folder.read_bytes(AUTOTUNE_FILE)
    if data is None:
        return None
    try:
        return checked_archive(data, f"{folder.location}/{AUTOTUNE_FILE}")
    except ArchsearchError as err:  # only a speed-up: a damaged one is skipped, not fatal
        print(f"archsearch: {err}; trials tune their kernels afresh", file=sys.stderr)
        return None


def _keep_autotune(folder: SweepFolder) -> None:
    """Save this machine's autotune choices in the folder, so a resume on a fresh machine of the
    same GPU kind skips the tuning (a private local cluster: its trials shared this cache)."""
    packed = pack_autotune()
    if packed:
        folder.write_bytes(AUTOTUNE_FILE, packed)


def _trial_dirname(trial: Any) -> str:
    return str(trial.config[RUN_KEY]["trial_id"])


def _history(tables: Any) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(trial id, sampled params, curve row) of every earlier evaluation, for ASHA's rungs."""
    params = {trial_id: {k[len("param."):]: v for k, v in row.items()
                         if k.startswith("param.") and v is not None}
              for trial_id, row in tables.trials.items()}
    return [(trial_id, params[trial_id], row)
            for (trial_id, _), row in sorted(tables.curves.items()) if trial_id in params]


def trials_started(folder: SweepFolder) -> bool:
    """Whether any trial of the sweep (or scale run) in ``folder`` has a row or a checkpoint (a
    table that cannot be read counts: it is not ours to overwrite)."""
    try:
        rows = read_table(folder, TRIALS_FILE)
    except UnreadableTable:
        return True
    return bool(rows) or bool(latest_checkpoints(folder.location))


def _check_record(folder: SweepFolder) -> None:
    data = folder.read_bytes(SWEEP_FILE) or b""
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        raise SweepError(f"{folder.location}/{SWEEP_FILE} is not a sweep record (expected a JSON "
                         f"object with its name, source and creation time)")
