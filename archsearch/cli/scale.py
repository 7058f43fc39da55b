"""``archsearch scale SPACE``: train chosen patterns at every rung of the space's ladder."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from archsearch.cli.common import cluster_arguments, verb_parser

if TYPE_CHECKING:
    from archsearch.scaling.run import ScaleOutcome

NAME = "scale"
STOPPED_BY_SIGTERM = True


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = verb_parser(subparsers, NAME, "train chosen patterns at every rung of the space's ladder "
                                      "(Ray Tune; continue with 'archsearch resume FOLDER')")
    p.add_argument("space", help="the search-space YAML file, with a 'ladder' section")
    p.add_argument("--from", dest="from_sweep", metavar="SWEEP_DIR",
                   help="take the top patterns of this sweep's ranking, the one 'archsearch "
                        "recommend SWEEP_DIR' prints, each with its best tuned values (default: "
                        "every candidate)")
    p.add_argument("--top-k", type=int, default=3, metavar="K",
                   help="how many patterns to take with --from (default: 3)")
    p.add_argument("--name", help="the scale folder's name (default: <space name>-scale)")
    p.add_argument("--storage", metavar="DIR|URI",
                   help="where the folder goes (default: the space's 'storage')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a YAML field, e.g. ladder.seeds=[0,1] (repeatable)")
    cluster_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    from archsearch.scaling.run import run_scale

    outcome = run_scale(args.space, name=args.name, storage=args.storage, overrides=args.set,
                        from_sweep=args.from_sweep, top_k=args.top_k, address=args.address,
                        verbose=args.verbose, shared_storage_ok=args.shared_storage_ok)
    print(outcome.summary)
    return scale_exit_code(outcome)


def scale_exit_code(outcome: ScaleOutcome) -> int:
    """1 if the run stopped early or every trial failed, else 0."""
    return 1 if outcome.unfinished or (outcome.failed and not outcome.completed) else 0
