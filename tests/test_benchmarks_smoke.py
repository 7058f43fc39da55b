"""The GPU benchmark scripts still run (on CPU, tiny): their options reach the models they time.

The figures they print on a GPU are in docs/GPU.md; here only that a user's command line works.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'kernels'}"}
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_gpu_proxy_times_a_space_with_overrides() -> None:
    out = run_script("benchmarks/gpu_proxy.py", "search_spaces/calibration.yaml", "--device", "cpu",
                     "--modes", "compiled", "--steps", "1", "--warmup", "0",
                     "--patterns", "A*12", "(GGGA)*3",
                     "--set", "symbols.G.heads=6", "--set", "symbols.G.head_dim_k=64",
                     "--set", "training.batch_size=1", "--set", "data.seq_len=32")
    rows = [line.split() for line in out.splitlines() if line.startswith(("A*12 ", "(GGGA)*3 "))]
    assert [r[0] for r in rows] == ["A*12", "(GGGA)*3"]
    # both matched to the reference's size with the overridden GDN heads (6 x 64 = 8 x 48)
    assert all(r[2] == "51.8M" and r[3] == "1x32" for r in rows)


def test_gpu_packing_runs_its_workers() -> None:
    out = run_script("benchmarks/gpu_packing.py", "--device", "cpu", "--procs", "2",
                     "--batch", "1", "--seq-len", "16", "--depth", "4", "--width", "64",
                     "--vocab", "256", "--gdn-heads", "2", "--steps", "1", "--warmup", "0",
                     "--modes", "eager")
    assert "2 packed at 0.25 GPU each" in out and "eager " in out.splitlines()[-1]
    assert out.count("stepping: eager") == 3  # one alone, two packed: each says how it stepped


def test_gpu_packing_in_one_process_on_streams() -> None:
    out = run_script("benchmarks/gpu_packing.py", "--device", "cpu", "--procs", "2",
                     "--batch", "1", "--seq-len", "16", "--depth", "4", "--width", "64",
                     "--vocab", "256", "--gdn-heads", "2", "--steps", "1", "--warmup", "0",
                     "--modes", "eager", "--streams")
    assert "one process, a CUDA stream each" in out and "stepping: eager, eager" in out
    last = out.splitlines()[-1].split()
    assert last[0] == "eager" and last[-1].endswith("x")


def test_gpu_probe_phase_times_every_probe_of_a_space() -> None:
    tiny = ["model.d_model=32", "model.n_heads=2", "symbols.G.head_dim_k=8", "data.seq_len=32",
            "evaluation.probe_examples=16", "evaluation.probe_steps=2", "data.vocab_size=512",
            "data.builtin_documents=200", "training.precision=fp32"]
    out = run_script("benchmarks/gpu_probe_phase.py", "search_spaces/gpu_packing.yaml",
                     "--device", "cpu", *(f"--set={s}" for s in tiny))
    rows = out.splitlines()
    assert "3 probes x 2 steps of 32" in rows[0]
    assert [r.split()[0] for r in rows[-4:-1]] == ["parity", "entity", "mqar"], out
    assert rows[-1].startswith("whole probe phase: eager")


def test_gpu_eval_compile_times_both_ways_of_scoring() -> None:
    tiny = ["model.d_model=32", "model.n_heads=2", "symbols.G.head_dim_k=8", "data.seq_len=32",
            "training.batch_size=2", "evaluation.validation_tokens=256", "data.vocab_size=512",
            "data.builtin_documents=200", "training.precision=fp32"]
    out = run_script("benchmarks/gpu_eval_compile.py", "search_spaces/gpu_packing.yaml",
                     "--pattern", "GGGAGGGA", "--device", "cpu", *(f"--set={s}" for s in tiny))
    rows = [line.split() for line in out.splitlines()[-2:]]
    assert [r[0] for r in rows] == ["compiled", "eager"], out
    assert rows[0][3:] == rows[1][3:], out  # on a CPU nothing compiles: the same scores


def test_gpu_sweep_packing_runs_whole_sweeps(tmp_path: Path) -> None:
    tiny = ["model.d_model=32", "model.n_heads=2", "symbols.G.head_dim_k=8", "data.seq_len=32",
            "training.batch_size=2", "training.tokens=256", "evaluation.every=2",
            "training.checkpoint_every=2", "evaluation.validation_tokens=512",
            "evaluation.probe_examples=16", "evaluation.probe_steps=2", "data.probes=[parity]",
            "data.builtin_documents=200", "data.vocab_size=512", "training.precision=fp32",
            "resources.cpus=1", "search.concurrency=2", "training.seed={choices: [0, 1]}",
            "search.samples=2"]
    out = run_script("benchmarks/gpu_sweep_packing.py", "search_spaces/gpu_packing.yaml",
                     "--device", "cpu", "--fractions", "0", "--storage", str(tmp_path),
                     *(f"--set={s}" for s in tiny))
    lines = out.splitlines()
    legend = next(i for i, line in enumerate(lines) if line.startswith("steps: the trials'"))
    row = lines[legend - 1].split()
    assert row[:2] == ["0", "2/2"] and row[5] == "1.00x", out[-600:]
    assert row[-1] == "n/a", out[-600:]  # the baseline has no ceiling: nothing packed
    trials = pd.read_parquet(tmp_path / "gpu_packing_gpus0" / "trials.parquet")
    timed = trials[["first_step_s", "eval_s", "probe_tuning_s", "checkpoint_s"]]
    assert (timed > 0).all().all(), timed  # every phase of a trial timed by the trainer
    split = lines[-1].split()  # their medians, the steps, the rest, the wall; "between" n/a
    assert split[0] == "0" and len(split) == 9 and split[-1] == "n/a", out[-600:]
    assert float(split[-2]) == pytest.approx(trials["wall_time_s"].median(), abs=0.01)


def test_packing_ceiling_bounds_what_a_packed_sweep_can_gain() -> None:
    """A packed sweep waits for its first trained step, then still runs every training step; if
    those steps together go no faster than alone, its wall is at least their sum. Ninth
    session's figures: one per GPU 108 s, 34 s of it in steps after each first."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_sweep_packing import first_trained_s, packing_ceiling, steps_s

    rows = [{"status": "completed", "tokens_seen": 8_388_608, "tokens_per_s": tps,
             "first_step_s": first, "started_at": f"2026-11-30T15:21:{start}+00:00"}
            for tps, first, start in [(303_136, 19.4, 29), (868_654, 1.1, 30),
                                      (869_877, 1.1, 31), (873_859, 1.0, 32)]]
    rows.append({"status": "failed", "tokens_seen": 0, "tokens_per_s": None})
    assert steps_s(rows) == pytest.approx(8.27 + 8.56 + 8.54 + 8.60, abs=0.02)
    began = datetime.fromisoformat("2026-11-30T15:21:20+00:00").timestamp()
    assert first_trained_s(rows, began) == pytest.approx(11.1)  # 15:21:30 + 1.1 s, not 29 + 19.4
    assert packing_ceiling(108.0, 34.0, 28.0) == pytest.approx(108 / 62)


def test_time_split_accounts_for_a_trials_whole_wall_time() -> None:
    """The phases and the rest add up to the trial's wall time; failed trials are left out."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_sweep_packing import time_split

    rows = [{"status": "completed", "tokens_seen": 8_000_000, "tokens_per_s": 800_000.0,
             "first_step_s": 1.0, "eval_s": 0.5, "probe_tuning_s": 3.5, "checkpoint_s": 0.7,
             "wall_time_s": wall} for wall in (17.0, 18.0, 19.0)]
    rows.append({"status": "failed", "tokens_per_s": None, "wall_time_s": 2.0})
    split = time_split(rows)
    assert split["steps_s"] == pytest.approx(9.0)  # 10 s of tokens, the first step's 1 s out
    assert split["rest_s"] == pytest.approx(18.0 - 1.0 - 9.0 - 0.5 - 3.5 - 0.7)
    assert split["wall_time_s"] == 18.0


def test_gpu_throughput_matches_every_model_to_all_attention() -> None:
    """``--match-params``: the hybrid's and all GDN's MLPs shrink to all attention's size, so the
    ratios compare models of one size (as a sweep's match does); unmatched they are 5-13% larger."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_throughput import matched_mlp, proxy_config

    from archsearch.model.cost import param_count

    attention = param_count(proxy_config(24, 1024, "A", 50304))
    for gdn_head in (None, (128, 128)):
        for unit in ("GGGA", "G"):
            config = proxy_config(24, 1024, unit, 50304, gdn_head)
            matched = matched_mlp(config, attention)
            assert param_count(config) > 1.04 * attention
            assert abs(param_count(matched) - attention) <= 0.006 * attention
            assert matched.mlp_hidden % 64 == 0 and matched.layers == config.layers
    out = run_script("benchmarks/gpu_throughput.py", "--device", "cpu", "--sizes", "4x256",
                     "--seq-lens", "64", "--tokens-per-step", "128", "--vocab", "512",
                     "--steps", "1", "--warmup", "0", "--patterns", "attention", "3:1 GGGA",
                     "--match-params")
    assert "MLP widths matched to all attention's parameters" in out
    assert [line.split()[3] for line in out.splitlines() if line.startswith("row: ")] == [
        "attention", "3:1"]


def test_a_pattern_the_space_lacks_is_one_line_before_any_timing() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'kernels'}"}
    for script in (["benchmarks/gpu_proxy.py", "search_spaces/gpu_packing.yaml", "--patterns"],
                   ["benchmarks/gpu_packing.py", "--space", "search_spaces/gpu_packing.yaml",
                    "--pattern"]):
        done = subprocess.run([sys.executable, *script, "(GGGA)*2", "--device", "cpu"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode != 0
        assert done.stderr.strip().splitlines() == [
            "pattern '(GGGA)*2' is not one of the space's: GGGAGGGA"], done.stderr[-800:]
