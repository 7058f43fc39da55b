"""``archsearch report SWEEP_DIR``: a static HTML report of a sweep (fronts, gaps, the pick)."""

from __future__ import annotations

import argparse

from archsearch.cli.common import verb_parser
from archsearch.errors import ArchsearchError

NAME = "report"
STOPPED_BY_SIGTERM = False


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = verb_parser(subparsers, NAME,
                    "write a static HTML report of a sweep (fronts, gaps, the pick)")
    p.add_argument("sweep_dir", help="the sweep folder (<storage>/<name>)")
    p.add_argument("--out", metavar="DIR",
                   help="where index.html goes (default: SWEEP_DIR/report)")
    p.add_argument("--weights", action="append", metavar="M=W,...",
                   help="objective weights in the ranking, e.g. semantic_loss=2,copy_loss=1 "
                        "(default: equal)")
    p.add_argument("--weight", action="append", default=[], help=argparse.SUPPRESS)
    p.add_argument("--reference", metavar="PATTERN",
                   help="the pattern per-category gaps are measured against (default: all "
                        "attention)")
    return p


def run(args: argparse.Namespace) -> int:
    from archsearch.report import write_report
    from archsearch.scaling.recommend import parse_weights

    if args.weight:  # one spelling across verbs: the old one says what to write instead
        raise ArchsearchError(f"--weight is gone: write --weights {','.join(args.weight)}")
    weights = parse_weights(args.weights or [])
    path = write_report(args.sweep_dir, args.out, weights=weights, reference=args.reference)
    print(f"report written to {path}")
    return 0
