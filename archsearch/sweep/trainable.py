"""The Ray Tune function trainable: one sampled config -> one trained, evaluated proxy.

Each report carries every metric ``train_proxy`` produced (so every objective, as OptunaSearch
needs) plus a ``meta`` mapping (node, versions; ``failed`` on a divergence). A checkpoint folder
the trainer wrote is handed to Tune, which copies it to the sweep's storage, then deleted here.

Faults: a run whose loss becomes NaN/inf fails the same way every time (the data stream and the
initialisation are seeded), and so does one with a user error (``ArchsearchError``: sizes that do
not fit, a bad corpus). Neither is raised to Ray, which would retry it up to ``max_failures``
times for nothing: the trial ends with a final report whose ``meta.failed`` holds the one-line
reason, and the sweep records it as failed. Anything else (a crash, a lost node, GPU memory
running out) is raised, and Ray retries the trial from its last checkpoint.

Where a trial starts: Ray's latest checkpoint of this trial in this run (a retry after a crash),
else the checkpoint the run's plan names in ``config[RUN_KEY]`` (a trial continued by ``resume``),
else step 0. A checkpoint that cannot be read (deleted files, a torn copy, not our format) does
not fail the trial: it restarts from step 0 and ``meta.note`` says so.
"""

from __future__ import annotations

import contextlib
import math
import platform
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from archsearch.autotune import use_node_cache
from archsearch.errors import ArchsearchError, CheckpointUnreadable
from archsearch.gpu import gpu_memory_guard, limit_gpu_memory
from archsearch.space import SearchSpace, TrialConfig
from archsearch.sweep.checkpoints import read_report, write_report
from archsearch.sweep.resources import trial_params
from archsearch.sweep.stall import StallTimer, previous_stall

META = "meta"
FAILURE = "failed"  # meta key (not a status): why a trial failed for good (diverged, user error)
# The config entry the sweep adds to a trial's sampled parameters: {"trial_id": stable id,
# "resume_from": checkpoint location or None, "note": why it starts where it starts}.
RUN_KEY = "_archsearch"

TrainFn = Callable[..., Mapping[str, Any]]  # train_proxy's signature


class InvalidReport(ArchsearchError):
    """A report without an objective, or with a NaN/inf one."""


class TrialOutOfMemory(Exception):
    """The trial's model did not fit in the GPU memory it was given (retried: the GPU may be
    shared with other trials that will have finished)."""


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a sweep shares (sent once through Ray's object store)."""

    space: SearchSpace
    data_cache: str | None  # a folder; None: the default cache of the node that runs the trial
    objectives: tuple[str, ...]
    train_fn: TrainFn | None = None  # None: archsearch.trainer.train_proxy
    autotune_seed: bytes | None = None  # Triton autotune choices to start GPU trials with


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """The function Ray Tune runs for each trial (``tune.with_parameters`` supplies ``setup``)."""
    import torch
    from ray import tune

    trial = setup.space.resolve(config)
    run = dict(config.get(RUN_KEY) or {})
    requested = tune.get_context().get_trial_resources().required_resources
    torch.set_num_threads(max(1, int(requested.get("CPU", 1))))
    gpus = requested.get("GPU", 0.0)
    train = setup.train_fn or _default_train_fn()
    workdir = Path(tempfile.mkdtemp(prefix="archsearch-trial-"))
    meta = _meta()
    trial_dir = Path(tune.get_context().get_trial_dir())
    notes = [run.get("note") or "", previous_stall(trial_dir, _shown_in_sweep(trial_dir))]
    if any(notes):
        meta["note"] = "; ".join(n for n in notes if n)
    reported = []
    timer = StallTimer(setup.space.spec.resources.stall_timeout, trial_dir)
    try:
        timer.start()
        checkpoint = tune.get_checkpoint()
        if checkpoint is None and run.get("resume_from"):
            checkpoint = tune.Checkpoint(run["resume_from"])
        resume_from, restored = _restore(checkpoint, workdir, meta)

        def report(metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
            _check_objectives(metrics, setup.objectives, trial)
            payload = {**metrics, META: meta}
            if checkpoint_dir is None:
                tune.report(payload)
            else:
                write_report(Path(checkpoint_dir), metrics)
                tune.report(payload, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))
                shutil.rmtree(checkpoint_dir, ignore_errors=True)  # Tune has its own copy now
            reported.append(metrics.get("step"))
            timer.arm()  # the trial is alive: the stall countdown starts again

        def train_from(start: Path | None) -> None:
            device = _device(gpus)
            guard = contextlib.nullcontext()
            if device == "cuda":
                # before fla's kernels load: they are tuned once per node, not once per trial
                use_node_cache(setup.autotune_seed)
                # a trial may use only its share: outgrowing it is a clear error
                share = min(gpus, 1.0)
                limit_gpu_memory(share)
                guard = gpu_memory_guard(share, trial_params(trial))
            with guard:
                train(trial, report, workdir, _data_cache(setup.data_cache),
                      resume_from=start, device=device)

        try:
            try:
                train_from(resume_from)
            except CheckpointUnreadable as err:
                meta["note"] = f"{err}: restarted from step 0"
                meta.pop("resumed_from_step", None)
                restored = {}
                train_from(None)
        except _out_of_memory() as err:
            raise TrialOutOfMemory(_oom_message(trial, gpus, err)) from None
        except ArchsearchError as err:  # the trainer's TrialDiverged is one
            # Tune insists on every objective in every report: NaN marks them unusable (ASHA
            # and Optuna skip them; SweepSearch tells Optuna FAIL on seeing meta.failed).
            nan = dict.fromkeys(setup.objectives, math.nan)
            tune.report({**nan, META: {**meta, FAILURE: one_line(err)}})
            return
        if not reported and restored:
            # Restored from the final checkpoint (the driver died right after it was taken): the
            # trainer has nothing left to do, so repeat the report that checkpoint came with.
            tune.report({**restored, META: meta})
    finally:
        timer.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _shown_in_sweep(trial_dir: Path) -> str:
    """Where a file of the trial's folder lands in the sweep folder: Ray stages a trial's folder
    at ``.../<run>/driver_artifacts/<trial>`` and copies it to ``<sweep>/runs/<run>/<trial>``."""
    if trial_dir.parent.name == "driver_artifacts":
        return f"runs/{trial_dir.parents[1].name}/{trial_dir.name}"
    return str(trial_dir)


def one_line(err: BaseException) -> str:
    """``Type: first line of the message`` (what the parquet ``error`` column holds)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _check_objectives(metrics: Mapping[str, Any], objectives: Sequence[str],
                      trial: TrialConfig) -> None:
    for name in objectives:
        value = metrics.get(name)
        if not isinstance(value, int | float):
            raise InvalidReport(f"the trainer did not report objective '{name}'")
        if not math.isfinite(value):
            raise InvalidReport(f"{name} became {value} by step {metrics.get('step')} "
                                  f"(pattern {trial.pattern})")


def _restore(checkpoint: Any, workdir: Path,
             meta: dict[str, Any]) -> tuple[Path | None, dict[str, Any]]:
    """Copy the checkpoint to start from (if any) next to the run; its report's metrics too.

    A checkpoint that cannot be copied means starting from step 0; ``meta`` records why.
    """
    if checkpoint is None:
        return None, {}
    try:
        folder = Path(checkpoint.to_directory(str(workdir / "restored")))
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint means: start afresh
        meta["note"] = f"checkpoint unreadable ({one_line(err)}): restarted from step 0"
        return None, {}
    restored = read_report(folder)
    if restored.get("step") is not None:
        meta["resumed_from_step"] = restored["step"]
    return folder, restored


def _device(gpus: float) -> str:
    if gpus <= 0:
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        raise ArchsearchError(f"the trial was given {gpus:g} GPU but torch sees no CUDA device")
    return "cuda"


def _data_cache(folder: str | None) -> Path:
    if folder is not None:
        return Path(folder).expanduser()
    from archsearch.data import default_cache_dir

    return default_cache_dir()


def _default_train_fn() -> TrainFn:
    from archsearch.trainer import train_proxy

    return train_proxy


def _out_of_memory() -> tuple[type[BaseException], ...]:
    import torch

    return (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),)


def _oom_message(trial: TrialConfig, gpus: float, err: BaseException) -> str:
    from archsearch.sweep.resources import trial_params

    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return (f"GPU out of memory: pattern {trial.pattern} with {trial_params(trial):,} parameters "
            f"at batch {trial.training.batch_size} x {trial.data.seq_len} on {gpus:g} GPU; give "
            f"it a larger fraction (resources.gpus_by_params) or fewer trials per GPU ({first})")


def _meta() -> dict[str, Any]:
    from archsearch.sweep.cluster import node_context

    versions = {}
    for package in ("torch", "archsearch", "ray", "optuna"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {**node_context(), "host": platform.node(), "versions": versions}
