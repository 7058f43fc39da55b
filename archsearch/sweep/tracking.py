"""The experiment trackers a space file's ``tracking:`` section turns on, as Ray Tune callbacks.

Each tracker is one of Ray Tune's own logger callbacks (TensorBoard through tensorboardX, MLflow,
Weights & Biases), given only what the results tables hold: the trainer's metrics under the
tables' column names (``results.metrics_of``), at the trial's optimiser step. Ray's bookkeeping
(times, pids, the run record) stays out, so a chart in TensorBoard or MLflow is named and
stepped like the column in curves.parquet.

Every tracker's package is optional (``pip install 'archsearch[tensorboard]'``, ``[mlflow]``,
``[wandb]``); ``tracker_callbacks`` checks them before Ray starts, so a missing one is a
one-line error naming the extra, not a traceback from inside Ray.

Where things land: TensorBoard event files beside each trial's checkpoints
(``<sweep folder>/runs/<NNN>/<trial id>/``, so ``tensorboard --logdir <sweep folder>/runs`` shows
every run of the sweep, resumes included); MLflow runs in ``<sweep folder>/mlflow.db`` (SQLite) unless
the section names a tracking URI; W&B runs in the project named (default: the sweep's name), and
the local W&B files (offline runs, for ``wandb sync``) in ``<sweep folder>/wandb/`` (or
WANDB_DIR). Runs are named by the archsearch trial id.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

from archsearch.environ import environment
from archsearch.errors import ArchsearchError
from archsearch.space.schema import TrackingSection
from archsearch.sweep.folder import SweepFolder
from archsearch.sweep.results import metrics_of

# The default MLflow store, inside the sweep folder: SQLite, as MLflow 3 refuses its old file
# store unless MLFLOW_ALLOW_FILE_STORE=true. A file: URI (or a plain folder) in the section
# still works: the tracker opts in to the file store for its own calls (file_store_opt_in)
MLFLOW_DB = "mlflow.db"
MLFLOW_FILE_STORE_OPT_IN = "MLFLOW_ALLOW_FILE_STORE"

# tracker -> (module it needs, the archsearch extra that installs it)
TRACKER_PACKAGES = {
    "tensorboard": ("tensorboardX", "tensorboard"),
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
}


class TrackingError(ArchsearchError):
    """A tracker the space file turns on that cannot run here."""


def tracker_callbacks(tracking: TrackingSection, folder: SweepFolder) -> list[Any]:
    """The Ray Tune callbacks of the trackers ``tracking`` turns on (none by default)."""
    wanted = [name for name, on in (("tensorboard", tracking.tensorboard),
                                    ("mlflow", tracking.mlflow_settings()),
                                    ("wandb", tracking.wandb_settings())) if on]
    for name in wanted:
        _check_installed(name)
    callbacks: list[Any] = []
    if "tensorboard" in wanted:
        callbacks.append(_tensorboard_callback())
    mlflow = tracking.mlflow_settings()
    if mlflow is not None:
        callbacks.append(_mlflow_callback(
            mlflow.tracking_uri or default_mlflow_uri(folder), mlflow.experiment or folder.name))
    wandb = tracking.wandb_settings()
    if wandb is not None:
        if wandb.mode != "offline":
            _check_wandb_login(os.environ)
        callbacks.append(_wandb_callback(wandb.project or folder.name, wandb.group, wandb.entity,
                                         wandb.mode, default_wandb_dir(folder, os.environ)))
    return callbacks


def default_mlflow_uri(folder: SweepFolder) -> str:
    """The MLflow store in the sweep folder (on the driver's disk for URI storage)."""
    return f"sqlite:///{(folder.local / MLFLOW_DB).resolve()}"


def default_wandb_dir(folder: SweepFolder, environ: Mapping[str, str]) -> str | None:
    """Where W&B writes its local run files: WANDB_DIR when set, else the sweep folder (on the
    driver's disk), so offline runs land in ``<sweep folder>/wandb/offline-run-*``."""
    if environ.get("WANDB_DIR"):
        return None  # wandb.init reads it itself
    return str(folder.local.resolve())


def is_file_store(tracking_uri: str) -> bool:
    """Whether MLflow reads ``tracking_uri`` as its folder-of-files store (``file:`` or a path)."""
    return urlparse(tracking_uri).scheme in ("", "file")


@contextmanager
def file_store_opt_in(tracking_uri: str) -> Iterator[None]:
    """MLflow 3 builds its file store on every call and refuses it unless
    MLFLOW_ALLOW_FILE_STORE=true; a space file that names one has asked for it, so the tracker's
    calls run with the opt-in set, and the driver's environment is given back after each."""
    if not is_file_store(tracking_uri) or os.environ.get(MLFLOW_FILE_STORE_OPT_IN):
        yield
        return
    with environment({MLFLOW_FILE_STORE_OPT_IN: "true"}):
        yield


def table_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """What a tracker is given of a Tune result: the table's metrics, stepped by optimiser step.

    Ray's loggers take their x axis from ``training_iteration`` (the report count); the trial's
    own ``step`` is the one curves.parquet and the notebooks plot against.
    """
    metrics = metrics_of(result)
    step = metrics.get("step", result.get("training_iteration", 0))
    return {**metrics, "training_iteration": int(step)}


def _check_installed(tracker: str) -> None:
    module, extra = TRACKER_PACKAGES[tracker]
    if importlib.util.find_spec(module) is None:
        raise TrackingError(f"tracking.{tracker} needs the {module} package: "
                            f"pip install 'archsearch[{extra}]'")


def _check_wandb_login(environ: Mapping[str, str]) -> None:
    """W&B needs a key (or offline mode) before any trial runs; Ray would fail inside Tune."""
    if environ.get("WANDB_MODE") in ("offline", "disabled") or environ.get("WANDB_API_KEY"):
        return
    import wandb

    if wandb.login(prompt=False):  # a key `wandb login` saved (~/.netrc); asks no server
        return
    raise TrackingError("tracking.wandb needs a W&B key: set WANDB_API_KEY, run 'wandb login', "
                        "or set WANDB_MODE=offline")


def _tensorboard_callback() -> Any:
    from ray.tune.logger import TBXLoggerCallback

    class TensorBoardTables(TBXLoggerCallback):
        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            super().log_trial_result(iteration, trial, table_result(result))

    return TensorBoardTables()


def _mlflow_callback(tracking_uri: str, experiment: str) -> Any:
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class MlflowTables(MLflowLoggerCallback):
        # every hook that reaches the store runs inside file_store_opt_in (a no-op for SQLite
        # and servers)
        def setup(self, *args: Any, **kwargs: Any) -> None:
            with file_store_opt_in(tracking_uri):
                super().setup(*args, **kwargs)

        def log_trial_start(self, trial: Any) -> None:
            with file_store_opt_in(tracking_uri):
                super().log_trial_start(trial)

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            table = table_result(result)
            step = table.pop("training_iteration")  # the step, not a metric of the table
            with file_store_opt_in(tracking_uri):
                self.mlflow_util.log_metrics(run_id=self._trial_runs[trial],
                                             metrics_to_log=table, step=step)

        def log_trial_end(self, trial: Any, failed: bool = False) -> None:
            with file_store_opt_in(tracking_uri):
                super().log_trial_end(trial, failed)

    return MlflowTables(tracking_uri=tracking_uri, experiment_name=experiment,
                        save_artifact=False)


def _wandb_callback(project: str, group: str | None, entity: str | None,
                    mode: str | None, directory: str | None) -> Any:
    from ray.air.integrations.wandb import WandbLoggerCallback

    class FlushedRun(WandbLoggerCallback._logger_actor_cls):  # type: ignore[misc, name-defined]
        def run(self) -> None:
            super().run()
            # wandb.finish() can return before W&B's service process has written the run's last
            # records, and Ray kills this actor, the service with it, as soon as run() returns:
            # under load a run file was cut at 32,768 bytes, its exit record missing. teardown()
            # waits for the service to finish.
            self._wandb.teardown()

    class WandbTables(WandbLoggerCallback):
        _logger_actor_cls = FlushedRun

        def setup(self, *args: Any, **kwargs: Any) -> None:
            # Ray's setup demands a key unless WANDB_MODE says offline; a section that says
            # offline needs none (the project is always named here, which is all else it does)
            if self.kwargs.get("mode") != "offline":
                super().setup(*args, **kwargs)

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            super().log_trial_result(iteration, trial, table_result(result))

        def __del__(self) -> None:
            # at interpreter exit Ray's module globals are gone and its __del__ raises; every
            # logging actor was already stopped at the experiment's end
            try:
                super().__del__()
            except AttributeError:
                pass

    # entity, mode and dir go to wandb.init in each trial's logging actor. A mode there
    # overrides WANDB_MODE, so `mode: offline` holds whatever Ray's workers see. The dir is
    # not the trial folder, where the actor works: Ray copies that folder into the sweep
    # folder before the last trial's W&B run has finished writing
    extra = {key: value for key, value in (("entity", entity), ("mode", mode),
                                           ("dir", directory)) if value}
    return WandbTables(project=project, group=group, log_config=False, **extra)
