"""Tokenizers: a byte-level BPE trained on the corpus, or a local ``tokenizer.json``.

Why both: a proxy with a small vocabulary (``data.vocab_size``, default 1024) trains fast and
spends few parameters on embeddings; scoring a corpus the way a real model sees it needs that
model's tokenizer (e.g. Olmo's dolma2, ``allenai/dolma2-tokenizer``). ``data.tokenizer`` is
``"bpe"``, a ``tokenizer.json``, a folder holding one, any folder transformers builds a fast
tokenizer from, or a hub id (from the Hugging Face cache, or the hub when it can be reached:
``archsearch.hub``).

A trained BPE is cached on disk, keyed by the corpus fingerprint and the settings, written
atomically under a lock (several trials may prepare the same data at once). Encoding keeps the
character offsets of every token, which ``categories.py`` uses to map tokens to words.

End of document: the tokenizer's own end-of-text special token when it has one
(``<|endoftext|>`` in a trained BPE and in dolma2); otherwise one id appended after the
tokenizer's vocabulary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from archsearch.atomic import atomic_write_bytes
from archsearch.data.cache import cache_key, ensure_dir, file_lock
from archsearch.errors import ArchsearchError
from archsearch.space.rules import MIN_BPE_VOCAB

MAX_RUN_CHARS = 1000  # longest run without whitespace the BPE trainer sees (see _short_runs)

EOD_TOKEN = "<|endoftext|>"
EOD_CANDIDATES = (EOD_TOKEN, "<|end_of_text|>", "</s>", "<eos>", "<|eos|>", "<|im_end|>")
BPE_VERSION = 1
BPE_MAX_CHARS = 200_000_000
"""A BPE is trained on at most this many characters (the corpus's first documents): merges
settle long before that, and a proxy sweep should not spend minutes on its tokenizer."""


@dataclass
class TextTokenizer:
    """A HF ``tokenizers.Tokenizer`` plus what the data pipeline needs to know about it.

    ``n_text`` ids come from the tokenizer; ``eod_id`` is its end-of-text token, or ``n_text``
    when it has none (then ``vocab_size`` = ``n_text + 1``).
    """

    hf: object  # tokenizers.Tokenizer
    path: Path
    n_text: int
    eod_id: int
    name: str = field(default="")

    @property
    def vocab_size(self) -> int:
        """Ids used by text: the tokenizer's, plus an appended end-of-document id if needed."""
        return max(self.n_text, self.eod_id + 1)

    def encode(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Token ids (int64) and character offsets ([n, 2], int64) of each text, no specials."""
        encs = self.hf.encode_batch(list(texts), add_special_tokens=False)  # type: ignore[attr-defined]
        out = []
        for e in encs:
            ids = np.asarray(e.ids, dtype=np.int64)
            offs = np.asarray(e.offsets, dtype=np.int64).reshape(-1, 2)
            out.append((ids, offs))
        return out

    def encode_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids only (faster than ``encode`` when offsets are not needed)."""
        encs = self.hf.encode_batch_fast(list(texts), add_special_tokens=False)  # type: ignore[attr-defined]
        return [np.asarray(e.ids, dtype=np.int64) for e in encs]

    def token_text(self, token_id: int) -> str:
        """Readable text of one id (decoded bytes; ``<eod>`` for an appended end-of-document)."""
        if token_id >= self.n_text:
            return "<eod>" if token_id == self.eod_id else f"<{token_id}>"
        return self.hf.decode([int(token_id)], skip_special_tokens=False)  # type: ignore[attr-defined]


def _hf() -> object:
    import tokenizers

    return tokenizers


def train_bpe(texts: Iterable[str], vocab_size: int) -> object:
    """Train a byte-level BPE (GPT-2 style pre-tokenisation) with ``<|endoftext|>`` as id 0."""
    if vocab_size < MIN_BPE_VOCAB:
        raise ArchsearchError(
            f"data.vocab_size: a byte-level BPE needs at least {MIN_BPE_VOCAB}, got {vocab_size}")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((_short_runs(t) for t in texts), trainer=trainer)
    return tok


_LONG_RUN = re.compile(rf"\S{{{MAX_RUN_CHARS}}}")


def _short_runs(text: str) -> str:
    """``text`` for learning merges, with a space after every ``MAX_RUN_CHARS`` characters of a
    run without whitespace: the trainer's time grows faster than linearly with a word's length
    (7 s for one 100,000-character word, minutes for a million; a 50 MB blob aborts the
    process). Only the merge statistics see the spaces; text is encoded as it is."""
    return _LONG_RUN.sub(lambda m: m.group(0) + " ", text) if len(text) > MAX_RUN_CHARS else text


def _wrap(hf: object, path: Path, name: str, eos_hint: str | None = None) -> TextTokenizer:
    hf.no_truncation()  # type: ignore[attr-defined]
    hf.no_padding()  # type: ignore[attr-defined]
    n_text = hf.get_vocab_size(with_added_tokens=True)  # type: ignore[attr-defined]
    eod = None
    for cand in ((eos_hint,) if eos_hint else ()) + EOD_CANDIDATES:
        tid = hf.token_to_id(cand)  # type: ignore[attr-defined]
        if tid is not None:
            eod = tid
            break
    # ids may be sparse (added tokens beyond the base vocabulary): size by the largest id
    vocab = hf.get_vocab(with_added_tokens=True)  # type: ignore[attr-defined]
    n_text = max(n_text, max(vocab.values()) + 1 if vocab else 0)
    return TextTokenizer(hf=hf, path=path, n_text=n_text, eod_id=n_text if eod is None else eod,
                         name=name)


def load_tokenizer(spec: str | Path) -> TextTokenizer:
    """A local tokenizer: a ``tokenizer.json`` file, or a folder holding one.

    A folder's ``tokenizer_config.json`` (if any) names the end-of-text token (``eos_token``);
    a folder without ``tokenizer.json`` but with ``tokenizer_config.json`` is loaded through
    transformers, and so is a hub id (``owner/name``) that is not a local path.
    """
    path = Path(spec).expanduser()
    eos_hint = None
    if path.is_dir():
        config = path / "tokenizer_config.json"
        if config.is_file():
            try:
                eos = json.loads(config.read_text(encoding="utf-8")).get("eos_token")
                eos_hint = eos.get("content") if isinstance(eos, dict) else eos
            except (OSError, ValueError, AttributeError):
                eos_hint = None
        path = path / "tokenizer.json"
        if not path.is_file():
            if (path.parent / "tokenizer_config.json").is_file():
                return transformers_tokenizer(str(path.parent), str(spec))
            raise ArchsearchError(f"{spec}: folder has no tokenizer.json (data.tokenizer)")
    elif not path.exists():
        from archsearch.hub import looks_like_hub_id, require_hub

        if looks_like_hub_id(str(spec)):
            return transformers_tokenizer(require_hub(str(spec), "data.tokenizer"), str(spec))
        raise ArchsearchError(
            f"{spec}: no such tokenizer file or folder (data.tokenizer: 'bpe', a tokenizer.json, "
            "a tokenizer folder or a hub id)")
    try:
        hf = _hf().Tokenizer.from_file(str(path))  # type: ignore[attr-defined]
    except Exception as err:  # noqa: BLE001 - tokenizers raises a bare Exception on bad JSON
        raise ArchsearchError(f"{path}: not a readable tokenizer.json ({err})") from None
    return _wrap(hf, path, name=str(spec), eos_hint=eos_hint)


def tokenizer_fingerprint(spec: str) -> str:
    """Identity of a local tokenizer for cache keys (its file's size and modification time)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json" if (path / "tokenizer.json").is_file() else \
            path / "tokenizer_config.json"
    elif not path.exists():
        from archsearch.hub import cached_snapshot, looks_like_hub_id

        if looks_like_hub_id(spec):  # the cached snapshot's folder names its revision
            return cache_key(["hub", spec, cached_snapshot(spec) or ""])
    try:
        st = path.stat()
    except OSError:
        raise ArchsearchError(f"{spec}: no such tokenizer file or folder (data.tokenizer)") from None
    return cache_key([str(path.resolve()), st.st_size, st.st_mtime_ns])


def cached_bpe(cache_dir: Path, corpus_fingerprint: str, vocab_size: int,
               texts: Iterable[str] | None = None,
               texts_factory: object = None) -> TextTokenizer:
    """The BPE for a corpus: loaded from the cache, or trained once and cached atomically.

    ``texts_factory()`` (or ``texts``) supplies the training documents; it is only called when
    the tokenizer is not cached yet.
    """
    key = cache_key(["bpe", BPE_VERSION, corpus_fingerprint, vocab_size])
    path = Path(cache_dir) / "tokenizers" / f"bpe-{key}.json"
    if not path.is_file():
        with file_lock(path.with_suffix(".lock")):
            if not path.is_file():
                source: Iterable[str]
                if texts_factory is not None:
                    source = texts_factory()  # type: ignore[operator]
                elif texts is not None:
                    source = texts
                else:
                    raise ValueError("cached_bpe needs texts or texts_factory")
                hf = train_bpe(_capped(source, BPE_MAX_CHARS), vocab_size)
                ensure_dir(path.parent)
                atomic_write_bytes(path, hf.to_str().encode("utf-8"))  # type: ignore[attr-defined]
    hf = _hf().Tokenizer.from_file(str(path))  # type: ignore[attr-defined]
    return _wrap(hf, path, name=f"bpe-{vocab_size}")


def _capped(texts: Iterable[str], max_chars: int) -> Iterator[str]:
    """``texts`` up to (and including) the one that passes ``max_chars`` characters in total."""
    total = 0
    for text in texts:
        yield text
        total += len(text)
        if total >= max_chars:
            return


def get_tokenizer(spec: str, cache_dir: Path, corpus_fingerprint: str, vocab_size: int,
                  texts_factory: object) -> TextTokenizer:
    """``data.tokenizer``: ``"bpe"`` trains (or loads the cached) BPE; anything else is a path."""
    if spec == "bpe":
        return cached_bpe(cache_dir, corpus_fingerprint, vocab_size, texts_factory=texts_factory)
    return load_tokenizer(spec)


def transformers_tokenizer(source: str, name: str) -> TextTokenizer:
    """A transformers fast tokenizer (a folder or a hub id) as a ``TextTokenizer``.

    Only fast (Rust) tokenizers report character offsets, which token categories need; its
    ``eos_token`` is the end of document.
    """
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ArchsearchError(f"{name}: cannot load its tokenizer ({first})") from None
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise ArchsearchError(f"{name}: not a fast (Rust) tokenizer, so it reports no character "
                              "offsets; save it with a tokenizer.json")
    eos = getattr(tok, "eos_token", None)
    return _wrap(backend, Path(source), name=name, eos_hint=eos if isinstance(eos, str) else None)
