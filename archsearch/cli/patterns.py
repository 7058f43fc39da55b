"""``archsearch patterns SPACE``: the distinct candidate patterns with their costs."""

from __future__ import annotations

import argparse

from archsearch.cli.common import verb_parser

NAME = "patterns"
STOPPED_BY_SIGTERM = False


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = verb_parser(subparsers, NAME, "list the distinct candidate patterns with their costs")
    p.add_argument("space", help="the search-space YAML file")
    return p


def run(args: argparse.Namespace) -> int:
    from archsearch.space import SearchSpace
    from archsearch.summary import pattern_table

    space = SearchSpace.load(args.space)
    print(pattern_table(space))
    return 0
