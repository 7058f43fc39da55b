"""``prepare_data``: corpus -> tokenizer -> token store -> training stream, validation, probes.

The trainer calls it at the start of every trial, so it must be cheap once done and safe when
several trials call it at once. The expensive part (reading, tokenizing, labelling the corpus)
is one cache entry keyed by every setting that changes its content, built under a lock in a
private folder and published by one rename; a cached entry loads in milliseconds (the token
array is memory-mapped). What depends only on cheap settings (``seq_len``, ``probes``,
``probe_fraction``, ``probe_examples``, ``probe_len``) is computed at load time, so tuning
those reuses the entry.

Split. Document ``i`` goes to validation when ``unit_hash(seed, i) < validation_fraction``: a
seeded coin per document, so adding documents never moves the others (at least one document
lands on each side). The fixed validation set is the validation documents with the smallest
coins, up to ``validation_tokens`` tokens (the last one cut), so it is a random sample of
documents whatever the corpus order. The BPE is trained on the whole corpus (its merges carry
no labels) so that one tokenizer serves every seed and split.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from archsearch.data.builtin import builtin_fingerprint, generate_corpus
from archsearch.data.cache import (
    cache_key,
    ensure_dir,
    file_lock,
    new_staging_dir,
    publish_dir,
)
from archsearch.data.corpus import Document, corpus_fingerprint, iter_documents
from archsearch.data.labels import TokenLabels, label_document
from archsearch.data.probes import BLOCK_SIZE, Probe, ProbeSequence, build_probes, probe_vocab
from archsearch.data.probes.base import ProbeVocab
from archsearch.data.seeding import unit_hash
from archsearch.data.stream import TrainStream, ValidationSet, pack_validation
from archsearch.data.tokenizer import (
    TextTokenizer,
    get_tokenizer,
    load_tokenizer,
    tokenizer_fingerprint,
)
from archsearch.errors import ArchsearchError
from archsearch.space.schema import DataSection, EvaluationSection

PREP_VERSION = 2  # bump when the cached arrays change (2: labels gained copy_source)
ENCODE_BATCH = 256


def default_cache_dir() -> Path:
    """``$ARCHSEARCH_CACHE`` or ``~/.cache/archsearch``: where prepared data is kept."""
    return Path(os.environ.get("ARCHSEARCH_CACHE", "~/.cache/archsearch")).expanduser()


@dataclass
class PreparedData:
    """Everything the trainer and ``evaluate`` need about the data of one trial.

    ``vocab_size`` counts text ids, the end-of-document id and (when probes are on) the
    reserved probe block; a model's embedding must have at least this many rows.
    """

    vocab_size: int
    seq_len: int
    eod_id: int
    pad_id: int
    text_vocab_size: int
    seed: int
    validation: ValidationSet
    probes: dict[str, Probe]
    probe_eval: dict[str, list[ProbeSequence]]
    probe_vocab: ProbeVocab | None
    token_counts: np.ndarray  # occurrences of each id in the training split
    meta: dict
    path: Path
    _stream: TrainStream = field(repr=False)
    _tokenizer: TextTokenizer | None = field(default=None, repr=False)

    def train_batches(self, batch_size: int, seed: int, start_step: int = 0) -> Iterator[tuple]:
        """Endless ``(input_ids, targets)`` LongTensors ``[batch_size, seq_len]``.

        Deterministic for ``seed``; the batch of step ``s`` is the same whether the run started
        at 0 or resumed at ``start_step <= s``. Targets are -100 where nothing is learnt.
        """
        return self._stream.batches(batch_size, seed, start_step)

    def train_batch(self, step: int, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The numpy arrays of one step (what ``train_batches`` yields at that step)."""
        return self._stream.batch(step, batch_size, seed)

    @property
    def labels(self) -> TokenLabels:
        """Per-token labels of the validation set (aligned with ``evaluate``'s token losses)."""
        return self.validation.labels

    @property
    def n_train_tokens(self) -> int:
        return int(self.meta["n_train_tokens"])

    def tokenizer(self) -> TextTokenizer:
        """The text tokenizer (loaded on first use)."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.path / "tokenizer.json")
        return self._tokenizer


# ---------------------------------------------------------------- settings


def _corpus_identity(data: DataSection) -> str:
    if data.corpus == "builtin":
        return builtin_fingerprint(data.builtin_documents, data.seed)
    identity = corpus_fingerprint(data.corpus, data.format, data.text_field)
    return identity if data.max_documents is None else f"{identity}-first{data.max_documents}"


def _documents_factory(data: DataSection) -> Callable[[], Iterator[Document]]:
    if data.corpus == "builtin":
        docs = generate_corpus(data.builtin_documents, data.seed)
        texts = [Document(d.text, f"builtin:{i}") for i, d in enumerate(docs)]
        return lambda: iter(texts)
    return lambda: itertools.islice(iter_documents(data.corpus, data.format, data.text_field),
                                    data.max_documents)


def entry_key(data: DataSection, evaluation: EvaluationSection) -> str:
    """The cache key of the token store for these settings."""
    tok = ("bpe", data.vocab_size) if data.tokenizer == "bpe" else (
        "file", tokenizer_fingerprint(data.tokenizer))
    return cache_key({
        "version": PREP_VERSION,
        "corpus": _corpus_identity(data),
        "tokenizer": tok,
        "seed": data.seed,
        "validation_fraction": data.validation_fraction,
        "validation_tokens": evaluation.validation_tokens,
        "copy_min_run": evaluation.copy_min_run,
    })


# ---------------------------------------------------------------- building


def _build_entry(data: DataSection, evaluation: EvaluationSection, cache_dir: Path,
                 staging: Path) -> None:
    t0 = time.perf_counter()
    docs = _documents_factory(data)
    tok = get_tokenizer(data.tokenizer, cache_dir, _corpus_identity(data), data.vocab_size,
                        texts_factory=lambda: (d.text for d in docs()))
    t_tok = time.perf_counter()
    frac = data.validation_fraction
    budget = evaluation.validation_tokens

    train_ids: list[np.ndarray] = []
    train_keys: list[float] = []
    n_docs = 0
    n_val_docs = 0
    # validation docs with the smallest coins, enough for `budget` tokens: a max-heap on coin
    heap: list[tuple[float, int, str, str, np.ndarray, np.ndarray]] = []
    heap_tokens = 0
    spare_train: tuple[float, int, str, str] | None = None  # smallest-coin training doc

    def flush(batch: list[tuple[int, Document]]) -> None:
        nonlocal n_val_docs, heap_tokens, spare_train
        coins = [unit_hash("split", data.seed, i) for i, _ in batch]
        val = [(c, i, d) for c, (i, d) in zip(coins, batch, strict=True) if c < frac]
        train = [(c, i, d) for c, (i, d) in zip(coins, batch, strict=True) if c >= frac]
        if train:
            for (c, i, d), ids in zip(train, tok.encode_ids([d.text for _, _, d in train]),
                                      strict=True):
                train_ids.append(ids)
                train_keys.append(c)
                if spare_train is None or c < spare_train[0]:
                    spare_train = (c, i, d.text, d.origin)
        if val:
            n_val_docs += len(val)
            for (c, i, d), (ids, offs) in zip(val, tok.encode([d.text for _, _, d in val]),
                                              strict=True):
                if len(ids) == 0:
                    continue
                heapq.heappush(heap, (-c, i, d.text, d.origin, ids, offs))
                heap_tokens += len(ids)
                while heap and heap_tokens - len(heap[0][4]) >= budget:
                    heap_tokens -= len(heapq.heappop(heap)[4])

    batch: list[tuple[int, Document]] = []
    for doc in docs():
        batch.append((n_docs, doc))
        n_docs += 1
        if len(batch) >= ENCODE_BATCH:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    if n_docs < 2:
        raise ArchsearchError(
            f"{data.corpus}: corpus holds {n_docs} document; a train/validation split needs "
            "at least 2 (separate documents in a text file with a line '<|endoftext|>')")
    if not heap and spare_train is not None:  # no validation document: take the lowest coin
        c, i, text, origin = spare_train
        k = train_keys.index(c)
        train_ids.pop(k)
        train_keys.pop(k)
        (ids, offs), = tok.encode([text])
        heap.append((-c, i, text, origin, ids, offs))
    if not train_ids:  # no training document: give back the highest-coin validation document
        k = min(range(len(heap)), key=lambda j: heap[j][0])  # largest coin
        train_ids.append(heap.pop(k)[4])
    t_enc = time.perf_counter()

    # training stream and frequencies
    eod = tok.eod_id
    vocab_text = tok.vocab_size
    pieces = []
    for ids in train_ids:
        pieces.append(np.asarray([eod], np.int64))
        pieces.append(ids)
    train = np.concatenate(pieces)
    counts = np.bincount(train, minlength=vocab_text).astype(np.int64)
    log_freq = np.log1p(counts.astype(np.float64))
    dtype = np.uint16 if vocab_text + BLOCK_SIZE <= np.iinfo(np.uint16).max else np.uint32
    np.save(staging / "train_tokens.npy", train.astype(dtype))
    np.save(staging / "token_counts.npy", counts)

    # validation: smallest coins first, cut at the budget; labels on whole docs (prefix-stable)
    chosen = sorted(heap, key=lambda h: -h[0])
    val_tokens: list[np.ndarray] = []
    labels: list[TokenLabels] = []
    origins: list[str] = []
    left = budget
    for d, (_negc, _i, text, origin, ids, offs) in enumerate(chosen):
        if left <= 0:
            break
        lab = label_document(d, text, ids, offs, evaluation.copy_min_run, log_freq)
        keep = min(len(ids), left)
        labels.append(lab.take(np.arange(keep)))
        val_tokens.append(ids[:keep])
        origins.append(origin)
        left -= keep
    all_labels = TokenLabels.concat(labels)
    np.savez(staging / "validation.npz", **all_labels.to_arrays(),
             doc_lengths=np.asarray([len(v) for v in val_tokens], np.int64))
    t_lab = time.perf_counter()

    if Path(tok.path).is_file():
        (staging / "tokenizer.json").write_bytes(Path(tok.path).read_bytes())
    else:  # built by transformers from a folder or a hub id: save what it built
        (staging / "tokenizer.json").write_text(tok.hf.to_str(), encoding="utf-8")  # type: ignore[attr-defined]
    meta = {
        "version": PREP_VERSION,
        "corpus": data.corpus,
        "corpus_identity": _corpus_identity(data),
        "tokenizer": data.tokenizer,
        "tokenizer_source": str(tok.path),
        "text_vocab_size": vocab_text,
        "tokenizer_vocab": tok.n_text,
        "eod_id": eod,
        "n_documents": n_docs,
        "n_train_documents": len(train_ids),
        "n_validation_documents_total": max(n_val_docs, len(heap)),
        "n_validation_documents": len(val_tokens),
        "n_train_tokens": len(train),
        "n_validation_tokens": len(all_labels),
        "validation_origins": origins,
        "seconds": {"tokenizer": t_tok - t0, "encode": t_enc - t_tok, "label": t_lab - t_enc,
                    "total": time.perf_counter() - t0},
    }
    (staging / "meta.json").write_text(json.dumps(meta, indent=1))


def _ensure_entry(data: DataSection, evaluation: EvaluationSection, cache_dir: Path) -> Path:
    key = entry_key(data, evaluation)
    root = ensure_dir(Path(cache_dir) / "data")
    entry = root / key
    if (entry / "meta.json").is_file():
        return entry
    with file_lock(root / f"{key}.lock"):
        if (entry / "meta.json").is_file():
            return entry
        staging = new_staging_dir(entry)
        try:
            _build_entry(data, evaluation, Path(cache_dir), staging)
        except BaseException:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
            raise
        publish_dir(staging, entry)
    return entry


# ---------------------------------------------------------------- loading


def prepare_data(data: DataSection, evaluation: EvaluationSection,
                 cache_dir: Path | str | None = None) -> PreparedData:
    """Prepare (or load from ``cache_dir``) everything a trial needs about its data.

    The settings are those of a validated space: their rules (``space/schema.py``) were
    checked when it loaded. Raises ``ArchsearchError`` for a bad corpus, naming the file.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = _ensure_entry(data, evaluation, cache_dir)
    meta = json.loads((entry / "meta.json").read_text())
    text_vocab = int(meta["text_vocab_size"])
    eod = int(meta["eod_id"])
    pvocab = probe_vocab(text_vocab) if data.probes else None
    probes = build_probes(data.probes, pvocab, evaluation.probe_len) if pvocab is not None else {}
    vocab_size = pvocab.end if pvocab is not None else text_vocab
    pad_id = pvocab.special("PAD") if pvocab is not None else eod
    train = np.load(entry / "train_tokens.npy", mmap_mode="r")
    stream = TrainStream(train, data.seq_len, probes, data.probe_fraction, pad_id)
    with np.load(entry / "validation.npz") as z:
        labels = TokenLabels.from_arrays({k: z[k] for k in z.files})
        doc_lengths = z["doc_lengths"]
    bounds = np.concatenate([[0], np.cumsum(doc_lengths)])
    doc_tokens = [labels.token[bounds[i]: bounds[i + 1]] for i in range(len(doc_lengths))]
    validation = pack_validation(doc_tokens, labels, data.seq_len, eod, pad_id,
                                 meta.get("validation_origins", ()))
    probe_eval = {name: p.eval_set(data.seed, evaluation.probe_examples)
                  for name, p in probes.items()}
    return PreparedData(
        vocab_size=vocab_size, seq_len=data.seq_len, eod_id=eod, pad_id=pad_id,
        text_vocab_size=text_vocab, seed=data.seed, validation=validation, probes=probes,
        probe_eval=probe_eval, probe_vocab=pvocab,
        token_counts=np.load(entry / "token_counts.npy"), meta=meta, path=entry,
        _stream=stream,
    )
