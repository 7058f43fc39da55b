"""``archsearch tag CORPUS``: label every token of a corpus (category, copy run) and count them."""

from __future__ import annotations

import argparse

from archsearch.cli.common import verb_parser

NAME = "tag"
STOPPED_BY_SIGTERM = False


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = verb_parser(subparsers, NAME,
                    "label every token of a corpus (category, copy run) and count them")
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
    return p


def run(args: argparse.Namespace) -> int:
    from archsearch.data import tag_corpus

    result = tag_corpus(
        args.corpus, args.tokenizer, args.out, format=args.format, text_field=args.field,
        vocab_size=args.vocab_size, copy_min_run=args.copy_min_run,
        max_documents=args.max_documents, pos=args.pos,
    )
    print(result.summary)
    return 0
