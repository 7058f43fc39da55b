"""The ``archsearch`` command line: one module per verb, all errors one line.

Each verb's module (``cli/sweep.py``...) holds its arguments and its handler side by side;
``common.py`` holds what they share (one-line errors, SIGTERM as Ctrl-C, the cluster arguments).
Adding a verb is one module and one line in ``VERBS``. Verbs import what they need lazily, so
``archsearch --help`` and ``validate`` stay fast and never start Ray or touch a GPU.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from archsearch.cli import (
    compare,
    export,
    patterns,
    recommend,
    report,
    resume,
    scale,
    supernet,
    sweep,
    tag,
    validate,
)
from archsearch.cli.common import Verb, run_verb

# in the order `archsearch --help` lists them
VERBS: tuple[Verb, ...] = (validate, patterns, tag, compare, sweep, resume, report, scale,
                           supernet, recommend, export)


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Verb]]:
    parser = argparse.ArgumentParser(
        prog="archsearch",
        description="Choose how to mix attention and Gated DeltaNet layers with proxy models.",
    )
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb in VERBS:
        verb.add_parser(subparsers)
    return parser, {verb.NAME: verb for verb in VERBS}


def main(argv: Sequence[str] | None = None) -> int:
    parser, verbs = _parser()
    args = parser.parse_args(argv)
    return run_verb(verbs[args.verb], args)
