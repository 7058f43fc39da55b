"""One compact status line while a sweep runs, instead of Ray's trial tables.

    trials 3/8 done, 2 running, 0 stopped, 1 failed | best semantic_loss 4.213, copy_loss 2.977 |
    2m13s, ETA 4m05s

(one line on screen).

On a terminal the line refreshes in place about once a second; in a log (not a TTY) a new line is
printed when a trial finishes, and at most once a minute otherwise. "Best" is over full-budget
completed trials. The ETA extrapolates the work done in this run (a running trial counts by the
fraction of its token budget reached) to the trials left.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

from ray.tune import Callback

from archsearch.space.schema import Objective
from archsearch.sweep.results import classify
from archsearch.sweep.status import COMPLETED, ENDED, FAILED, RUNNING, STOPPED

TTY_REFRESH_S = 1.0
LOG_REFRESH_S = 60.0


def trial_state(trial: Any, interrupted: bool = False) -> str:
    """completed / stopped / failed / running / pending, from Tune's status and last result.

    ``interrupted``: Tune terminated the trial because the sweep itself was stopped (Ctrl-C),
    so it is unfinished, not stopped early.
    """
    status = getattr(trial, "status", "PENDING")
    if status == "TERMINATED":
        return RUNNING if interrupted else classify(trial.last_result)
    if status == "ERROR":
        return FAILED
    if status == "RUNNING":
        return RUNNING
    return "pending"


def status_line(states: Sequence[str], results: Sequence[dict[str, Any]], total: int,
                objectives: Sequence[Objective], elapsed: float, eta: float | None,
                ended_before: int = 0) -> str:
    """The line; ``ended_before``: trials that ended in earlier runs of the sweep (resume)."""
    counts = Counter(states)
    done = ended_before + counts[COMPLETED] + counts[STOPPED] + counts[FAILED]
    best = []
    for objective in objectives:
        values = [r[objective.metric] for r, s in zip(results, states, strict=True)
                  if s == COMPLETED and isinstance(r.get(objective.metric), int | float)]
        pick = (min if objective.mode == "min" else max)(values) if values else None
        best.append(f"{objective.metric} {pick:.4g}" if pick is not None
                    else f"{objective.metric} -")
    timing = f"{_duration(elapsed)}, ETA {_duration(eta) if eta is not None else '-'}"
    return (f"trials {done}/{total} done, {counts[RUNNING]} running, {counts[STOPPED]} stopped, "
            f"{counts[FAILED]} failed | best {', '.join(best)} | {timing}")


class ProgressLine(Callback):
    """Prints ``status_line`` to stderr; holds no stream so that it pickles with the Tuner."""

    def __init__(self, objectives: Sequence[Objective], total: int, ended_before: int = 0) -> None:
        self.objectives, self.total, self.ended_before = list(objectives), total, ended_before
        self._start = self._last = 0.0
        self._work_at_start: float | None = None
        self._finished_seen = -1
        self._width = 0
        self._shown = ""
        self._ran: set[str] = set()  # trials seen running in this process
        self._ended: set[str] = set()  # ... and seen finishing (complete or error callbacks)

    def setup(self, **info: Any) -> None:
        self._start = time.monotonic()
        self._last = 0.0
        self._work_at_start = None
        self._finished_seen = -1
        self._ran, self._ended = set(), set()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ran.add(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended.add(trial.trial_id)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._ended.add(trial.trial_id)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._render(trials, final=False)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._render(trials, final=True)

    def _render(self, trials: list, final: bool) -> None:
        stream: TextIO = sys.stderr
        tty = stream.isatty()
        # A trial that ran here but ended without a completion callback was cut off by Ctrl-C;
        # one that never ran here finished before a resume.
        states = [trial_state(t, t.trial_id in self._ran and t.trial_id not in self._ended)
                  for t in trials]
        finished = sum(s in ENDED for s in states)
        now = time.monotonic()
        due = now - self._last >= (TTY_REFRESH_S if tty else LOG_REFRESH_S)
        if not (final or due or (not tty and finished != self._finished_seen)):
            return
        self._last, self._finished_seen = now, finished
        results = [dict(t.last_result or {}) for t in trials]
        line = status_line(states, results, self.total, self.objectives, now - self._start,
                           self._eta(states, results, now), self.ended_before)
        if final and not tty and _counts_part(line) == _counts_part(self._shown):
            return  # a log already has this line (modulo the clock)
        self._shown = line
        if tty:
            pad = max(0, self._width - len(line))
            stream.write("\r" + line + " " * pad + ("\n" if final else ""))
            self._width = len(line)
        else:
            stream.write(line + "\n")
        stream.flush()

    def _eta(self, states: list[str], results: list[dict[str, Any]], now: float) -> float | None:
        work = self.ended_before + sum(1.0 if s in ENDED
                   else float(r.get("fidelity", 0.0)) if s == RUNNING else 0.0
                   for s, r in zip(states, results, strict=True))
        if self._work_at_start is None:
            self._work_at_start = work
        done_here = work - self._work_at_start
        elapsed = now - self._start
        if done_here <= 0 or elapsed <= 0:
            return None
        return max(0.0, (self.total - work) * elapsed / done_here)


def _counts_part(line: str) -> str:
    return line.rsplit("|", 1)[0]


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
