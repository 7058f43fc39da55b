"""``archsearch validate SPACE``: check a search-space YAML and summarise it."""

from __future__ import annotations

import argparse

from archsearch.cli.common import verb_parser

NAME = "validate"
STOPPED_BY_SIGTERM = False


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = verb_parser(subparsers, NAME, "check a search-space YAML and summarise it")
    p.add_argument("space", help="the search-space YAML file")
    return p


def run(args: argparse.Namespace) -> int:
    from archsearch.space import SearchSpace
    from archsearch.summary import describe_space

    space = SearchSpace.load(args.space)
    if space.spec.model.vocab_size is not None:  # only then is there anything to read
        from archsearch.data.checks import check_data

        check_data(space)
    if space.spec.ladder is not None:  # `scale` must not find a fault validate could have seen
        from archsearch.scaling.ladder import load_ladder_space

        load_ladder_space(args.space)
    print(describe_space(space))
    return 0
