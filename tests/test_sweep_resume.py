"""A sweep whose driver is SIGKILLed mid-run continues with `archsearch resume`: every grid point
is completed exactly once, in the parquet files and in the Optuna study."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pyarrow.parquet as pq

from archsearch.space import SearchSpace
from archsearch.sweep.journal import STUDY_NAME, journal_storage

SPACE = """
name: killed
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["AA", "GG", "GA"]}
data: {seq_len: 16, builtin_documents: 60, vocab_size: 300}
training: {tokens: 2560, batch_size: 2, lr: {choices: [0.003, 0.001]}, checkpoint_every: 20}
evaluation: {every: 20, validation_tokens: 512, probe_examples: 4, bootstrap: 10, probe_steps: 2,
             probe_len: 32}
objectives:
  - {metric: semantic_loss, mode: min}
  - {metric: copy_loss, mode: min}
search: {algorithm: grid, samples: 6, concurrency: 2, seed: 0}
"""


def _completed(trials_file: Path) -> int:
    try:
        return sum(r["status"] == "completed" for r in pq.read_table(trials_file).to_pylist())
    except (OSError, ValueError, KeyError):  # not written yet
        return 0


def test_killed_driver_resumes_to_exactly_the_requested_trials(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    folder = tmp_path / "sweeps" / "killed"
    cli = [sys.executable, "-m", "archsearch.cli"]
    driver = subprocess.Popen([*cli, "sweep", "space.yaml", "--storage", "sweeps"], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while _completed(folder / "trials.parquet") < 2 and driver.poll() is None:
            assert time.monotonic() < deadline, "no trial completed in time"
            time.sleep(0.2)
        assert driver.poll() is None, "the sweep finished before it could be killed"
        os.kill(driver.pid, signal.SIGKILL)
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.wait()
    before = pd.read_parquet(folder / "trials.parquet")
    assert 2 <= (before.status == "completed").sum() < 6

    resumed = subprocess.run([*cli, "resume", str(folder)], cwd=tmp_path, check=False,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "6 trials: 6 completed, 0 stopped early, 0 failed" in resumed.stdout
    assert "Pareto front of semantic_loss (min), copy_loss (min)" in resumed.stdout

    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 6 and trials.trial_id.is_unique
    assert set(trials.status) == {"completed"}
    grid = SearchSpace.from_text(SPACE).grid()
    ran = sorted(zip(trials["param.pattern"], trials["param.training.lr"], strict=True))
    assert ran == sorted((p["pattern"], p["training.lr"]) for p in grid)  # each point once
    # Trials finished before the kill keep their id and start. Ray saves its experiment state
    # every 2 s, so one that finished just before the kill may be resumed from its last saved
    # checkpoint to report its end again, but never restarted from scratch.
    done_before = before[before.status == "completed"].set_index("trial_id")
    after = trials.set_index("trial_id").loc[done_before.index]
    assert (after.started_at == done_before.started_at).all()
    rerun = after.finished_at != done_before.finished_at
    assert (after[rerun].resumed_from_step > 0).all()
    curves = pd.read_parquet(folder / "curves.parquet")
    assert not curves.duplicated(["trial_id", "step"]).any()
    assert set(curves.trial_id) == set(trials.trial_id)

    study = optuna.load_study(study_name=STUDY_NAME,
                              storage=journal_storage(folder / "optuna.journal"))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 6
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 6
    assert not [t for t in study.trials if not t.state.is_finished()]
