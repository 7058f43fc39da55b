"""``archsearch export OUT``: a full-size model config for a pattern, or proxy weights."""

from __future__ import annotations

import argparse

from archsearch.cli.common import verb_parser
from archsearch.errors import ArchsearchError

NAME = "export"
STOPPED_BY_SIGTERM = False


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = verb_parser(subparsers, NAME, "write a full-size model config for a pattern (hf, "
                                      "olmo-core, fla), or proxy weights for transformers")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="from_dir", metavar="DIR",
                        help="the pattern recommended by a scale or sweep folder")
    source.add_argument("--pattern", help="a layer pattern in any spelling, e.g. '(GGGA)*8'")
    source.add_argument("--checkpoint", metavar="PATH",
                        help="a proxy checkpoint folder: export its weights (--format hf)")
    p.add_argument("--target", default="olmo-hybrid-7b", help="whose dimensions to use")
    p.add_argument("--format", default="hf", choices=("hf", "olmo-core", "fla"))
    p.add_argument("--depth", type=int, metavar="N",
                   help="redraw the pattern at N layers (default: --pattern's own depth; the "
                        "target's depth for --from)")
    p.add_argument("--weights", action="append", metavar="M=W,...",
                   help="with --from: objective weights, as for recommend")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a folder that already holds files (files of the same "
                        "name are replaced; default: refuse)")
    p.add_argument("out", help="the output folder (new or empty, unless --overwrite)")
    return p


def run(args: argparse.Namespace) -> int:
    from archsearch.export.folder import check_output_folder

    check_output_folder(args.out, overwrite=args.overwrite)
    if args.checkpoint is not None:
        if args.format != "hf":
            raise ArchsearchError(f"--checkpoint exports proxy weights to hf only, not "
                                  f"{args.format}")
        from archsearch.export.hf import export_checkpoint

        path = export_checkpoint(args.checkpoint, args.out, format="hf")
        print(f"transformers checkpoint written to {path}")
        return 0
    from archsearch.export.pattern import export_pattern, export_recommended
    from archsearch.scaling.recommend import parse_weights

    if args.pattern is not None:
        files = export_pattern(args.pattern, args.format, args.out, args.target, args.depth)
    else:
        files = export_recommended(args.from_dir, args.format, args.out, args.target,
                                   parse_weights(args.weights), args.depth)
    print(f"{args.format} config for {args.target} written to {args.out}: "
          f"{', '.join(f.name for f in files)}")
    return 0
