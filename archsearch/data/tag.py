"""``archsearch tag``: label every token of a corpus and summarise the categories.

Why: before trusting a per-category score on a corpus, look at what the categories hold there
(how many content, function and copy tokens; which tokens they are). The CLI calls
``tag_corpus``, prints ``result.summary`` and, with ``--out``, the per-token table is written to
parquet as it is computed (one row group per batch of documents, never the whole corpus in
memory).

Table columns: doc, position, token (id), text (the token's characters), word (the word it
belongs to), category, first (first token of its word), copy, copy_run, copy_source (the
position in the same document of the earlier token a copy token repeats; -1 for non-copy
tokens), copy_bucket, and pos (Universal POS, only when requested and spaCy with an English
model is installed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from archsearch.data.builtin import builtin_fingerprint, generate_corpus
from archsearch.data.categories import (
    CATEGORIES,
    classify_tokens,
    segment,
    spacy_available,
    spacy_pos,
)
from archsearch.data.copy import bucket_names, bucket_of, copy_matches
from archsearch.data.corpus import Document, corpus_fingerprint, iter_documents
from archsearch.data.tokenizer import TextTokenizer, get_tokenizer
from archsearch.errors import ArchsearchError

TAG_BATCH = 128


@dataclass(frozen=True)
class TagResult:
    """What ``tag_corpus`` found: the printable ``summary`` and the counts behind it."""

    summary: str
    counts: pd.DataFrame  # category, tokens, share (classes, then copy and its buckets)
    n_documents: int
    n_tokens: int
    out: Path | None


def _schema(pos: bool) -> object:
    """The per-token table's columns (fixed, so every row group has the same types)."""
    import pyarrow as pa

    fields = [("doc", pa.int32()), ("position", pa.int32()), ("token", pa.int32()),
              ("text", pa.string()), ("word", pa.string()), ("category", pa.string()),
              ("first", pa.bool_()), ("copy", pa.bool_()), ("copy_run", pa.int32()),
              ("copy_source", pa.int32()), ("copy_bucket", pa.string())]
    if pos:
        fields.append(("pos", pa.string()))
    return pa.schema(fields)


def _documents(corpus: str, fmt: str, text_field: str, builtin_documents: int,
               seed: int) -> tuple[str, Callable[[], Iterator[Document]]]:
    if corpus == "builtin":
        docs = [Document(d.text, f"builtin:{i}")
                for i, d in enumerate(generate_corpus(builtin_documents, seed))]
        return builtin_fingerprint(builtin_documents, seed), lambda: iter(docs)
    return corpus_fingerprint(corpus, fmt, text_field), lambda: iter_documents(
        corpus, fmt, text_field)


def _batches(docs: Iterator[Document], size: int, limit: int | None) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for i, d in enumerate(docs):
        if limit is not None and i >= limit:
            break
        batch.append(d)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _writable_file(path: Path) -> Path:
    """``path``, with its folder made, before any work: a bad ``--out`` fails at once."""
    if path.is_dir():
        raise ArchsearchError(f"{path} is a folder: --out takes a parquet file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ArchsearchError(f"{path}: cannot make its folder ({err.strerror})") from None
    return path


def tag_corpus(corpus: str, tokenizer: str = "bpe", out: str | Path | None = None, *,
               format: str = "auto", text_field: str = "text", vocab_size: int = 1024,
               builtin_documents: int = 800, seed: int = 0, copy_min_run: int = 4,
               copy_buckets: Sequence[int] = (4, 8, 16), cache_dir: str | Path | None = None,
               max_documents: int | None = None, pos: bool = False) -> TagResult:
    """Tag ``corpus`` (a path, glob or ``builtin``) token by token.

    ``tokenizer`` is ``"bpe"`` (trained on this corpus with ``vocab_size`` and cached in
    ``cache_dir``) or a local tokenizer.json / folder. ``pos=True`` adds spaCy POS tags when
    spaCy and ``en_core_web_sm`` are installed (skipped otherwise, with a note in the summary).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from archsearch.data.prepare import default_cache_dir

    fingerprint, docs = _documents(corpus, format, text_field, builtin_documents, seed)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tok: TextTokenizer = get_tokenizer(tokenizer, cache, fingerprint, vocab_size,
                                       texts_factory=lambda: (d.text for d in docs()))
    use_pos = pos and spacy_available()
    names = bucket_names(copy_buckets)
    class_counts = np.zeros(len(CATEGORIES), np.int64)
    bucket_counts = np.zeros(len(names), np.int64)
    n_copy = n_tokens = n_docs = 0
    writer = None
    out_path = _writable_file(Path(out)) if out is not None else None
    try:
        for batch in _batches(docs(), TAG_BATCH, max_documents):
            encoded = tok.encode([d.text for d in batch])
            frames = []
            for d, (ids, offs) in zip(batch, encoded, strict=True):
                words = segment(d.text)
                classes = classify_tokens(d.text, offs, words)
                matches = copy_matches(ids, copy_min_run)
                runs = matches.run
                bucket = bucket_of(runs, copy_buckets)
                class_counts += np.bincount(classes.codes, minlength=len(CATEGORIES))
                bucket_counts += np.bincount(bucket[bucket >= 0], minlength=len(names))
                n_copy += int((runs > 0).sum())
                n_tokens += len(ids)
                if out_path is not None:
                    cols = {
                        "doc": np.full(len(ids), n_docs, np.int32),
                        "position": np.arange(len(ids), dtype=np.int32),
                        "token": ids.astype(np.int32),
                        "text": [d.text[s:e] for s, e in offs],
                        "word": [words.texts[w] if w >= 0 else "" for w in classes.word],
                        "category": [CATEGORIES[c] for c in classes.codes],
                        "first": classes.first,
                        "copy": runs > 0,
                        "copy_run": runs.astype(np.int32),
                        "copy_source": matches.source.astype(np.int32),
                        "copy_bucket": [names[b] if b >= 0 else None for b in bucket],
                    }
                    if use_pos:
                        cols["pos"] = spacy_pos(d.text, offs)
                    frames.append(pa.table(cols, schema=_schema(use_pos)))
                n_docs += 1
            if out_path is not None and frames:
                table = pa.concat_tables(frames)
                if writer is None:
                    try:
                        writer = pq.ParquetWriter(out_path, table.schema)
                    except OSError as err:
                        raise ArchsearchError(f"{out_path}: cannot write: {err}") from None
                writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if n_tokens == 0:
        raise ArchsearchError(f"{corpus}: no tokens to tag")

    rows = [(c, int(n)) for c, n in zip(CATEGORIES, class_counts, strict=True)]
    rows.append(("copy", n_copy))
    rows += [(f"copy_{b}", int(n)) for b, n in zip(names, bucket_counts, strict=True)]
    counts = pd.DataFrame(rows, columns=["category", "tokens"])
    counts["share"] = counts["tokens"] / n_tokens
    head = (f"{corpus}: {n_docs} documents, {n_tokens} tokens (tokenizer {tok.name}, "
            f"copy = continues a repeat of >= {copy_min_run} tokens)")
    lines = [head, f"{'category':<16}{'tokens':>10}{'share':>9}"]
    for r in counts.itertuples():
        indent = "  " if r.category.startswith("copy_") else ""
        lines.append(f"{indent + r.category:<16}{r.tokens:>10d}{r.share:>9.2%}")
    if pos and not use_pos:
        lines.append("pos: skipped (spaCy with en_core_web_sm is not installed)")
    if out_path is not None:
        lines.append(f"per-token table: {out_path}")
    return TagResult("\n".join(lines), counts, n_docs, n_tokens, out_path)

