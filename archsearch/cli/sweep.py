"""``archsearch sweep SPACE``: train the space's proxies with Ray Tune, print the Pareto front."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from archsearch.cli.common import autotune_argument, cluster_arguments, verb_parser

if TYPE_CHECKING:
    from archsearch.sweep import SweepOutcome

NAME = "sweep"
STOPPED_BY_SIGTERM = True


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = verb_parser(subparsers, NAME,
                    "train the space's proxies with Ray Tune and print the Pareto front")
    p.add_argument("space", help="the search-space YAML file")
    p.add_argument("--name", help="the sweep folder's name (default: the space's name)")
    p.add_argument("--storage", metavar="DIR|URI",
                   help="where sweep folders go: a folder or s3://, gs://... (default: the "
                        "space's 'storage')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a YAML field, e.g. training.tokens=1000 or "
                        "'model.d_model={choices: [32, 64]}' (repeatable)")
    cluster_arguments(p)
    autotune_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    from archsearch.analysis.sweep_summary import sweep_summary
    from archsearch.sweep import SweepOptions, run_sweep

    options = SweepOptions(args.address, args.verbose, args.shared_storage_ok, args.autotune_cache)
    outcome = run_sweep(args.space, name=args.name, storage=args.storage, overrides=args.set,
                        options=options)
    print(sweep_summary(outcome))
    return sweep_exit_code(outcome)


def sweep_exit_code(outcome: SweepOutcome) -> int:
    """130 if interrupted, 1 if every trial failed, else 0 (failed trials are in the results)."""
    from archsearch.analysis.sweep_summary import trial_front
    from archsearch.sweep.status import FAILED

    if not outcome.finished:
        return 130
    front = trial_front(outcome.rows, outcome.space.spec.objectives)
    return 1 if not front and any(r.get("status") == FAILED for r in outcome.rows) else 0
