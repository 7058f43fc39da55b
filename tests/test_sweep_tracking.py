"""Trackers: a tiny sweep's metrics read back from TensorBoard's event files, MLflow's SQLite
store and W&B's offline run files (no account, no network), the sweep's journal read by
optuna-dashboard over HTTP, and the one-line errors."""

import json
import os
import threading
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pandas as pd
import pytest
from helpers.wandb_offline import read_offline_run

from archsearch.errors import SpaceError
from archsearch.space import SearchSpace
from archsearch.space.schema import MlflowTracking, TrackingSection, WandbTracking
from archsearch.sweep import run_sweep
from archsearch.sweep.folder import JOURNAL_FILE, SweepFolder
from archsearch.sweep.tracking import (
    TRACKER_PACKAGES,
    TrackingError,
    default_wandb_dir,
    file_store_opt_in,
    is_file_store,
    table_result,
    tracker_callbacks,
)
from archsearch.testing.standin import SyntheticTrainer

TINY = """
name: tracked
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["GA", "AG", "GG"]}
data: {seq_len: 16}
training: {tokens: 320, batch_size: 2, checkpoint_every: 5}
evaluation: {every: 5}
objectives:
  - {metric: semantic_loss, mode: min}
search: {algorithm: grid, samples: 3, concurrency: 1}
tracking:
  tensorboard: true
  mlflow: true
  wandb: {mode: offline}
"""


@pytest.fixture(scope="module")
def tracked_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 3-trial synthetic sweep with TensorBoard, MLflow and offline W&B on."""
    root = tmp_path_factory.mktemp("tracked")
    (root / "space.yaml").write_text(TINY)
    with pytest.MonkeyPatch.context() as env:
        # no key, no login: offline W&B needs neither; its settings stay out of $HOME
        for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR"):
            env.delenv(name, raising=False)
        for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            env.setenv(name, str(root / name.lower()))
        outcome = run_sweep(str(root / "space.yaml"), storage=str(root / "sweeps"),
                            train_fn=SyntheticTrainer())
    assert outcome.finished and not outcome.errored
    return root / "sweeps" / "tracked"


def _curves(folder: Path) -> pd.DataFrame:
    return pd.read_parquet(folder / "curves.parquet")


def test_tensorboard_event_files_hold_every_trials_curve_under_the_table_names(tracked_sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    curves = _curves(tracked_sweep)
    events = sorted(tracked_sweep.glob("runs/*/*/events.out.tfevents.*"))
    by_trial = {path.parent.name: path for path in events}
    assert set(by_trial) == set(curves["trial_id"])
    for trial_id, path in by_trial.items():
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        tags = accumulator.Tags()["scalars"]
        assert "ray/tune/semantic_loss" in tags and "ray/tune/val_loss" in tags
        assert not any("time_this_iter_s" in t or "_meta" in t for t in tags)  # Ray's, not ours
        expected = curves[curves["trial_id"] == trial_id].sort_values("step")
        logged = accumulator.Scalars("ray/tune/semantic_loss")
        assert [e.step for e in logged] == list(expected["step"])
        assert [e.value for e in logged] == pytest.approx(list(expected["semantic_loss"]),
                                                          rel=1e-6)


def test_mlflow_store_has_one_run_per_trial_with_the_final_metrics(tracked_sweep):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tracked_sweep / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    trials = pd.read_parquet(tracked_sweep / "trials.parquet").set_index("trial_id")
    assert sorted(r.info.run_name for r in runs) == sorted(trials.index)
    for run in runs:
        row = trials.loc[run.info.run_name]
        assert run.data.metrics["semantic_loss"] == pytest.approx(row["semantic_loss"], rel=1e-9)
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert max(m.step for m in history) == row["step"]
        assert "time_this_iter_s" not in run.data.metrics


def test_wandb_offline_runs_hold_every_trials_history_and_final_metrics(tracked_sweep):
    trials = pd.read_parquet(tracked_sweep / "trials.parquet").set_index("trial_id")
    curves = _curves(tracked_sweep)
    files = sorted(tracked_sweep.glob("wandb/offline-run-*/run-*.wandb"))
    runs = {run.name: run for run in map(read_offline_run, files)}
    assert sorted(runs) == sorted(trials.index)
    for trial_id, run in runs.items():
        assert run.finished and run.project == "tracked"
        row = trials.loc[trial_id]
        assert run.summary["semantic_loss"] == pytest.approx(row["semantic_loss"], rel=1e-12)
        assert run.summary["val_loss"] == pytest.approx(row["val_loss"], rel=1e-12)
        expected = curves[curves["trial_id"] == trial_id].sort_values("step")
        assert [h["_step"] for h in run.history] == list(expected["step"])
        assert [h["semantic_loss"] for h in run.history] == pytest.approx(
            list(expected["semantic_loss"]), rel=1e-12)
        assert not any("time_this_iter_s" in h or "config" in h for h in run.history)


def test_mlflow_file_store_named_by_a_file_uri_holds_every_trial(tmp_path, monkeypatch):
    """MLflow 3 refuses its file store unless MLFLOW_ALLOW_FILE_STORE=true; a space file that
    names one gets it, and the driver's environment is left as it was."""
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    store = tmp_path / "mlruns"
    text = (TINY.split("tracking:")[0].replace('["GA", "AG", "GG"]', '["GA", "AG"]')
            .replace("samples: 3", "samples: 2")
            + f"tracking: {{mlflow: {{tracking_uri: 'file://{store}', experiment: e}}}}\n")
    (tmp_path / "space.yaml").write_text(text)
    outcome = run_sweep(str(tmp_path / "space.yaml"), storage=str(tmp_path / "sweeps"),
                        train_fn=SyntheticTrainer())
    assert outcome.finished and not outcome.errored
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    assert (store / "meta.yaml").is_file() or any(store.glob("*/meta.yaml"))  # files, no DB
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own reads
    client = MlflowClient(tracking_uri=f"file://{store}")
    runs = client.search_runs([client.get_experiment_by_name("e").experiment_id])
    trials = pd.read_parquet(tmp_path / "sweeps" / "tracked" / "trials.parquet")
    trials = trials.set_index("trial_id")
    assert sorted(r.info.run_name for r in runs) == sorted(trials.index)
    for run in runs:
        row = trials.loc[run.info.run_name]
        assert run.data.metrics["semantic_loss"] == pytest.approx(row["semantic_loss"], rel=1e-9)
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert max(m.step for m in history) == row["step"]


def test_file_store_opt_in_is_only_for_file_stores_and_given_back(monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert is_file_store("file:///tmp/mlruns") and is_file_store("mlruns")
    assert not is_file_store("sqlite:///m.db") and not is_file_store("http://host:5000")
    with file_store_opt_in("file:///tmp/mlruns"):
        assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"
    with file_store_opt_in("sqlite:///m.db"):
        assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ


def test_optuna_dashboard_serves_the_sweeps_journal_over_http(tracked_sweep):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna_dashboard import wsgi

    storage = JournalStorage(JournalFileBackend(str(tracked_sweep / JOURNAL_FILE)))

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = make_server("127.0.0.1", 0, wsgi(storage), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with urllib.request.urlopen(f"{base}/api/studies", timeout=30) as reply:
            studies = json.load(reply)["study_summaries"]
        assert len(studies) == 1
        study_id = studies[0]["study_id"]
        with urllib.request.urlopen(f"{base}/api/studies/{study_id}?after=0", timeout=30) as reply:
            trials = json.load(reply)["trials"]
    finally:
        server.shutdown()
        thread.join()
    assert len(trials) == 3 and all(t["state"] == "Complete" for t in trials)


def test_tracking_is_off_by_default_and_true_means_the_defaults(tmp_path):
    folder = SweepFolder.under(str(tmp_path), "quiet")
    assert tracker_callbacks(TrackingSection(), folder) == []
    on = TrackingSection(mlflow=True, wandb=True)
    assert on.mlflow_settings() == MlflowTracking() and on.wandb_settings() == WandbTracking()
    named = TrackingSection(mlflow=MlflowTracking(experiment="e"))
    assert named.mlflow_settings().experiment == "e" and named.wandb_settings() is None


def test_wandb_offline_needs_no_key_and_online_without_one_is_one_line(tmp_path, monkeypatch):
    import wandb

    folder = SweepFolder.under(str(tmp_path), "w")
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(wandb, "login", lambda **kwargs: False)  # no key saved on this machine
    (callback,) = tracker_callbacks(TrackingSection(wandb=WandbTracking(mode="offline")), folder)
    assert callback.kwargs == {"mode": "offline", "dir": str(folder.local.resolve())}
    assert callback.project == "w"
    with pytest.raises(TrackingError) as err:
        tracker_callbacks(TrackingSection(wandb=True), folder)
    assert "set WANDB_MODE=offline" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("WANDB_MODE", "offline")  # the environment's offline works as well
    assert len(tracker_callbacks(TrackingSection(wandb=True), folder)) == 1
    assert default_wandb_dir(folder, {"WANDB_DIR": "/elsewhere"}) is None


def test_a_tracker_whose_package_is_missing_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    folder = SweepFolder.under(str(tmp_path), "w")
    monkeypatch.setitem(TRACKER_PACKAGES, "wandb", ("archsearch_no_such_module", "wandb"))
    with pytest.raises(TrackingError) as err:
        tracker_callbacks(TrackingSection(wandb=WandbTracking(project="p")), folder)
    assert str(err.value) == ("tracking.wandb needs the archsearch_no_such_module package: "
                              "pip install 'archsearch[wandb]'")


def test_a_sweep_with_a_missing_tracker_fails_before_ray_starts(tmp_path, monkeypatch):
    monkeypatch.setitem(TRACKER_PACKAGES, "mlflow", ("archsearch_no_such_module", "mlflow"))
    (tmp_path / "space.yaml").write_text(TINY)
    with pytest.raises(TrackingError, match=r"pip install 'archsearch\[mlflow\]'"):
        run_sweep(str(tmp_path / "space.yaml"), storage=str(tmp_path / "sweeps"),
                  train_fn=SyntheticTrainer())
    assert not list((tmp_path / "sweeps" / "tracked").glob("runs/*"))


@pytest.mark.parametrize("section, problem", [
    ("{tensorboard: yes please}", "tracking.tensorboard: expected true or false"),
    ("{mlflow: {experiment: ''}}", "tracking.mlflow.experiment: must not be empty"),
    ("{wandb: {projet: x}}", "did you mean 'project'"),
    ("{wandb: {mode: offlne}}", "tracking.wandb.mode: must be one of online, offline"),
    ("{neptune: true}", "unknown key 'neptune'"),
])
def test_a_bad_tracking_section_is_one_line_naming_the_field(section, problem):
    text = TINY.split("tracking:")[0] + f"tracking: {section}\n"
    with pytest.raises(SpaceError) as err:
        SearchSpace.from_text(text, "space.yaml")
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_trackers_get_the_tables_metrics_at_the_trials_step():
    result = {"semantic_loss": 2.5, "step": 40, "tokens_seen": 1280, "training_iteration": 3,
              "time_this_iter_s": 0.1, "pid": 7, "_meta": {"host": "h"}, "config": {"a": 1}}
    assert table_result(result) == {"semantic_loss": 2.5, "step": 40, "tokens_seen": 1280,
                                    "training_iteration": 40}
