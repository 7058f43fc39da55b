"""``archsearch resume FOLDER``: continue a sweep or scale run whose driver stopped."""

from __future__ import annotations

import argparse

from archsearch.cli.common import autotune_argument, cluster_arguments, verb_parser
from archsearch.errors import ArchsearchError

NAME = "resume"
STOPPED_BY_SIGTERM = True


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = verb_parser(subparsers, NAME, "continue a sweep (or scale or supernet run) whose driver "
                                      "stopped, from its folder")
    p.add_argument("sweep_dir", help="the sweep, scale or supernet folder (<storage>/<name>) or its URI")
    p.add_argument("--retry-errored", action="store_true",
                   help="also retry trials that failed with an error, from their checkpoints")
    cluster_arguments(p)
    autotune_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    from archsearch.analysis.sweep_summary import sweep_summary
    from archsearch.cli.scale import scale_exit_code
    from archsearch.cli.sweep import sweep_exit_code
    from archsearch.scaling.run import is_scale_folder, resume_scale
    from archsearch.supernet.render import supernet_summary
    from archsearch.supernet.run import is_supernet_folder, resume_supernet
    from archsearch.sweep import SweepOptions, resume_sweep

    if is_supernet_folder(args.sweep_dir):
        supernet_options = SweepOptions(args.address, args.verbose, args.shared_storage_ok)
        outcome = resume_supernet(args.sweep_dir, options=supernet_options)
        print(supernet_summary(outcome))
        return 0 if outcome.finished else 130
    if is_scale_folder(args.sweep_dir):
        if args.autotune_cache:
            raise ArchsearchError(f"--autotune-cache: a scale folder takes its autotune choices "
                                  f"from {args.sweep_dir}/autotune.tar; copy the archive there")
        scaled = resume_scale(args.sweep_dir, address=args.address, verbose=args.verbose,
                              shared_storage_ok=args.shared_storage_ok,
                              retry_errored=args.retry_errored)
        print(scaled.summary)
        return scale_exit_code(scaled)
    options = SweepOptions(args.address, args.verbose, args.shared_storage_ok, args.autotune_cache)
    outcome = resume_sweep(args.sweep_dir, options=options, retry_errored=args.retry_errored)
    print(sweep_summary(outcome))
    return sweep_exit_code(outcome)
