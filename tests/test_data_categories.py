"""Token categories: word classes on hand-written sentences, sub-word inheritance, builtin truth."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from archsearch.data import categories
from archsearch.data.builtin import generate_document
from archsearch.data.categories import (
    CATEGORIES,
    CONTENT,
    FUNCTION,
    OTHER,
    classify_tokens,
    segment,
    spacy_available,
    spacy_pos,
)
from archsearch.data.lexicon import FUNCTION_WORDS
from archsearch.data.tokenizer import train_bpe


def classes(text: str) -> list[tuple[str, str]]:
    w = segment(text)
    return [(t, CATEGORIES[c]) for t, c in zip(w.texts, w.codes, strict=True)]


def test_sentence_classes() -> None:
    got = classes("The old sailors didn't see 3.5 whales (near the ship) [twice]!")
    assert got == [
        ("The", "function"), ("old", "content"), ("sailors", "content"), ("did", "function"),
        ("n't", "function"), ("see", "content"), ("3.5", "number"), ("whales", "content"),
        ("(", "delim_open"), ("near", "function"), ("the", "function"), ("ship", "content"),
        (")", "delim_close"), ("[", "delim_open"), ("twice", "content"),
        ("]", "delim_close"), ("!", "punctuation"),
    ]


def test_clitics_numbers_quotes_symbols() -> None:
    got = dict(classes("She can't say it’s 1,000 “tall” words + twenty € {x}"))
    assert got["ca"] == "function" and got["n't"] == "function"
    assert got["’s"] == "function" and got["it"] == "function"
    assert got["1,000"] == "number" and got["twenty"] == "number"
    assert got["“"] == "delim_open" and got["”"] == "delim_close"
    assert got["{"] == "delim_open" and got["}"] == "delim_close"
    assert got["+"] == "other" and got["€"] == "other"
    assert got["tall"] == "content" and got["say"] == "content"
    # possessive 's is a clitic of its own, the noun stays content
    assert classes("John's hat") == [("John", "content"), ("'s", "function"), ("hat", "content")]


@pytest.mark.parametrize("word", ["the", "whom", "although", "beneath", "might", "ought",
                                  "neither", "themselves", "nor", "upon", "whether", "n't"])
def test_closed_class_lexicon(word: str) -> None:
    assert word in FUNCTION_WORDS
    assert classes(word.capitalize() if word[0].isalpha() else word)[0][1] == "function"


@pytest.mark.parametrize("word", ["house", "run", "quickly", "green", "believe", "Paris"])
def test_open_class_words_are_content(word: str) -> None:
    assert classes(word) == [(word, "content")]


def test_subword_tokens_inherit_with_first_flag() -> None:
    text = "the unbelievably long word"
    # offsets of a hand-made tokenisation: "the", " un", "believ", "ably", " long", " ", "word"
    offsets = [(0, 3), (3, 6), (6, 12), (12, 16), (16, 21), (21, 22), (22, 26)]
    tc = classify_tokens(text, offsets)
    assert [CATEGORIES[c] for c in tc.codes] == [
        "function", "content", "content", "content", "content", "other", "content"]
    assert tc.first.tolist() == [True, True, False, False, True, False, True]
    assert tc.word.tolist() == [0, 1, 1, 1, 2, -1, 3]


def test_bpe_offsets_map_to_words_non_ascii() -> None:
    text = "Zoë's café (naïve) isn't open."
    tok = train_bpe([text] * 5, 300)
    enc = tok.encode(text, add_special_tokens=False)
    tc = classify_tokens(text, enc.offsets)
    words = segment(text)
    # every token's word, read back through offsets, contains the token's first non-space char
    for (s, e), w in zip(enc.offsets, tc.word, strict=True):
        piece = text[s:e].strip()
        if w >= 0:
            assert piece[:1] in words.texts[w]
        else:
            assert piece == ""
    cafe = [i for i, (s, e) in enumerate(enc.offsets) if "caf" in text[s:e]]
    assert cafe and tc.codes[cafe[0]] == CONTENT


def test_builtin_ground_truth_matches_tagger() -> None:
    for i in range(40):
        doc = generate_document(3, i)
        words = segment(doc.text)
        assert words.starts.tolist() == doc.spans[:, 0].tolist()
        assert words.ends.tolist() == doc.spans[:, 1].tolist()
        assert words.codes.tolist() == doc.classes.tolist()


def test_whitespace_token_is_other() -> None:
    tc = classify_tokens("a  b", [(0, 1), (1, 2), (2, 4)])
    assert tc.codes.tolist() == [FUNCTION, OTHER, CONTENT]


def test_spacy_pos_is_none_without_spacy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not spacy_available("no_such_spacy_model_xyz")
    monkeypatch.setattr(categories, "spacy_available", lambda model="en_core_web_sm": False)
    assert spacy_pos("a cat", [(0, 1), (1, 5)]) is None


def test_spacy_pos_gives_each_token_the_tag_of_its_word(monkeypatch: pytest.MonkeyPatch) -> None:
    """With spaCy present (a stand-in pipeline here: spaCy is optional and not installed for the
    tests), sub-word tokens take their word's tag and whitespace-only tokens are SPACE."""
    words = [(0, "The", "DET"), (4, "cats", "NOUN"), (10, "ran", "VERB"), (13, ".", "PUNCT")]
    fake_doc = [SimpleNamespace(idx=i, text=t, pos_=p) for i, t, p in words]
    monkeypatch.setattr(categories, "spacy_available", lambda model="en_core_web_sm": True)
    monkeypatch.setattr(categories, "_spacy_pipeline", lambda model: lambda text: fake_doc)
    text = "The cats  ran."
    offsets = [(0, 3), (3, 7), (7, 8), (8, 9), (9, 13), (13, 14)]  # " cat" "s" " " " ran" "."
    assert spacy_pos(text, offsets) == ["DET", "NOUN", "NOUN", "SPACE", "VERB", "PUNCT"]


def test_empty_inputs() -> None:
    tc = classify_tokens("", np.zeros((0, 2), dtype=np.int64))
    assert len(tc.codes) == 0
    assert len(segment("   ").starts) == 0
