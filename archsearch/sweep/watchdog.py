"""Ends a private local Ray when its driver ends, however the driver ends (even SIGKILL).

Ray started by ``ray.init(address="local")`` runs as the driver's descendants (GCS, raylet, their
agents, the workers). Ray kills some of them when the driver dies, but its agents were seen
listening on ports 15 s and more after a SIGKILLed driver. So before starting Ray the driver
starts this watchdog: a small process in its own session (a Ctrl-C or a kill of the driver's
process group does not reach it) that holds the read end of a pipe only the driver can write to.
Every half second it notes the driver's descendants born since it started (not the driver's
older children, which the driver lists for it: in a test runner those are not ours); when the
pipe closes (the driver exited, or called ``stop``) it sends SIGTERM to those still alive, then
SIGKILL a moment later.

A process is identified by pid and start time, so a recycled pid is never signalled.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.5
GRACE_S = 1.5


@dataclass
class Watchdog:
    """The driver's handle: ``stop`` closes the pipe and waits for the clean-up to finish."""

    process: subprocess.Popen

    @classmethod
    def start(cls) -> Watchdog:
        driver = os.getpid()
        older = [pid for pid, (ppid, _) in processes().items() if ppid == driver]
        # Run as a plain script in isolated mode: it needs the standard library only, and so
        # starts in milliseconds instead of importing the package (and Ray) first.
        process = subprocess.Popen(
            [sys.executable, "-I", __file__, str(driver), ",".join(map(str, older))],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
        return cls(process)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every live process (zombies are already dead)."""
    table: dict[int, tuple[int, str]] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended while we looked
                continue
            fields = stat[stat.rfind(")") + 2:].split()  # after "(command name)"
            if fields[0] not in ("Z", "X"):
                table[int(entry.name)] = (int(fields[1]), fields[19])
        return table
    out = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,lstart="], capture_output=True,
                         text=True, check=False).stdout
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            table[int(parts[0])] = (int(parts[1]), parts[2])
    return table


def descendants(roots: set[int], table: dict[int, tuple[int, str]]) -> set[int]:
    """Every process below ``roots`` (not the roots themselves)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def watch(driver: int, older: set[int]) -> None:
    """Run until stdin closes, then end what the driver started after ``older`` (its children
    when it started the watchdog)."""
    older = older | {os.getpid()}
    tracked: dict[int, str] = {}

    def note() -> None:
        table = processes()
        roots = {pid for pid, (ppid, _) in table.items() if ppid == driver and pid not in older}
        mine = roots | descendants(roots | set(tracked), table)
        tracked.update({pid: table[pid][1] for pid in mine if pid in table})

    while True:
        note()
        ready, _, _ = select.select([sys.stdin.fileno()], [], [], POLL_S)
        if ready and not os.read(sys.stdin.fileno(), 4096):
            break
    note()
    _end(tracked)


def _end(tracked: dict[int, str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = _alive(tracked)
        if not alive:
            return
        for pid in alive:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + GRACE_S
        while _alive(tracked) and time.monotonic() < deadline:
            time.sleep(0.05)


def _alive(tracked: dict[int, str]) -> list[int]:
    table = processes()
    return [pid for pid, started in tracked.items() if table.get(pid, (0, None))[1] == started]


if __name__ == "__main__":
    watch(int(sys.argv[1]), {int(pid) for pid in sys.argv[2].split(",") if pid})
