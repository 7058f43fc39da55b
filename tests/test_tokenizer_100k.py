"""Category tagging through the offsets of a large byte-level BPE, like Olmo's dolma2 (about
100k entries, GPT-style byte-level pre-tokenisation), saved as a transformers tokenizer folder.

The tokenizer is built here (no download): every builtin word whole, every 2- and 3-letter
string with and without a leading space, and 4-letter ones until 100,100 entries, each by
left-to-right merges, so that text splits into whole words, sub-words and single bytes alike.
"""

from __future__ import annotations

import itertools
import string

import numpy as np
import pytest

from archsearch.data.builtin import generate_corpus
from archsearch.data.categories import CATEGORIES, classify_tokens, segment
from archsearch.data.tokenizer import load_tokenizer, transformers_tokenizer

ENTRIES = 100_100
SPACE = "Ġ"  # the byte-level alphabet's spelling of " "


def _byte_level_bpe(words: list[str]) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(alphabet)}
    merges: list[tuple[str, str]] = []

    def add(piece: str) -> None:
        for k in range(1, len(piece)):
            left, whole = piece[:k], piece[:k + 1]
            if whole not in vocab:
                merges.append((left, piece[k]))
                vocab[whole] = len(vocab)

    letters = string.ascii_lowercase
    for w in words:
        add(SPACE + w)
        add(w)
    for n in (2, 3, 4):
        for combo in itertools.product(letters, repeat=n):
            if len(vocab) >= ENTRIES:
                break
            add(SPACE + "".join(combo))
            add("".join(combo))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return tok


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory):
    from transformers import PreTrainedTokenizerFast

    docs = generate_corpus(40, 0)
    words = sorted({w.lower() for d in docs for w in segment(d.text).texts if w.isalpha()})
    out = tmp_path_factory.mktemp("bpe100k")
    fast = PreTrainedTokenizerFast(tokenizer_object=_byte_level_bpe(words),
                                   eos_token="<|endoftext|>")
    fast.save_pretrained(str(out))
    return out


@pytest.mark.parametrize("loader", ["tokenizer.json", "transformers"])
def test_classes_through_offsets_of_a_100k_byte_level_bpe(folder, loader) -> None:
    tok = load_tokenizer(folder) if loader == "tokenizer.json" else \
        transformers_tokenizer(str(folder), "bpe100k")
    assert tok.n_text >= 100_000
    assert tok.token_text(tok.eod_id) == "<|endoftext|>"
    for doc in generate_corpus(40, 0)[:12]:
        (ids, offs), = tok.encode([doc.text])
        assert "".join(doc.text[s:e] for s, e in offs) == doc.text  # offsets tile the text
        got = classify_tokens(doc.text, offs)
        # ground truth: the generator's class of the word holding the token's first non-space
        for (s, e), code, first in zip(offs, got.codes, got.first, strict=True):
            piece = doc.text[s:e]
            at = s + len(piece) - len(piece.lstrip())
            if at >= e:
                assert CATEGORIES[code] == "other"
                continue
            word = np.searchsorted(doc.spans[:, 0], at, side="right") - 1
            assert doc.spans[word, 0] <= at < doc.spans[word, 1]
            assert code == doc.classes[word], (piece, doc.text[doc.spans[word, 0]:
                                                            doc.spans[word, 1]])
            assert first == (at == doc.spans[word, 0])
        assert len(ids) < 0.5 * len(doc.text)  # words mostly whole, not byte by byte


def test_non_ascii_offsets_are_characters(folder) -> None:
    tok = load_tokenizer(folder)
    text = "The naïve café’s “menu” costs 1,000 € (twenty ½) — don't!"
    (ids, offs), = tok.encode([text])
    got = classify_tokens(text, offs)
    words = segment(text)
    # the byte pieces of one character share its offsets: together they cover each character
    assert set().union(*(range(s, e) for s, e in offs)) == set(range(len(text)))
    assert len(ids) > len({tuple(o) for o in offs.tolist()})  # some characters split in bytes
    by_word = {words.texts[w]: CATEGORIES[c] for w, c in zip(got.word, got.codes, strict=True)
               if w >= 0}
    assert by_word["naïve"] == by_word["café"] == by_word["menu"] == "content"
    assert by_word["’s"] == by_word["n't"] == by_word["The"] == "function"
    assert by_word["1,000"] == by_word["twenty"] == by_word["½"] == "number"
    assert by_word["“"] == by_word["("] == "delim_open"
    assert by_word["”"] == by_word[")"] == "delim_close"
