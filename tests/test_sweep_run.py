"""Sweeps end to end on this machine: the real trainer through the CLI, and ASHA with a stand-in."""

import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd

from archsearch import analysis as A
from archsearch.analysis.sweep_summary import sweep_summary
from archsearch.metrics import HEADLINE, known_metrics
from archsearch.space.schema import EvaluationSection
from archsearch.sweep import run_sweep
from archsearch.sweep.journal import STUDY_NAME, journal_storage
from archsearch.testing.standin import SyntheticTrainer

TINY = """
name: tiny
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["GA", "AG"]}
data: {seq_len: 16, builtin_documents: 60, vocab_size: 300}
training: {tokens: 1280, batch_size: 2, checkpoint_every: 20}
evaluation: {every: 20, validation_tokens: 512, probe_examples: 4, bootstrap: 10, probe_steps: 2,
             probe_len: 32}
objectives:
  - {metric: semantic_loss, mode: min}
  - {metric: copy_loss, mode: min}
search: {algorithm: grid, samples: 8, concurrency: 2}
storage: sweeps
"""
TRIAL_COLUMNS = ["trial_id", "pattern", "status", "error", "fidelity", "step", "tokens_seen",
                 "param.pattern", "param.training.lr", "params", "non_embedding_params",
                 "train_flops_per_token", "inference_bytes", "tokens_per_s", "attention_fraction",
                 "depth", "origins", "wall_time_s", "seed", "version.torch", "version.archsearch",
                 "version.ray", "version.optuna", "host", "node_id", "started_at", "finished_at"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archsearch.cli", *args], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=300)


def test_tiny_real_sweep_records_everything_and_a_diverging_trial_fails_alone(tmp_path):
    (tmp_path / "tiny.yaml").write_text(TINY)
    # lr 1e6 makes the real loss NaN within the first evaluation: that trial must be recorded
    # failed, once (no pointless retry), while the others complete.
    run = _cli("sweep", "tiny.yaml", "--set", "training.lr={choices: [0.003, 1.0e+6]}",
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    out = run.stdout
    assert "4 trials: 2 completed, 0 stopped early, 2 failed" in out
    assert "Pareto front of semantic_loss (min), copy_loss (min)" in out
    assert "pattern  semantic_loss (min)  copy_loss (min)  params  copying  settings" in out
    assert "training.lr=0.003" in out

    folder = tmp_path / "sweeps" / "tiny"
    for name in ("space.yaml", "sweep.json", "optuna.journal", "trials.parquet", "curves.parquet"):
        assert (folder / name).is_file(), name
    trials = pd.read_parquet(folder / "trials.parquet")
    missing = [c for c in TRIAL_COLUMNS if c not in trials.columns]
    evaluation = EvaluationSection()
    metrics = known_metrics(evaluation.categories, evaluation.copy_buckets,
                            ["copy", "mqar", "s5", "parity", "entity", "brackets"])
    missing += [m for m in metrics if m not in trials.columns]
    missing += [f"{m}{s}" for m in HEADLINE for s in ("_lo", "_hi") if f"{m}{s}" not in trials]
    assert not missing
    assert trials.trial_id.is_unique and len(trials) == 4
    good = trials[trials["param.training.lr"] < 1]
    bad = trials[trials["param.training.lr"] > 1]
    assert set(good.status) == {"completed"} and (good.fidelity == 1.0).all()
    assert (good.tokens_seen == 1280).all() and (good.step == 40).all()
    assert set(bad.status) == {"failed"} and (bad.failures == 0).all()
    assert bad.error.str.contains("nan|inf", regex=True).all()
    assert (good.attention_fraction == 0.5).all() and set(good.pattern) == {"GA", "AG"}

    curves = pd.read_parquet(folder / "curves.parquet")
    assert list(curves.columns[:3]) == ["trial_id", "step", "tokens_seen"]
    assert not curves.duplicated(["trial_id", "step"]).any()
    assert set(curves.trial_id) == set(good.trial_id)
    assert sorted(curves[curves.trial_id == good.trial_id.iloc[0]].step) == [20, 40]

    study = optuna.load_study(study_name=STUDY_NAME,
                              storage=journal_storage(folder / "optuna.journal"))
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]

    again = _cli("sweep", "tiny.yaml", cwd=tmp_path)  # the folder is taken: refuse, one line
    assert again.returncode == 2 and "archsearch resume" in again.stderr
    assert again.stderr.count("\n") == 1


def test_a_crash_is_retried_from_its_checkpoint_then_recorded_with_a_clear_error(tmp_path):
    (tmp_path / "space.yaml").write_text(TINY)
    outcome = run_sweep(str(tmp_path / "space.yaml"), storage=str(tmp_path / "sweeps"),
                        overrides=["search.max_failures=1"],
                        train_fn=SyntheticTrainer(oom_pattern="AG"))
    rows = {r["pattern"]: r for r in outcome.rows}
    assert rows["GA"]["status"] == "completed" and rows["GA"]["failures"] == 0
    oom = rows["AG"]
    assert oom["status"] == "failed" and oom["failures"] == 2  # the first run and one retry
    assert oom["error"].startswith("TrialOutOfMemory: GPU out of memory: pattern AG with ")
    assert "AG" in sweep_summary(outcome).split("failed trials:")[1]


ASHA = """
name: asha
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["AA", "GG", "GA", "AG"]}
symbols:
  G: {kind: gdn, head_dim_k: {choices: [4, 8]}}
data: {seq_len: 16}
training: {tokens: 2560, batch_size: 2, lr: {loguniform: [1.0e-4, 1.0e-1]}, checkpoint_every: 10}
evaluation: {every: 10}
objectives:
  - {metric: semantic_loss, mode: min}
  - {metric: copy_loss, mode: min}
search:
  algorithm: tpe
  samples: 6
  concurrency: 1
  seed: 1
  asha: {metric: val_loss, grace_period: 1, reduction_factor: 2}
"""


def test_asha_stops_trials_that_keep_their_fidelity_but_never_enter_the_front(tmp_path):
    (tmp_path / "asha.yaml").write_text(ASHA)
    outcome = run_sweep(str(tmp_path / "asha.yaml"), storage=str(tmp_path / "sweeps"),
                        train_fn=SyntheticTrainer(step_seconds=0.002))
    rows = pd.DataFrame(outcome.rows)
    assert len(rows) == 6 and rows.trial_id.is_unique
    stopped = rows[rows.status == "stopped"]
    assert len(stopped) >= 1 and (stopped.fidelity < 1).all() and (stopped.fidelity > 0).all()
    assert set(rows.status) <= {"completed", "stopped"}
    completed = set(rows[rows.status == "completed"].trial_id)
    # the front the sweep prints is the analysis front of its folder: completed trials only
    printed = sweep_summary(outcome).split("each seed on its own):\n")[1].split("\n\n")[0]
    printed_rows = [line.split() for line in printed.splitlines()[2:]]
    front = A.pareto_front(A.load_sweep(outcome.folder.local).trials,
                           outcome.space.spec.objectives)
    assert len(front) >= 1 and set(front.trial_id) <= completed
    assert [(r[0], float(r[1]), float(r[2])) for r in printed_rows] == [
        (p, round(s, 4), round(c, 4))
        for p, s, c in zip(front.pattern, front.semantic_loss, front.copy_loss, strict=True)]
    # the copy verdict lands in both tables: per evaluation in curves, the last one in trials
    curves = pd.read_parquet(outcome.folder.local / "curves.parquet")
    assert {"copy_gain", "copy_gain_lo", "copy_emerged"} <= set(curves.columns)
    assert set(curves["copy_emerged"]) <= {0.0, 1.0}
    last = curves.sort_values("step").groupby("trial_id")["copy_emerged"].last()
    assert (rows.set_index("trial_id")["copy_emerged"].loc[last.index] == last).all()
    # conditional options were sampled only for patterns using G, and recorded as param.*
    with_g = rows[rows.pattern.str.contains("G")]
    assert with_g["param.symbols.G.head_dim_k"].notna().all()
    assert rows[rows.pattern == "AA"]["param.symbols.G.head_dim_k"].isna().all()
    study = optuna.load_study(study_name=STUDY_NAME,
                              storage=journal_storage(outcome.folder.local / "optuna.journal"))
    fidelity = sorted(t.user_attrs["fidelity"] for t in study.trials)
    assert fidelity == sorted(rows.fidelity)  # Optuna keeps the partial ones, marked
