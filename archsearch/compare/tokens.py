"""The tokens both models score: a corpus read, tokenized once, labelled and cut into windows.

Both models read exactly these windows, so every token is scored with the same prefix by each.
Documents are packed as in proxy validation (``data.stream.pack_validation``): ``EOD d1 EOD d2
...`` cut into rows of ``window`` tokens, each token a target once; the end-of-document token
before a document is its beginning-of-sequence context and is never scored. A document longer
than a window is cut: its tokens after a cut see only the part of the document inside their
row. ``window`` is the smaller of the two models' contexts (or less, when asked).

Labels are the proxies' (``data.labels``): word class from the tokenizer's character offsets,
copy runs and sources from token ids, per document. The frequency control of the regression is
log(1 + count of the token id among the scored tokens): a model from elsewhere comes without its
training counts, and the scored corpus is the one sample both models are measured on.

With a spaCy pipeline (``pos_model``), each token also gets the Universal POS tag of the word
holding its first non-space character (``categories.spacy_pos``, through the same offsets), for
the ``pos_<TAG>`` groups of the comparison.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from archsearch.data.builtin import generate_document
from archsearch.data.categories import spacy_missing, spacy_pos
from archsearch.data.corpus import Document, iter_documents
from archsearch.data.labels import TokenLabels, label_document
from archsearch.data.stream import ValidationSet, pack_validation
from archsearch.data.tokenizer import TextTokenizer
from archsearch.errors import ArchsearchError

ENCODE_BATCH = 64


@dataclass(frozen=True)
class ScoredTokens:
    """The packed windows, their labels (``windows.labels``) and each token's text."""

    windows: ValidationSet
    text: list[str]  # the characters of each scored token, in ``labels`` order
    n_documents: int
    pos: list[str] | None = None  # each scored token's Universal POS tag, when asked for

    @property
    def labels(self) -> TokenLabels:
        return self.windows.labels


def corpus_documents(corpus: str, fmt: str = "auto", text_field: str = "text",
                     seed: int = 0) -> Iterator[Document]:
    """Documents of ``corpus``: ``builtin`` (generated lazily: as many as asked for), a text /
    JSONL / parquet file, folder or glob, or ``hf:`` / a ``datasets`` folder (``data.hf``)."""
    if corpus == "builtin":
        return (Document(generate_document(seed, i).text, f"builtin:{i}")
                for i in itertools.count())
    return iter_documents(corpus, fmt, text_field)


def tokenize_corpus(documents: Iterator[Document], tokenizer: TextTokenizer, window: int,
                    max_tokens: int | None, copy_min_run: int = 4,
                    max_documents: int | None = None,
                    pos_model: str | None = None) -> ScoredTokens:
    """Tokenize, label and pack ``documents`` until ``max_tokens`` tokens (the last document cut)
    or ``max_documents`` documents; with neither cap, the whole corpus (which must end).
    ``pos_model`` (a spaCy pipeline name or folder) tags every token's part of speech."""
    if pos_model is not None:
        missing = spacy_missing(pos_model)
        if missing is not None:
            raise ArchsearchError(f"--pos {missing}")
    if window < 2:
        raise ArchsearchError(f"--window: a window needs at least 2 tokens, got {window}")
    if max_tokens is not None and max_tokens < 1:
        raise ArchsearchError(f"--max-tokens: must be positive, got {max_tokens}")
    ids_per_doc: list[np.ndarray] = []
    labels: list[TokenLabels] = []
    texts: list[str] = []
    tags: list[str] = []
    origins: list[str] = []
    left = max_tokens
    docs = itertools.islice(documents, max_documents) if max_documents is not None else documents
    while left is None or left > 0:
        batch = list(itertools.islice(docs, ENCODE_BATCH))
        if not batch:
            break
        for doc, (ids, offs) in zip(batch, tokenizer.encode([d.text for d in batch]),
                                    strict=True):
            if not len(ids):
                continue
            keep = len(ids) if left is None else min(len(ids), left)
            lab = label_document(len(ids_per_doc), doc.text, ids, offs, copy_min_run)
            labels.append(lab.take(np.arange(keep)))
            ids_per_doc.append(ids[:keep])
            texts += [doc.text[s:e] for s, e in offs[:keep]]
            if pos_model is not None:
                tags += spacy_pos(doc.text, offs[:keep], pos_model) or []
            origins.append(doc.origin)
            if left is not None:
                left -= keep
                if left <= 0:
                    break
    if not ids_per_doc:
        raise ArchsearchError("--corpus: no tokens to score (the corpus is empty)")
    all_labels = TokenLabels.concat(labels)
    counts = np.bincount(all_labels.token, minlength=1)
    all_labels = dataclasses.replace(
        all_labels, log_freq=np.log1p(counts[all_labels.token].astype(np.float64)))
    windows = pack_validation(ids_per_doc, all_labels, window, tokenizer.eod_id,
                              tokenizer.eod_id, origins)
    return ScoredTokens(windows, texts, len(ids_per_doc),
                        tags if pos_model is not None else None)
