"""A trial that stops reporting is ended with its stacks written down, then retried; the sweep
goes on (archsearch/sweep/stall.py, resources.stall_timeout)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from archsearch.sweep import run_sweep
from archsearch.sweep.stall import STALL_FILE, StallTimer, previous_stall, remove_unfired
from archsearch.testing.standin import SyntheticTrainer

HANGING_CHILD = """
import sys, time
from pathlib import Path
from archsearch.sweep.stall import StallTimer

def waiting_on_a_lock():
    time.sleep(60)

timer = StallTimer(1.0, Path(sys.argv[1]))
timer.start()
time.sleep(0.5)
timer.arm()            # a report: the countdown starts again
waiting_on_a_lock()
"""


def test_a_silent_process_is_ended_with_every_stack_written(tmp_path: Path) -> None:
    began = time.monotonic()
    child = subprocess.run([sys.executable, "-c", HANGING_CHILD, str(tmp_path)],
                           check=False, capture_output=True, text=True, timeout=30)
    elapsed = time.monotonic() - began
    assert child.returncode != 0 and elapsed < 20  # ended, not left to sleep 60 s
    text = (tmp_path / STALL_FILE).read_text()
    assert "Timeout (" in text and "waiting_on_a_lock" in text
    note = previous_stall(tmp_path)  # the retry keeps the stacks and says where
    assert "stopped reporting" in note and "stall_traceback-1.txt" in note
    assert (tmp_path / "stall_traceback-1.txt").exists() and not (tmp_path / STALL_FILE).exists()
    assert previous_stall(tmp_path) == ""


def test_a_trial_that_ends_normally_leaves_no_stall_file(tmp_path: Path) -> None:
    with StallTimer(30.0, tmp_path) as timer:
        timer.arm()
    assert not (tmp_path / STALL_FILE).exists() and previous_stall(tmp_path) == ""
    with StallTimer(0.0, tmp_path):  # 0: off
        pass
    assert not (tmp_path / STALL_FILE).exists()


STALLING = """
name: stall
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["GA", "AG"]}
data: {seq_len: 16, builtin_documents: 60, vocab_size: 300}
training: {tokens: 1280, batch_size: 2, checkpoint_every: 20}
evaluation: {every: 20, validation_tokens: 512, probe_examples: 4, bootstrap: 10, probe_steps: 2,
             probe_len: 32}
objectives:
  - {metric: semantic_loss, mode: min}
  - {metric: copy_loss, mode: min}
search: {algorithm: grid, samples: 2, concurrency: 2, max_failures: 1}
resources: {stall_timeout: 4}
"""


def test_a_hung_trial_is_ended_retried_and_the_sweep_finishes(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(STALLING)
    began = time.monotonic()
    outcome = run_sweep(str(tmp_path / "space.yaml"), storage=str(tmp_path / "sweeps"),
                        train_fn=SyntheticTrainer(hang_pattern="AG"))
    assert time.monotonic() - began < 180  # not the hour a hung trial would otherwise hold it
    rows = {r["pattern"]: r for r in outcome.rows}
    assert rows["GA"]["status"] == "completed"
    hung = rows["AG"]
    assert hung["status"] == "failed" and hung["failures"] == 2  # the first run and one retry
    # the last attempt stalled too: its error names its stacks (relative to the sweep folder);
    # the retry's note names the first attempt's when the retry lived to report once
    assert "stopped reporting" in hung["error"]
    named = hung["error"].split("its stacks: ")[1]
    assert "_wait_forever" in (tmp_path / "sweeps" / "stall" / named).read_text()
    if hung["note"]:
        assert "stopped reporting" in hung["note"] and "stall_traceback-1.txt" in hung["note"]
    kept = sorted((tmp_path / "sweeps" / "stall").rglob("stall_traceback*.txt"))
    assert kept and all("_wait_forever" in k.read_text() for k in kept)


def test_unfired_timer_files_copied_into_a_run_are_removed(tmp_path: Path) -> None:
    """Ray copies an armed timer's file along with a trial's checkpoints; only fired ones stay."""
    run = tmp_path / "runs" / "001"
    armed = run / "t0000" / STALL_FILE
    fired = run / "t0001" / STALL_FILE
    for path, text in ((armed, "archsearch: header only\n"),
                       (fired, "archsearch: header\nTimeout (0:04:00)!\nThread 0x1 ...\n")):
        path.parent.mkdir(parents=True)
        path.write_text(text)
    assert remove_unfired(run) == 1
    assert not armed.exists() and fired.exists()
