"""The built-in corpus: deterministic, seed-dependent, labelled, and quick to make."""

from __future__ import annotations

import time

import numpy as np

from archsearch.data.builtin import generate_corpus, generate_document, make_lexicon
from archsearch.data.categories import CATEGORIES
from archsearch.data.copy import copy_runs
from archsearch.data.lexicon import FUNCTION_WORDS
from archsearch.data.tokenizer import train_bpe


def test_same_seed_same_text_and_labels() -> None:
    a = generate_corpus(30, seed=7)
    b = generate_corpus(30, seed=7)
    for x, y in zip(a, b, strict=True):
        assert x.text == y.text
        assert np.array_equal(x.spans, y.spans) and np.array_equal(x.classes, y.classes)
        assert x.repeats == y.repeats


def test_different_seed_different_text() -> None:
    a = generate_corpus(10, seed=1)
    b = generate_corpus(10, seed=2)
    assert all(x.text != y.text for x, y in zip(a, b, strict=True))
    assert make_lexicon(1).nouns != make_lexicon(2).nouns


def test_document_does_not_depend_on_corpus_size() -> None:
    assert generate_corpus(5, seed=0)[3].text == generate_document(0, 3).text


def test_lexicon_avoids_function_words() -> None:
    lex = make_lexicon(0)
    for w in lex.nouns + lex.plurals + lex.verbs + lex.verbs_3sg + lex.adjectives:
        assert w.lower() not in FUNCTION_WORDS


def test_all_categories_and_repeat_lengths_present() -> None:
    docs = generate_corpus(60, seed=0)
    codes = np.concatenate([d.classes for d in docs])
    present = {CATEGORIES[c] for c in np.unique(codes)}
    assert present >= {"content", "function", "number", "punctuation", "delim_open",
                       "delim_close"}
    lengths = []
    for d in docs:
        for start, end, src in d.repeats:
            assert d.text[start:end] == d.text[src: src + end - start]  # verbatim
            assert src < start
            lengths.append(len(d.text[start:end].split()))
    assert min(lengths) <= 6 and max(lengths) >= 16
    # pronouns refer back: he/she/they appear, and brackets are balanced per document
    text = " ".join(d.text for d in docs)
    assert " he " in text.lower() or " she " in text.lower()
    for d in docs:
        depth = 0
        for ch in d.text:
            depth += ch in "([{"
            depth -= ch in ")]}"
            assert depth >= 0
        assert depth == 0


def test_repeats_give_copy_tokens_in_every_bucket() -> None:
    docs = generate_corpus(80, seed=0)
    tok = train_bpe([d.text for d in docs], 1024)
    runs = np.concatenate([copy_runs(tok.encode(d.text).ids, 4) for d in docs])
    assert ((runs >= 4) & (runs < 8)).any()
    assert ((runs >= 8) & (runs < 16)).any()
    assert (runs >= 16).any()


def test_default_size_is_quickstart_sized_and_fast() -> None:
    t0 = time.perf_counter()
    docs = generate_corpus(800, seed=0)
    seconds = time.perf_counter() - t0
    words = sum(len(d.spans) for d in docs)
    assert 60_000 < words < 200_000
    assert seconds < 5.0
