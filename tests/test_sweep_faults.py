"""Faults a sweep must survive, end to end: drivers killed (SIGKILL, their whole process group) at
seeded random moments, a torn journal, a deleted checkpoint, Ctrl-C, a second driver, a sweep
that failed at start; the private Ray listens on loopback only and never outlives its driver.

The drivers run the sweep's real machinery (Ray Tune, Optuna, the parquet writer) in a
subprocess with the synthetic trainer, so trials take a second or two and end the same way
every time. The invariant checked after every fault: the number of completed rows never goes
down, no trial appears twice, and every table and the journal stay readable.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from archsearch.cli import main
from archsearch.sweep.journal import STUDY_NAME, journal_storage, repair_journal
from archsearch.sweep.watchdog import descendants, processes

SPACE = """
name: faults
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["AA", "GG", "GA"]}
data: {seq_len: 16}
training: {tokens: 1280, batch_size: 2, lr: {choices: [0.003, 0.001]}, checkpoint_every: 8}
evaluation: {every: 8, validation_tokens: 512, probe_examples: 4, probe_steps: 2, probe_len: 32}
objectives:
  - {metric: semantic_loss, mode: min}
  - {metric: copy_loss, mode: min}
search: {algorithm: grid, samples: 6, concurrency: 2, seed: 0}
resources: {cpus: 1}
"""
TOTAL = 6
# 40 steps of 0.03 s: a trial takes about 1.5 s and checkpoints every 8 steps.
DRIVER = """
import sys
from archsearch.sweep import SweepOptions, resume_sweep, run_sweep
from archsearch.testing.standin import SyntheticTrainer
train = SyntheticTrainer(step_seconds=0.03)
verb, where = sys.argv[1], sys.argv[2]
if verb == "sweep":
    outcome = run_sweep("space.yaml", storage=where, train_fn=train)
else:
    outcome = resume_sweep(where, train_fn=train)
from archsearch.analysis.sweep_summary import sweep_summary
print(sweep_summary(outcome))
sys.exit(0 if outcome.finished else 130)
"""


def _driver(tmp_path: Path, verb: str) -> subprocess.Popen:
    where = str(tmp_path / "sweeps") if verb == "sweep" else str(tmp_path / "sweeps" / "faults")
    return subprocess.Popen([sys.executable, "-c", DRIVER, verb, where], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group, as a terminal job


def _completed(folder: Path) -> int:
    try:
        return int((pd.read_parquet(folder / "trials.parquet").status == "completed").sum())
    except (OSError, ValueError, KeyError):
        return 0


def _check_readable(folder: Path) -> pd.DataFrame:
    trials = pd.read_parquet(folder / "trials.parquet")
    curves = pd.read_parquet(folder / "curves.parquet")
    assert trials.trial_id.is_unique
    assert not curves.duplicated(["trial_id", "step"]).any()
    return trials


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _kill_group(driver: subprocess.Popen) -> set[int]:
    """SIGKILL the driver's whole process group; returns what it had started."""
    started = descendants({driver.pid}, processes())
    os.killpg(driver.pid, signal.SIGKILL)
    driver.communicate()
    return started


def test_kill_and_resume_cycles_never_lose_a_result(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    folder = tmp_path / "sweeps" / "faults"
    rng = random.Random(7)
    floor, verb = 0, "sweep"
    for cycle in range(4):
        driver = _driver(tmp_path, verb)
        _wait_for(lambda: (folder / "trials.parquet").exists() or driver.poll() is not None,
                  120, "the driver never started a trial")
        time.sleep(rng.uniform(0.5, 3.0))
        if driver.poll() is not None:
            break  # finished before the kill
        started = _kill_group(driver)
        # Ray's processes (GCS, raylet, agents, workers) end within seconds of the driver.
        _wait_for(lambda: not started & set(processes()), 10,
                  f"processes outlived the killed driver: {started & set(processes())}")
        trials = _check_readable(folder)
        done = int((trials.status == "completed").sum())
        assert done >= floor, f"cycle {cycle}: completed rows went from {floor} to {done}"
        if done:  # reading the folder changes nothing in it
            assert main(["report", str(folder), "--out", str(tmp_path / "report")]) == 0
            assert _completed(folder) == done
        floor, verb = done, "resume"
        if cycle == 1:  # as a kill during an append leaves it
            with open(folder / "optuna.journal", "ab") as journal:
                journal.write(b'{"op_code": 5, "worker_id": "w", "trial_id": 3, "pa')
        if cycle == 2:  # an unfinished trial's checkpoints are lost
            unfinished = set(trials[trials.status != "completed"].trial_id)
            for trial_dir in folder.glob("runs/*/*"):
                if trial_dir.name in unfinished:
                    for checkpoint in trial_dir.glob("checkpoint_*"):
                        for f in checkpoint.iterdir():
                            f.unlink()
                        checkpoint.rmdir()
    final = subprocess.run([sys.executable, "-c", DRIVER, "resume", str(folder)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    assert f"{TOTAL} trials: {TOTAL} completed, 0 stopped early, 0 failed" in final.stdout
    trials = _check_readable(folder)
    assert len(trials) == TOTAL and set(trials.status) == {"completed"}
    ran = sorted(zip(trials["param.pattern"], trials["param.training.lr"], strict=True))
    assert len(set(ran)) == TOTAL  # every grid point exactly once
    assert set(pd.read_parquet(folder / "curves.parquet").trial_id) == set(trials.trial_id)
    assert repair_journal(folder / "optuna.journal") is None
    study = optuna.load_study(study_name=STUDY_NAME,
                              storage=journal_storage(folder / "optuna.journal"))
    assert [t.state.name for t in study.trials].count("COMPLETE") == TOTAL
    assert all(t.state.is_finished() for t in study.trials)
    assert (folder / "trials.parquet.bak").is_file()


def _sweep_with_one_trial_done(tmp_path: Path) -> tuple[Path, subprocess.Popen]:
    """A sweep started on SPACE, still running, with one trial completed: its folder, its driver."""
    (tmp_path / "space.yaml").write_text(SPACE)
    folder = tmp_path / "sweeps" / "faults"
    driver = _driver(tmp_path, "sweep")
    _wait_for(lambda: _completed(folder) >= 1 or driver.poll() is not None, 120,
              "no trial completed")
    assert driver.poll() is None, "the sweep ended before the fault"
    return folder, driver


def test_ctrl_c_stops_a_sweep_in_seconds_and_it_resumes_to_the_end(tmp_path):
    folder, driver = _sweep_with_one_trial_done(tmp_path)
    os.killpg(driver.pid, signal.SIGINT)  # what a terminal sends the foreground job
    began = time.monotonic()
    out, err = driver.communicate(timeout=60)
    assert time.monotonic() - began < 15, "Ctrl-C took too long"
    assert driver.returncode == 130, err[-3000:]
    assert "interrupted:" in out and f"archsearch resume {folder}" in out
    assert "Traceback" not in err
    done = _completed(folder)
    final = subprocess.run([sys.executable, "-c", DRIVER, "resume", str(folder)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    trials = _check_readable(folder)
    assert len(trials) == TOTAL and set(trials.status) == {"completed"} and done <= TOTAL


def test_a_trial_asked_as_the_driver_stopped_is_replaced_on_resume(tmp_path):
    """A stop that lands between Optuna's ask and the space's last suggestion leaves a running
    trial with only some parameters (the Ctrl-C test above once hit it, and its resume died on a
    KeyError making the trial's row). Resume abandons it and runs its grid point anew."""
    folder, driver = _sweep_with_one_trial_done(tmp_path)
    _kill_group(driver)
    study = optuna.load_study(study_name=STUDY_NAME,
                              storage=journal_storage(folder / "optuna.journal"))
    torn = study.ask()  # as a driver stopped inside SearchSpace.suggest leaves it
    torn.suggest_categorical("pattern", ["AA", "GG", "GA"])
    final = subprocess.run([sys.executable, "-c", DRIVER, "resume", str(folder)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, check=False)
    assert final.returncode == 0, final.stderr[-3000:]
    assert f"t{torn.number:04d}: abandoned" in final.stderr, final.stderr[-3000:]
    assert f"{TOTAL} trials: {TOTAL} completed, 0 stopped early, 0 failed" in final.stdout
    trials = _check_readable(folder)
    assert len(trials) == TOTAL and set(trials.status) == {"completed"}
    assert f"t{torn.number:04d}" not in set(trials.trial_id)
    ran = set(zip(trials["param.pattern"], trials["param.training.lr"], strict=True))
    assert len(ran) == TOTAL  # every grid point exactly once


def _listening_sockets(pids: set[int]) -> list[str]:
    """Local addresses (hex, as /proc/net shows them) of TCP sockets these processes listen on."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(fields[1])
    return found


LOOPBACK = ("0100007F:", "0000000000000000FFFF00000100007F:", "00000000000000000000000001000000:")


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_a_running_sweep_listens_on_loopback_only_and_refuses_a_second_driver(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    folder = tmp_path / "sweeps" / "faults"
    driver = _driver(tmp_path, "sweep")
    try:
        _wait_for(lambda: (folder / "trials.parquet").exists() or driver.poll() is not None,
                  120, "no trial started")
        assert driver.poll() is None
        second = subprocess.run([sys.executable, "-m", "archsearch.cli", "resume", str(folder)],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"in use by 'archsearch sweep' (pid {driver.pid} on" in second.stderr
        assert second.stderr.count("\n") == 1
        listening = _listening_sockets(descendants({driver.pid}, processes()) | {driver.pid})
        assert listening, "found no listening socket of the sweep's Ray"
        assert all(address.startswith(LOOPBACK) for address in listening), listening
    finally:
        _kill_group(driver)


def test_a_sweep_that_failed_at_start_is_taken_over(tmp_path):
    (tmp_path / "space.yaml").write_text(SPACE)
    cli = [sys.executable, "-m", "archsearch.cli"]
    failed = subprocess.run([*cli, "sweep", "space.yaml", "--storage", "sweeps", "--set",
                             "resources.cpus=512"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert failed.returncode == 2 and "no node has that" in failed.stderr
    assert "Traceback" not in failed.stderr
    folder = tmp_path / "sweeps" / "faults"
    again = subprocess.run([*cli, "sweep", "space.yaml", "--storage", "sweeps", "--set",
                            "training.tokens=64", "--set", "search.samples=1"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 trials: 1 completed" in again.stdout
    assert "samples: 1" in (folder / "space.yaml").read_text()  # the new sweep's space
