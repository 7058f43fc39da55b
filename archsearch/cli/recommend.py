"""``archsearch recommend DIR``: the recommended ratio and placement, with its evidence."""

from __future__ import annotations

import argparse

from archsearch.cli.common import verb_parser
from archsearch.errors import ArchsearchError

NAME = "recommend"
STOPPED_BY_SIGTERM = False


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = verb_parser(subparsers, NAME, "the recommended ratio and placement, with fits, "
                                      "intervals, rank stability and the margin")
    p.add_argument("dir", help="a scale folder (extrapolates to the target) or a sweep folder")
    p.add_argument("--weights", action="append", metavar="M=W,...",
                   help="objective weights, e.g. semantic_loss=0.5,copy_loss=0.5 (default: the "
                        "space's objectives, equal)")
    p.add_argument("--target", default="olmo-hybrid-7b", help="the model to extrapolate to")
    p.add_argument("--target-params", type=float, metavar="N",
                   help="parameters at the target (default: the ladder's target_params)")
    p.add_argument("--target-tokens", type=float, metavar="D",
                   help="training tokens at the target (default: the ladder's target_tokens)")
    p.add_argument("--bootstrap", type=int, metavar="B",
                   help="bootstrap resamples (default: the ladder's 'bootstrap')")
    p.add_argument("--json", action="store_true", help="print the evidence as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from archsearch.scaling.recommend import parse_weights, recommend
    from archsearch.scaling.render import as_dict, render

    if args.bootstrap is not None and args.bootstrap < 1:
        raise ArchsearchError(f"--bootstrap: must be at least 1 resample, got {args.bootstrap}")
    rec = recommend(args.dir, parse_weights(args.weights), target=args.target,
                    target_params=args.target_params, target_tokens=args.target_tokens,
                    bootstrap=args.bootstrap)
    print(json.dumps(as_dict(rec), indent=2) if args.json else render(rec))
    return 0
