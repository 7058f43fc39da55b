"""``archsearch supernet SPACE``: one weight-sharing supernet instead of one proxy per pattern."""

from __future__ import annotations

import argparse

from archsearch.cli.common import cluster_arguments, verb_parser

NAME = "supernet"
STOPPED_BY_SIGTERM = True


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = verb_parser(subparsers, NAME, "train one weight-sharing supernet over the space's "
                                      "patterns and score every pattern as a subnet")
    p.add_argument("space", help="the search-space YAML file")
    p.add_argument("--storage", metavar="DIR",
                   help="the folder <space name>-supernet goes under (default: the space's "
                        "'storage')")
    p.add_argument("--out", metavar="DIR", help="the supernet folder itself (instead of "
                                                "<storage>/<space name>-supernet)")
    p.add_argument("--seed", type=int, help="the supernet's seed (default: the space's "
                                            "training.seed, its first choice when tuned)")
    p.add_argument("--top-k", type=int, default=0, metavar="K",
                   help="then train the K best patterns as ordinary proxies (a sweep of them)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a YAML field, e.g. supernet.sandwich=true (repeatable)")
    cluster_arguments(p)
    return p


def run(args: argparse.Namespace) -> int:
    from archsearch.supernet.render import supernet_summary
    from archsearch.supernet.run import run_supernet
    from archsearch.sweep import SweepOptions

    options = SweepOptions(args.address, args.verbose, args.shared_storage_ok)
    outcome = run_supernet(args.space, storage=args.storage, out=args.out, seed=args.seed,
                           top_k=args.top_k, overrides=args.set, options=options)
    print(supernet_summary(outcome))
    return 0 if outcome.finished else 130
