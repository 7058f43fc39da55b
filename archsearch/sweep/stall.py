"""A trial that stops reporting is ended, with every thread's stack written beside its results.

A GPU trial can hang where no Python exception reaches it: a kernel build waiting on another
process's cache lock, a compile worker that never answers, a CUDA call that never returns (one
trial of an 8-trial sweep on two H200s did, docs/GPU.md "Known problems"). Ray hears of a trial
only when it reports, so a sweep would wait on it forever. Each trial arms Python's faulthandler
timer, re-armed at every report: when ``resources.stall_timeout`` seconds pass without one,
faulthandler writes the traceback of every thread to ``STALL_FILE`` in the trial's folder and ends
the process. Ray sees the trial die and retries it from its last checkpoint, up to
``search.max_failures`` times; the retry's ``note`` says the previous attempt stalled and where
its stacks are. faulthandler's timer runs in its own C thread, so it fires even when the hung
thread holds the GIL.
"""

from __future__ import annotations

import faulthandler
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

STALL_FILE = "stall_traceback.txt"


class StallTimer:
    """``timer.start()``, ``timer.arm()`` after each report, ``timer.stop()`` when the trial
    ends (or ``with StallTimer(...) as timer:``). ``seconds`` 0 turns it off."""

    def __init__(self, seconds: float, folder: Path) -> None:
        self.seconds, self.path = seconds, Path(folder) / STALL_FILE
        self._file: IO[str] | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        if self.seconds > 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("w", encoding="utf-8")
            self._file.write(f"archsearch: a trial that does not report for {self.seconds:g} s "
                             f"is ended; the stack of every thread at that moment follows\n")
            self._file.flush()
            self.arm()

    def arm(self) -> None:
        """Start (or restart) the countdown."""
        if self._file is not None:
            faulthandler.dump_traceback_later(self.seconds, repeat=False, file=self._file,
                                              exit=True)

    def stop(self) -> None:
        """The trial ended on its own: no countdown, no stall file."""
        if self._file is not None:
            faulthandler.cancel_dump_traceback_later()
            self._file.close()
            self._file = None
            self.path.unlink(missing_ok=True)  # ended normally: nothing stalled


def remove_unfired(run_folder: Path) -> int:
    """Delete the armed-but-never-fired stall files Ray copied into a run's trial folders.

    Ray copies a trial's folder to ``<sweep>/runs/<run>/<trial>`` while the trial runs (at each
    checkpoint), the armed timer's file with it; the trial removes its own file when it ends
    normally, but not the copy. Called when a run ends; returns how many were removed."""
    removed = 0
    for path in Path(run_folder).glob(f"*/{STALL_FILE}"):
        if "Timeout (" not in path.read_text(encoding="utf-8", errors="replace"):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def stall_error(folders: Iterable[Path], shown_as: str) -> str | None:
    """For a trial that failed for good, seen from the driver: the one-line error when its last
    attempt stalled (its fired stall file is in one of ``folders``), naming the file as the user
    finds it (``shown_as``, the trial's folder in the sweep); None when it did not stall.

    The retry's ``note`` cannot always say it: an attempt that stalls before its first report
    never sends one, and the last attempt has no retry after it."""
    for folder in folders:
        try:
            text = (Path(folder) / STALL_FILE).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "Timeout (" in text:
            return (f"stopped reporting for resources.stall_timeout and was ended; its stacks: "
                    f"{shown_as}/{STALL_FILE}")
    return None


def previous_stall(folder: Path, shown_as: str | None = None) -> str:
    """For a retry: if the previous attempt in ``folder`` stalled, its stacks are kept under a
    numbered name and the returned note says where ('' when it did not stall), naming the folder
    ``shown_as`` (where the user will find it) when given."""
    path = Path(folder) / STALL_FILE
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    if "Timeout (" not in text:
        return ""  # armed but never fired: the process ended some other way
    number = 1
    while (kept := path.with_name(f"stall_traceback-{number}.txt")).exists():
        number += 1
    path.rename(kept)
    where = f"{shown_as}/{kept.name}" if shown_as else str(kept)
    return f"an earlier attempt stopped reporting and was ended; its stacks: {where}"
