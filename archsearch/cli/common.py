"""What every verb of the command line shares: how a verb looks, how it fails, how it stops.

A verb is a module with ``NAME``, ``add_parser(subparsers)`` and ``run(args)`` (see ``Verb``).
Its module imports only ``argparse`` and ``archsearch.errors`` at the top, so building the whole
parser (``archsearch --help``) never imports torch or Ray; ``run`` imports what it needs.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Protocol

from archsearch.errors import ArchsearchError


class Verb(Protocol):
    """One verb's module: its name, its arguments and its handler, side by side."""

    NAME: str
    # True for long runs (sweep, resume, scale): ``kill PID`` stops them like Ctrl-C
    STOPPED_BY_SIGTERM: bool

    def add_parser(self, subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser: ...

    def run(self, args: argparse.Namespace) -> int: ...


def verb_parser(subparsers: argparse._SubParsersAction, name: str,
                help_text: str) -> argparse.ArgumentParser:
    """The verb's sub-parser; its one-line help is also its description in ``VERB --help``."""
    return subparsers.add_parser(name, help=help_text, description=help_text)


def cluster_arguments(p: argparse.ArgumentParser) -> None:
    """Where the Ray trials run: the verbs that start Ray (sweep, resume, scale) take these."""
    p.add_argument("--address", metavar="ADDR",
                   help="join a running Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
                        "(default: a private Ray on this machine)")
    p.add_argument("--shared-storage-ok", action="store_true",
                   help="trust that a local storage path is shared by every node")
    p.add_argument("--verbose", action="store_true", help="show Ray's and the trials' own output")


def autotune_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--autotune-cache", metavar="TAR",
                   help="Triton autotune choices saved on an earlier machine of the same GPU kind "
                        "(a sweep folder's autotune.tar): GPU trials start without tuning")


@contextlib.contextmanager
def sigterm_as_interrupt(active: bool) -> Iterator[None]:
    """``kill PID`` stops a sweep like Ctrl-C: Ray shut down, the folder left resumable."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_verb(verb: Verb, args: argparse.Namespace) -> int:
    """Run one verb: a user error is one line on stderr and exit 2; an interrupt exits 130."""
    try:
        with sigterm_as_interrupt(verb.STOPPED_BY_SIGTERM):
            return verb.run(args)
    except ArchsearchError as err:
        print(f"archsearch {verb.NAME}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"archsearch {verb.NAME}: interrupted", file=sys.stderr)
        return 130
