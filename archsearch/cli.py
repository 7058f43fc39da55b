"""The ``archsearch`` command line: one small function per verb, all errors one line.

Verbs import what they need lazily, so ``archsearch --help`` and ``validate`` stay fast and never
start Ray or touch a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from archsearch.errors import ArchsearchError

if TYPE_CHECKING:
    from archsearch.scaling.run import ScaleOutcome
    from archsearch.sweep import SweepOutcome

Verb = Callable[[argparse.Namespace], int]


def _validate(args: argparse.Namespace) -> int:
    from archsearch.space import SearchSpace
    from archsearch.summary import describe_space

    space = SearchSpace.load(args.space)
    if space.spec.ladder is not None:  # `scale` must not find a fault validate could have seen
        from archsearch.scaling.ladder import load_ladder_space

        load_ladder_space(args.space)
    print(describe_space(space))
    return 0


def _patterns(args: argparse.Namespace) -> int:
    from archsearch.space import SearchSpace
    from archsearch.summary import pattern_table

    space = SearchSpace.load(args.space)
    print(pattern_table(space))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from archsearch.analysis.sweep_summary import sweep_summary
    from archsearch.sweep import SweepOptions, run_sweep

    options = SweepOptions(args.address, args.verbose, args.shared_storage_ok, args.autotune_cache)
    outcome = run_sweep(args.space, name=args.name, storage=args.storage, overrides=args.set,
                        options=options)
    print(sweep_summary(outcome))
    return _sweep_status(outcome)


def _resume(args: argparse.Namespace) -> int:
    from archsearch.analysis.sweep_summary import sweep_summary
    from archsearch.scaling.run import is_scale_folder, resume_scale
    from archsearch.sweep import SweepOptions, resume_sweep

    if is_scale_folder(args.sweep_dir):
        if args.autotune_cache:
            raise ArchsearchError(f"--autotune-cache: a scale folder takes its autotune choices "
                                  f"from {args.sweep_dir}/autotune.tar; copy the archive there")
        scaled = resume_scale(args.sweep_dir, address=args.address, verbose=args.verbose,
                              shared_storage_ok=args.shared_storage_ok,
                              retry_errored=args.retry_errored)
        print(scaled.summary)
        return _scale_status(scaled)
    options = SweepOptions(args.address, args.verbose, args.shared_storage_ok, args.autotune_cache)
    outcome = resume_sweep(args.sweep_dir, options=options, retry_errored=args.retry_errored)
    print(sweep_summary(outcome))
    return _sweep_status(outcome)


def _sweep_status(outcome: SweepOutcome) -> int:
    """130 if interrupted, 1 if every trial failed, else 0 (failed trials are in the results)."""
    from archsearch.analysis.sweep_summary import trial_front
    from archsearch.sweep.status import FAILED

    if not outcome.finished:
        return 130
    front = trial_front(outcome.rows, outcome.space.spec.objectives)
    return 1 if not front and any(r.get("status") == FAILED for r in outcome.rows) else 0


def _cluster_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", metavar="ADDR",
                   help="join a running Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
                        "(default: a private Ray on this machine)")
    p.add_argument("--shared-storage-ok", action="store_true",
                   help="trust that a local storage path is shared by every node")
    p.add_argument("--verbose", action="store_true", help="show Ray's and the trials' own output")


def _autotune_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--autotune-cache", metavar="TAR",
                   help="Triton autotune choices saved on an earlier machine of the same GPU kind "
                        "(a sweep folder's autotune.tar): GPU trials start without tuning")


def _report(args: argparse.Namespace) -> int:
    from archsearch.report import write_report
    from archsearch.scaling.recommend import parse_weights

    if args.weight:  # the old spelling: kept working, pointed to the one the other verbs use
        print("archsearch report: note: --weight is deprecated; write --weights "
              f"{','.join(args.weight)}", file=sys.stderr)
    weights = parse_weights([*(args.weights or []), *args.weight])
    path = write_report(args.sweep_dir, args.out, weights=weights, reference=args.reference)
    print(f"report written to {path}")
    return 0


def _scale(args: argparse.Namespace) -> int:
    from archsearch.scaling.run import run_scale

    outcome = run_scale(args.space, name=args.name, storage=args.storage, overrides=args.set,
                        from_sweep=args.from_sweep, top_k=args.top_k, address=args.address,
                        verbose=args.verbose, shared_storage_ok=args.shared_storage_ok)
    print(outcome.summary)
    return _scale_status(outcome)


def _scale_status(outcome: ScaleOutcome) -> int:
    return 1 if outcome.unfinished or (outcome.failed and not outcome.completed) else 0


def _recommend(args: argparse.Namespace) -> int:
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


def _export(args: argparse.Namespace) -> int:
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


def _tag(args: argparse.Namespace) -> int:
    from archsearch.data import tag_corpus

    result = tag_corpus(
        args.corpus, args.tokenizer, args.out, format=args.format, text_field=args.field,
        vocab_size=args.vocab_size, copy_min_run=args.copy_min_run,
        max_documents=args.max_documents, pos=args.pos,
    )
    print(result.summary)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from archsearch.compare import CompareSettings, run_compare

    names = ("corpus", "out", "device", "max_tokens", "max_documents", "tokenizer", "window",
             "format", "text_field", "bootstrap", "seed", "trust_remote_code")
    settings = CompareSettings(**{n: getattr(args, n) for n in names})
    print(run_compare(args.reference, args.candidate, settings).summary)
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
    p = verb("tag", _tag, "label every token of a corpus (category, copy run) and count them")
    p.add_argument("corpus", help="'builtin', or a text / JSONL / parquet file or glob")
    p.add_argument("--tokenizer", default="bpe",
                   help="'bpe' (train one on the corpus) or a tokenizer.json / folder")
    p.add_argument("--out", help="write the per-token table to this parquet file")
    p.add_argument("--format", default="auto", choices=["auto", "text", "jsonl", "parquet"])
    p.add_argument("--field", default="text", help="JSONL field / parquet column of the text")
    p.add_argument("--vocab-size", type=int, default=1024, help="for a trained BPE")
    p.add_argument("--copy-min-run", type=int, default=4,
                   help="a copy token continues a repeat of at least this many tokens")
    p.add_argument("--max-documents", type=int, help="tag only the first N documents")
    p.add_argument("--pos", action="store_true",
                   help="add spaCy part-of-speech tags (needs an English spaCy model)")
    p = verb("compare", _compare, "compare two language models token by token (gaps per "
                                  "category and copy run length, with intervals)")
    p.add_argument("reference", metavar="REF", help="a transformers or archsearch checkpoint "
                   "folder, SWEEP_DIR:TRIAL_ID, or a Hugging Face hub id")
    p.add_argument("candidate", metavar="CAND", help="the model compared with REF (same forms)")
    p.add_argument("--corpus", default="builtin",
                   help="'builtin', or a text / JSONL / parquet file, folder or glob")
    p.add_argument("--out", default="compare", metavar="DIR", help="where results go")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (bf16 on a GPU)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="score at most N tokens")
    p.add_argument("--max-documents", type=int, metavar="N", help="read at most N documents")
    p.add_argument("--tokenizer", help="for models saved without one: a tokenizer.json, a "
                   "tokenizer folder or hub id")
    p.add_argument("--window", type=int, metavar="N", help="tokens per window (default: the "
                   "smaller context, at most 4096)")
    p.add_argument("--format", default="auto", choices=["auto", "text", "jsonl", "parquet"])
    p.add_argument("--field", dest="text_field", default="text",
                   help="JSONL field / parquet column of the text")
    p.add_argument("--bootstrap", type=int, default=200, help="resamples for the intervals")
    p.add_argument("--seed", type=int, default=0, help="of the bootstrap and the built-in corpus")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="let transformers run a model's own code from its folder or the hub")
    p = verb("sweep", _sweep, "train the space's proxies with Ray Tune and print the Pareto front")
    p.add_argument("space", help="the search-space YAML file")
    p.add_argument("--name", help="the sweep folder's name (default: the space's name)")
    p.add_argument("--storage", metavar="DIR|URI",
                   help="where sweep folders go: a folder or s3://, gs://... (default: the "
                        "space's 'storage')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a YAML field, e.g. training.tokens=1000 or "
                        "'model.d_model={choices: [32, 64]}' (repeatable)")
    _cluster_arguments(p)
    _autotune_argument(p)
    p = verb("resume", _resume, "continue a sweep (or scale run) whose driver stopped, from its "
                                "folder")
    p.add_argument("sweep_dir", help="the sweep or scale folder (<storage>/<name>) or its URI")
    p.add_argument("--retry-errored", action="store_true",
                   help="also retry trials that failed with an error, from their checkpoints")
    _cluster_arguments(p)
    _autotune_argument(p)
    p = verb("report", _report, "write a static HTML report of a sweep (fronts, gaps, the pick)")
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
    p = verb("scale", _scale, "train chosen patterns at every rung of the space's ladder "
                              "(Ray Tune; continue with 'archsearch resume FOLDER')")
    p.add_argument("space", help="the search-space YAML file, with a 'ladder' section")
    p.add_argument("--from", dest="from_sweep", metavar="SWEEP_DIR",
                   help="take the top patterns of this sweep (default: every candidate)")
    p.add_argument("--top-k", type=int, default=3, metavar="K",
                   help="how many patterns to take with --from (default: 3)")
    p.add_argument("--name", help="the scale folder's name (default: <space name>-scale)")
    p.add_argument("--storage", metavar="DIR|URI",
                   help="where the folder goes (default: the space's 'storage')")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a YAML field, e.g. ladder.seeds=[0,1] (repeatable)")
    _cluster_arguments(p)
    p = verb("recommend", _recommend, "the recommended ratio and placement, with fits, "
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
    p = verb("export", _export, "write a full-size model config for a pattern (hf, olmo-core, "
                                "fla), or proxy weights for transformers")
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
    return parser, verbs


@contextlib.contextmanager
def _sigterm_as_interrupt(active: bool) -> Iterator[None]:
    """``kill PID`` stops a sweep like Ctrl-C: Ray shut down, the folder left resumable."""
    if not active or threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser, verbs = _parser()
    args = parser.parse_args(argv)
    try:
        with _sigterm_as_interrupt(args.verb in ("sweep", "resume", "scale")):
            return verbs[args.verb](args)
    except ArchsearchError as err:
        print(f"archsearch {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"archsearch {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
