"""``archsearch compare REF CAND``: two language models token by token (docs/COMPARE.md)."""

from __future__ import annotations

import argparse

from archsearch.cli.common import verb_parser

NAME = "compare"
STOPPED_BY_SIGTERM = False


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = verb_parser(subparsers, NAME, "compare two language models token by token (gaps per "
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
    p.add_argument("--pos", action="store_true", help="add part-of-speech groups (noun, verb, "
                   "adjective, ...) from spaCy: pip install 'archsearch[pos]' and "
                   "python -m spacy download en_core_web_sm")
    p.add_argument("--pos-model", default="en_core_web_sm", metavar="NAME",
                   help="the spaCy pipeline --pos loads: an installed name or a saved folder")
    return p


def run(args: argparse.Namespace) -> int:
    from archsearch.compare import CompareSettings, run_compare

    names = ("corpus", "out", "device", "max_tokens", "max_documents", "tokenizer", "window",
             "format", "text_field", "bootstrap", "seed", "trust_remote_code", "pos",
             "pos_model")
    settings = CompareSettings(**{n: getattr(args, n) for n in names})
    print(run_compare(args.reference, args.candidate, settings).summary)
    return 0
