"""Token categories on any text: which word a token belongs to, and that word's class.

Why per category: aggregate loss hides where an architecture gains (docs/BACKGROUND.md, "Olmo
Hybrid"); Ai2's hybrid gains most on open-class content words, less on function words, more on
opening than closing delimiters. A token is labelled through its text span (the tokenizer's
character offsets): the text is segmented into words first, each word gets a class, and every token
takes the class of the word its first non-space character falls in. Sub-word tokens therefore
inherit their word's class, with ``first`` set only on the word's first token; a token made of
whitespace only is ``other``.

Segmentation follows the Penn-Treebank habit for English clitics (``do|n't``, ``ca|n't``,
``it|'s``) so that a clitic is a function word of its own, as it is a token of its own in
GPT-style byte-level BPE.

The ``copy`` label is not a class but a flag computed on token ids (``copy.py``): a token can be
content and copy at once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from archsearch.data.lexicon import (
    CLOSE_DELIMITERS,
    FUNCTION_WORDS,
    NUMBER_WORDS,
    OPEN_DELIMITERS,
)
from archsearch.metrics import FLAG_CATEGORIES as _FLAGS
from archsearch.metrics import WORD_CLASSES

CATEGORIES: tuple[str, ...] = WORD_CLASSES
"""Word classes, in code order: ``CATEGORIES[code]`` is the name of code ``code``."""

CATEGORY_CODE: dict[str, int] = {name: i for i, name in enumerate(CATEGORIES)}
FLAG_CATEGORIES: tuple[str, ...] = _FLAGS  # the names live in archsearch.metrics
"""Categories that are flags on top of the word class (a token may be in one and a class)."""
ALL_CATEGORIES: tuple[str, ...] = CATEGORIES + FLAG_CATEGORIES

CONTENT, FUNCTION, NUMBER, PUNCTUATION, DELIM_OPEN, DELIM_CLOSE, OTHER = range(len(CATEGORIES))

_SEGMENT = re.compile(
    r"""
      (?P<neg_host>[^\W\d_]+(?=[nN]['’][tT]\b))   # do|n't, ca|n't, would|n't
    | (?P<neg>[nN]['’][tT]\b)
    | (?P<clitic>['’](?:[sS]|[rR][eE]|[vV][eE]|[lL][lL]|[dD]|[mM])\b)
    | (?P<word>[^\W\d_]+)
    | (?P<number>\d+(?:[.,]\d+)*)
    | (?P<char>\S)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Words:
    """A text's segmentation: word spans ``[start, end)`` in characters and their class codes."""

    starts: np.ndarray  # int64
    ends: np.ndarray  # int64
    codes: np.ndarray  # int8, index into CATEGORIES
    texts: tuple[str, ...]


def word_class(word: str) -> int:
    """The class code of one segment produced by ``segment`` (a word, number or character)."""
    low = word.lower()
    if word[0].isdigit():
        return NUMBER
    if word[0].isalpha() or word[0] in "'’" and len(word) > 1:
        if low in FUNCTION_WORDS:
            return FUNCTION
        if low in NUMBER_WORDS:
            return NUMBER
        return CONTENT
    if word in OPEN_DELIMITERS:
        return DELIM_OPEN
    if word in CLOSE_DELIMITERS:
        return DELIM_CLOSE
    if unicodedata.category(word[0]).startswith("P"):
        return PUNCTUATION
    if unicodedata.category(word[0]).startswith("N"):  # e.g. '½', '²' outside \d
        return NUMBER
    return OTHER


def segment(text: str) -> Words:
    """Split ``text`` into words, numbers and single non-space characters, with their classes.

    Every non-whitespace character of ``text`` falls in exactly one segment.
    """
    starts: list[int] = []
    ends: list[int] = []
    codes: list[int] = []
    texts: list[str] = []
    for m in _SEGMENT.finditer(text):
        piece = m.group()
        kind = m.lastgroup
        if kind in ("neg", "clitic"):
            code = FUNCTION
        else:
            code = word_class(piece)
            if kind == "neg_host" and code == CONTENT:
                code = FUNCTION  # any host of n't is an auxiliary or modal (do, ca, wo, need)
        starts.append(m.start())
        ends.append(m.end())
        codes.append(code)
        texts.append(piece)
    return Words(
        np.asarray(starts, dtype=np.int64),
        np.asarray(ends, dtype=np.int64),
        np.asarray(codes, dtype=np.int8),
        tuple(texts),
    )


@dataclass(frozen=True)
class TokenClasses:
    """Per-token labels of one text: class code, word index (-1 = none) and first-token flag."""

    codes: np.ndarray  # int8
    word: np.ndarray  # int64
    first: np.ndarray  # bool


def _next_non_space(text: str) -> np.ndarray:
    """``out[i]`` = index of the first non-whitespace character at or after ``i`` (len if none)."""
    n = len(text)
    space = np.frombuffer(
        bytes(1 if c.isspace() else 0 for c in text), dtype=np.uint8
    ) if n else np.zeros(0, np.uint8)
    idx = np.where(space == 0, np.arange(n), n)
    out = np.empty(n + 1, dtype=np.int64)
    out[n] = n
    if n:
        out[:n] = np.minimum.accumulate(idx[::-1])[::-1]
    return out


def classify_tokens(text: str, offsets: Sequence[tuple[int, int]] | np.ndarray,
                    words: Words | None = None) -> TokenClasses:
    """Labels for the tokens of ``text`` given their character ``offsets`` ([start, end)).

    Offsets come from the tokenizer (HF ``tokenizers`` reports character offsets). A token whose
    span holds only whitespace (or is empty) is ``other`` with no word; otherwise it belongs to
    the word holding its first non-space character. ``first`` marks the first token of a word.
    """
    words = words if words is not None else segment(text)
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    n_tok = off.shape[0]
    codes = np.full(n_tok, OTHER, dtype=np.int8)
    word = np.full(n_tok, -1, dtype=np.int64)
    first = np.zeros(n_tok, dtype=bool)
    if n_tok == 0:
        return TokenClasses(codes, word, first)
    nxt = _next_non_space(text)
    start = np.clip(off[:, 0], 0, len(text))
    end = np.clip(off[:, 1], 0, len(text))
    anchor = nxt[start]
    has_char = anchor < end
    if len(words.starts):
        idx = np.searchsorted(words.starts, anchor, side="right") - 1
        ok = has_char & (idx >= 0)
        idx_safe = np.clip(idx, 0, len(words.starts) - 1)
        ok &= anchor < words.ends[idx_safe]
        word[ok] = idx_safe[ok]
        codes[ok] = words.codes[idx_safe[ok]]
    prev = np.concatenate([[-1], word[:-1]])
    # a running max keeps "first" honest when a token repeats an earlier span (byte pieces of
    # one character share that character's offsets)
    seen_max = np.maximum.accumulate(np.concatenate([[-1], word]))[:-1]
    first = (word >= 0) & (word != prev) & (word > seen_max)
    return TokenClasses(codes, word, first)


POS_MODEL = "en_core_web_sm"
"""The spaCy English pipeline POS tagging loads unless told otherwise."""

POS_ORDER: tuple[str, ...] = ("NOUN", "VERB", "ADJ", "ADV", "PROPN", "PRON", "DET", "ADP", "AUX",
                              "CCONJ", "SCONJ", "PART", "NUM", "PUNCT", "SYM", "INTJ", "X",
                              "SPACE")
"""Universal POS tags in reporting order: Ai2's nouns, verbs and adjectives first, then the other
open classes, the closed ones, and the rest. ``X`` also holds tokens whose word got no tag."""

SPACY_MODEL_HINT = ("python -m spacy download en_core_web_sm (or pip install the en_core_web_sm "
                    "wheel from spaCy's model releases)")


def spacy_available(model: str = POS_MODEL) -> bool:
    """Whether optional POS tagging can run: spaCy and the English ``model`` (an installed
    package name or a pipeline folder saved by spaCy) are installed."""
    try:
        import importlib.util

        if importlib.util.find_spec("spacy") is None:
            return False
        if _is_pipeline_folder(model):
            return True
        return importlib.util.find_spec(model) is not None
    except (ImportError, ValueError):
        return False


def _is_pipeline_folder(model: str) -> bool:
    from pathlib import Path

    return (Path(model).expanduser() / "config.cfg").is_file()


def spacy_missing(model: str = POS_MODEL) -> str | None:
    """Why POS tagging with ``model`` cannot run here, as how to fix it; None when it can."""
    import importlib.util

    folder = "/" in model or model.startswith((".", "~"))
    get_model = SPACY_MODEL_HINT.replace(POS_MODEL, model)
    if importlib.util.find_spec("spacy") is None:
        return "needs spaCy: pip install 'archsearch[pos]'" + ("" if folder else
                                                                f", then {get_model}")
    if spacy_available(model):
        return None
    if folder:
        return f"{model}: not a spaCy pipeline folder (no config.cfg in it)"
    return f"spaCy model {model} is not installed: {get_model}"


def pos_groups(tags: Sequence[str]) -> list[str]:
    """The tags present in ``tags``, in ``POS_ORDER`` (any others after, sorted)."""
    present = set(tags)
    return [t for t in POS_ORDER if t in present] + sorted(present - set(POS_ORDER))


@lru_cache(maxsize=2)
def _spacy_pipeline(model: str) -> object:
    """The spaCy pipeline, loaded once per process (loading takes seconds)."""
    import spacy  # type: ignore[import-not-found]

    return spacy.load(model, disable=["parser", "ner", "lemmatizer"])


def spacy_pos(text: str, offsets: Sequence[tuple[int, int]] | np.ndarray,
              model: str = POS_MODEL) -> list[str] | None:
    """Universal POS tag per token (of the word holding its first non-space character), or
    None.

    Optional, finer than the lexicon classes; returns None when spaCy or its English model is
    not installed, so callers can skip the column cleanly. A token of whitespace only is
    ``SPACE``; one whose word the pipeline left untagged is ``X``.
    """
    if not spacy_available(model):
        return None
    doc = _spacy_pipeline(model)(text)
    char_pos = [""] * (len(text) + 1)
    for tok in doc:
        for i in range(tok.idx, tok.idx + len(tok.text)):
            char_pos[i] = tok.pos_ or "X"
    nxt = _next_non_space(text)
    out = []
    for s, e in np.asarray(offsets, dtype=np.int64).reshape(-1, 2):
        a = int(nxt[min(max(s, 0), len(text))])
        out.append((char_pos[a] or "X") if a < e else "SPACE")
    return out
