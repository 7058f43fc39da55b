"""The ``archsearch`` command line: one small function per verb, all errors one line.

Verbs import what they need lazily, so ``archsearch --help`` and ``validate`` stay fast and never
start Ray or touch a GPU.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from archsearch.errors import ArchsearchError

Verb = Callable[[argparse.Namespace], int]


def _validate(args: argparse.Namespace) -> int:
    from archsearch.space import SearchSpace
    from archsearch.summary import describe_space

    space = SearchSpace.load(args.space)
    print(describe_space(space))
    return 0


def _patterns(args: argparse.Namespace) -> int:
    from archsearch.space import SearchSpace
    from archsearch.summary import pattern_table

    space = SearchSpace.load(args.space)
    print(pattern_table(space))
    return 0


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Verb]]:
    parser = argparse.ArgumentParser(
        prog="archsearch",
        description="Choose how to mix attention and Gated DeltaNet layers with proxy models.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs: dict[str, Verb] = {}

    def verb(name: str, func: Verb, help_text: str) -> argparse.ArgumentParser:
        verbs[name] = func
        return sub.add_parser(name, help=help_text, description=help_text)

    p = verb("validate", _validate, "check a search-space YAML and summarise it")
    p.add_argument("space", help="the search-space YAML file")
    p = verb("patterns", _patterns, "list the distinct candidate patterns with their costs")
    p.add_argument("space", help="the search-space YAML file")
    return parser, verbs


def main(argv: Sequence[str] | None = None) -> int:
    parser, verbs = _parser()
    args = parser.parse_args(argv)
    try:
        return verbs[args.verb](args)
    except ArchsearchError as err:
        print(f"archsearch {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"archsearch {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
