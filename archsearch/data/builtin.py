"""The built-in corpus: an English-like synthetic language with ground-truth word labels.

Why synthetic: a quickstart must run with no download, and a proxy corpus should exercise the
token categories the scores are about. Each document is a short story in a made-up language
whose grammar is English: content words (nouns, verbs, adjectives, adverbs) are pronounceable
made-up words drawn from a Zipfian lexicon; function words, punctuation and numbers are real
English. Documents contain

- sentences with number agreement (determiner-noun, subject-verb, across an attractor PP:
  "the vorp of the glims blanks ..."),
- named entities introduced once, then referred to by gendered pronouns,
- entities whose state changes (an item is put in a container, taken, given to someone) and
  true statements of the current state,
- verbatim repeats of earlier spans of the same document, of varied length (short 3-6 words,
  medium 6-12, long 12-28), so copy tokens fall in every run-length bucket,
- nested mixed brackets ( [ { } ] ), numbers in digits (counts, years, decimals) and words.

Everything is generated from ``seed`` (the lexicon and each document from their own derived
seed), so the same seed gives the same text and labels on every machine, and document ``i``
does not depend on how many documents are generated. The generator records each word's class
(ground truth for ``categories.py``) and each repeat's character span.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from archsearch.data.categories import (
    CONTENT,
    DELIM_CLOSE,
    DELIM_OPEN,
    FUNCTION,
    NUMBER,
    PUNCTUATION,
)
from archsearch.data.lexicon import FUNCTION_WORDS, NUMBER_WORDS
from archsearch.data.seeding import py_rng

BUILTIN_VERSION = 2
"""Bump when the generator's output changes: it is part of every cache key."""

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
           "b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t",
           "bl", "br", "dr", "fl", "gr", "kr", "pl", "st", "tr", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "u", "ai", "ee", "oo", "ou")
_CODAS = ["", "", "", "", "n", "m", "r", "l", "k", "t", "p", "nd", "nt", "rk", "sk", "mp"]
_REPEAT_INTROS = (
    (("again", CONTENT),),
    (("as", FUNCTION), ("we", FUNCTION), ("said", CONTENT)),
    (("once", FUNCTION), ("more", FUNCTION)),
    (("in", FUNCTION), ("short", CONTENT)),
)
_NUMBER_WORDS_USED = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                      "twelve", "twenty")


@dataclass(frozen=True)
class Lexicon:
    """The made-up open-class vocabulary of one seed, in Zipf rank order."""

    nouns: tuple[str, ...]
    plurals: tuple[str, ...]
    verbs: tuple[str, ...]
    verbs_3sg: tuple[str, ...]
    verbs_past: tuple[str, ...]
    adjectives: tuple[str, ...]
    adverbs: tuple[str, ...]
    names: tuple[str, ...]
    genders: tuple[str, ...]  # "he" | "she" | "they", per name
    containers: tuple[str, ...]  # nouns used as containers
    zipf: tuple[float, ...]  # cumulative weights for the longest list


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(syllables))


def _plural(noun: str) -> str:
    if noun.endswith(("s", "sh", "ch", "z", "x")):
        return noun + "es"
    return noun + "s"


def _third(verb: str) -> str:
    return _plural(verb)


def _past(verb: str) -> str:
    return verb + ("d" if verb.endswith("e") else "ed")


@lru_cache(maxsize=8)
def make_lexicon(seed: int, nouns: int = 600, verbs: int = 300, adjectives: int = 200,
                 names: int = 80) -> Lexicon:
    """The lexicon of a seed: unique made-up words, none an English function or number word."""
    rng = py_rng("builtin-lexicon", BUILTIN_VERSION, seed)
    taken: set[str] = set(FUNCTION_WORDS) | set(NUMBER_WORDS)

    def fresh(count: int, short: int) -> list[str]:
        """``count`` words; frequent ranks (the first ``short``) are shorter, as in English."""
        out: list[str] = []
        while len(out) < count:
            rank = len(out)
            syllables = 1 if rank < short else rng.randint(1, 2) if rank < 4 * short else 2
            w = _word(rng, syllables)
            forms = {w, _plural(w), _past(w), w + "ly"}
            if len(w) < 3 or forms & taken:
                continue
            taken.update(forms)
            out.append(w)
        return out

    n = fresh(nouns, 40)
    v = fresh(verbs, 30)
    a = fresh(adjectives, 25)
    nm = [w.capitalize() for w in fresh(names, 0)]
    genders = tuple(rng.choice(("he", "she", "she", "he", "they")) for _ in nm)
    size = max(nouns, verbs, adjectives, names)
    cum = list(itertools.accumulate(1.0 / (r + 2.7) ** 1.05 for r in range(size)))
    return Lexicon(
        nouns=tuple(n), plurals=tuple(_plural(w) for w in n), verbs=tuple(v),
        verbs_3sg=tuple(_third(w) for w in v), verbs_past=tuple(_past(w) for w in v),
        adjectives=tuple(a), adverbs=tuple(w + "ly" for w in a[: adjectives // 2]),
        names=tuple(nm), genders=genders, containers=tuple(n[:12]), zipf=tuple(cum),
    )


# A segment is (text, class code, space before it).
Segment = tuple[str, int, bool]


@dataclass(frozen=True)
class BuiltinDocument:
    """One generated document: its text and the ground truth the generator knows.

    ``spans[i] = (start, end)`` is the character span of word ``i`` and ``classes[i]`` its class
    code (``categories.CATEGORIES``); ``repeats`` holds ``(start, end, source_start)`` for each
    verbatim repeat (a copy of ``text[source_start : source_start + end - start]``).
    """

    text: str
    spans: np.ndarray
    classes: np.ndarray
    repeats: tuple[tuple[int, int, int], ...]


class _Story:
    """The generator of one document: a small world of entities, items and containers."""

    def __init__(self, lex: Lexicon, rng: random.Random) -> None:
        self.lex, self.rng = lex, rng
        self.segs: list[Segment] = []
        self.repeats: list[tuple[int, int, int]] = []  # in segment indices: (start, end, src)
        k = rng.randint(2, 4)
        picks = rng.sample(range(len(lex.names)), k)
        self.cast = [(lex.names[i], lex.genders[i]) for i in picks]
        self.known: set[str] = set()
        self.last: tuple[str, str] | None = None
        self.items = [self.noun_index() for _ in range(rng.randint(2, 3))]
        self.items = list(dict.fromkeys(self.items))
        n_cont = rng.randint(2, 3)
        self.containers = [(rng.choice(lex.adjectives[:40]), c)
                           for c in rng.sample(lex.containers, n_cont)]
        self.place: dict[int, tuple[str, object]] = {}  # item -> ("in", container) | ("held", name)

    # ---------------------------------------------------------------- words
    def zipf_index(self, size: int) -> int:
        cum = self.lex.zipf
        x = self.rng.random() * cum[size - 1]
        return bisect.bisect_right(cum, x, 0, size - 1)

    def noun_index(self) -> int:
        return self.zipf_index(len(self.lex.nouns))

    def add(self, text: str, code: int, space: bool = True) -> None:
        self.segs.append((text, code, space))

    def words(self, text: str, code: int = FUNCTION) -> None:
        for w in text.split():
            self.add(w, code)

    def punct(self, mark: str) -> None:
        self.add(mark, PUNCTUATION, False)

    def det_noun(self, plural: bool, adjective: float = 0.35, det: str | None = None) -> None:
        rng, lex = self.rng, self.lex
        i = self.noun_index()
        if det is None:
            det = rng.choice(("the", "these", "those", "some", "many", "the") if plural else
                             ("the", "this", "that", "a", "every", "the"))
        adj = lex.adjectives[self.zipf_index(len(lex.adjectives))] if rng.random() < adjective \
            else None
        first = adj or lex.nouns[i]
        if det == "a" and first[0] in "aeiou":
            det = "an"
        self.add(det, FUNCTION)
        if adj:
            self.add(adj, CONTENT)
        self.add(lex.plurals[i] if plural else lex.nouns[i], CONTENT)

    def verb(self, plural: bool, past: bool) -> None:
        lex = self.lex
        i = self.zipf_index(len(lex.verbs))
        form = lex.verbs_past[i] if past else (lex.verbs[i] if plural else lex.verbs_3sg[i])
        self.add(form, CONTENT)

    def capitalize_sentence(self, start: int) -> None:
        if start < len(self.segs):
            text, code, space = self.segs[start]
            self.segs[start] = (text[:1].upper() + text[1:], code, space)

    def mention(self, who: tuple[str, str]) -> None:
        self.add(who[0], CONTENT)
        self.last = who

    # ---------------------------------------------------------------- sentences
    def s_intro(self) -> bool:
        unknown = [c for c in self.cast if c[0] not in self.known]
        if not unknown:
            return False
        who = unknown[0]
        self.known.add(who[0])
        if self.rng.random() < 0.5:
            self.mention(who)
            self.words("is")
            self.det_noun(False, adjective=0.8, det="a")
        else:
            self.words("there was")
            self.det_noun(False, adjective=0.5, det="a")
            self.add("called", CONTENT)
            self.mention(who)
        self.punct(".")
        return True

    def s_agreement(self) -> bool:
        rng = self.rng
        plural = rng.random() < 0.4
        past = rng.random() < 0.3
        self.det_noun(plural)
        if rng.random() < 0.35:  # attractor of the other number between subject and verb
            self.words(rng.choice(("of", "near", "with", "behind")))
            self.det_noun(not plural, adjective=0.2, det="the")
        if rng.random() < 0.25:
            self.add(self.lex.adverbs[self.zipf_index(len(self.lex.adverbs))], CONTENT)
        self.verb(plural, past)
        self.det_noun(rng.random() < 0.3)
        if rng.random() < 0.3:
            self.words(rng.choice(("in", "on", "under", "from", "to", "at")))
            self.det_noun(rng.random() < 0.3, det="the")
        self.punct(".")
        return True

    def s_pronoun(self) -> bool:
        if self.last is None:
            return False
        rng = self.rng
        gender = self.last[1]
        plural = gender == "they"
        past = rng.random() < 0.3
        if rng.random() < 0.5:
            self.words(gender)
            if rng.random() < 0.3:
                self.words(rng.choice(("can", "will", "must", "should", "might")))
                self.verb(True, False)
            else:
                self.verb(plural, past)
            self.det_noun(rng.random() < 0.3)
        else:
            self.words({"he": "his", "she": "her", "they": "their"}[gender])
            self.add(self.lex.nouns[self.noun_index()], CONTENT)
            self.verb(False, past)
            self.words({"he": "him", "she": "her", "they": "them"}[gender])
        self.punct(".")
        return True

    def container_np(self, c: tuple[str, str]) -> None:
        self.words("the")
        self.add(c[0], CONTENT)
        self.add(c[1], CONTENT)

    def s_state_change(self) -> bool:
        rng, lex = self.rng, self.lex
        item = rng.choice(self.items)
        where = self.place.get(item)
        who = rng.choice(self.cast)
        self.known.add(who[0])
        if where is None or (where[0] == "held" and rng.random() < 0.5):
            if where is not None and where[0] == "held":
                who = next(c for c in self.cast if c[0] == where[1])
            box = rng.choice(self.containers)
            self.mention(who)
            self.add("puts", CONTENT)
            self.words("the")
            self.add(lex.nouns[item], CONTENT)
            self.words(rng.choice(("in", "into")))
            self.container_np(box)
            self.place[item] = ("in", box)
        elif where[0] == "in":
            self.mention(who)
            self.add("takes", CONTENT)
            self.words("the")
            self.add(lex.nouns[item], CONTENT)
            self.words("out of" if rng.random() < 0.5 else "from")
            self.container_np(where[1])  # type: ignore[arg-type]
            self.place[item] = ("held", who[0])
        else:
            giver = next(c for c in self.cast if c[0] == where[1])
            others = [c for c in self.cast if c[0] != giver[0]]
            taker = rng.choice(others)
            self.known.add(taker[0])
            self.mention(giver)
            self.add("gives", CONTENT)
            self.words("the")
            self.add(lex.nouns[item], CONTENT)
            self.words("to")
            self.mention(taker)
            self.place[item] = ("held", taker[0])
        self.punct(".")
        return True

    def s_state_fact(self) -> bool:
        placed = [i for i in self.items if i in self.place]
        if not placed:
            return False
        item = self.rng.choice(placed)
        where = self.place[item]
        if where[0] == "in":
            self.words("the")
            self.add(self.lex.nouns[item], CONTENT)
            self.words("is in")
            self.container_np(where[1])  # type: ignore[arg-type]
        else:
            who = next(c for c in self.cast if c[0] == where[1])
            if self.rng.random() < 0.5:
                self.mention(who)
                self.add("holds", CONTENT)
                self.words("the")
                self.add(self.lex.nouns[item], CONTENT)
            else:
                self.words("the")
                self.add(self.lex.nouns[item], CONTENT)
                self.words("is with")
                self.mention(who)
        self.punct(".")
        return True

    def s_numbers(self) -> bool:
        rng, lex = self.rng, self.lex
        kind = rng.random()
        if kind < 0.4:
            who = rng.choice(self.cast)
            self.known.add(who[0])
            self.mention(who)
            self.verb(who[1] == "they", rng.random() < 0.5)
            self.add(str(rng.randint(2, 999)), NUMBER)
            self.add(lex.plurals[self.noun_index()], CONTENT)
        elif kind < 0.7:
            self.words("in")
            self.add(str(rng.randint(1200, 2099)), NUMBER)
            self.punct(",")
            self.words("the")
            self.add(rng.choice(_NUMBER_WORDS_USED), NUMBER)
            self.add(lex.plurals[self.noun_index()], CONTENT)
            self.verb(True, True)
            self.det_noun(False)
        else:
            self.det_noun(False, det="the")
            self.add(lex.verbs_3sg[self.zipf_index(len(lex.verbs))], CONTENT)
            value = f"{rng.randint(0, 99)}.{rng.randint(0, 99):02d}"
            self.add(value, NUMBER)
            self.add(lex.plurals[self.noun_index()], CONTENT)
        self.punct(".")
        return True

    def bracket(self, depth: int) -> None:
        pairs = (("(", ")"), ("[", "]"), ("{", "}"))
        open_, close = self.rng.choice(pairs)
        self.add(open_, DELIM_OPEN)
        self.det_noun(self.rng.random() < 0.3, adjective=0.3)
        if depth > 1 and self.rng.random() < 0.8:
            self.words(self.rng.choice(("of", "and", "with")))
            self.bracket(depth - 1)
        else:
            self.verb(False, True)
        self.add(close, DELIM_CLOSE, False)

    def s_brackets(self) -> bool:
        self.det_noun(False, det="the")
        self.bracket(self.rng.choice((1, 1, 2, 2, 3)))
        self.verb(False, self.rng.random() < 0.5)
        self.det_noun(self.rng.random() < 0.4)
        self.punct(".")
        return True

    def s_repeat(self) -> bool:
        rng = self.rng
        lo, hi = rng.choices(((3, 6), (6, 12), (12, 28)), weights=(3, 3, 2))[0]
        length = rng.randint(lo, hi)
        if len(self.segs) < length + 4:
            return False
        for _ in range(8):  # a window that starts at a word and keeps brackets balanced
            src = rng.randrange(0, len(self.segs) - length)
            while src > 0 and self.segs[src][1] not in (CONTENT, FUNCTION, NUMBER):
                src -= 1
            window = self.segs[src: src + length]
            if _balanced(window):
                break
        else:
            return False
        for word, code in rng.choice(_REPEAT_INTROS):
            self.add(word, code)
        self.punct(",")
        start = len(self.segs)
        self.segs.extend(window)  # verbatim: same texts, classes and spacing
        t, c, _ = self.segs[start]
        self.segs[start] = (t, c, True)  # after ", " whatever it followed at the source
        self.repeats.append((start, len(self.segs), src))
        if self.segs[-1][0] != ".":
            self.punct(".")
        return True

    def sentence(self) -> None:
        rng = self.rng
        kinds = (self.s_intro, self.s_agreement, self.s_pronoun, self.s_state_change,
                 self.s_state_fact, self.s_numbers, self.s_brackets, self.s_repeat)
        weights = (3, 6, 3, 4, 2, 1.5, 1.5, 2.5)
        start = len(self.segs)
        while True:
            kind = rng.choices(kinds, weights=weights)[0]
            if kind():
                break
            del self.segs[start:]
        self.capitalize_sentence(start)


def _balanced(segs: list[Segment]) -> bool:
    depth = 0
    for _text, code, _space in segs:
        depth += (code == DELIM_OPEN) - (code == DELIM_CLOSE)
        if depth < 0:
            return False
    return depth == 0


def _render(segs: list[Segment]) -> tuple[str, np.ndarray]:
    parts: list[str] = []
    spans = np.zeros((len(segs), 2), dtype=np.int64)
    pos = 0
    prev_open = True
    for i, (text, _code, space) in enumerate(segs):
        if space and not prev_open:
            parts.append(" ")
            pos += 1
        spans[i] = (pos, pos + len(text))
        parts.append(text)
        pos += len(text)
        prev_open = text in "([{"
    return "".join(parts), spans


def generate_document(seed: int, index: int, sentences: tuple[int, int] = (10, 22)) -> BuiltinDocument:
    """Document ``index`` of the built-in corpus of ``seed`` (independent of the others)."""
    lex = make_lexicon(seed)
    rng = py_rng("builtin-doc", BUILTIN_VERSION, seed, index)
    story = _Story(lex, rng)
    for _ in range(rng.randint(*sentences)):
        story.sentence()
    text, spans = _render(story.segs)
    classes = np.asarray([c for _t, c, _s in story.segs], dtype=np.int8)
    repeats = tuple((int(spans[s][0]), int(spans[e - 1][1]), int(spans[src][0]))
                    for s, e, src in story.repeats)
    return BuiltinDocument(text + "\n", spans, classes, repeats)


def generate_corpus(documents: int, seed: int) -> list[BuiltinDocument]:
    """The first ``documents`` documents of the built-in corpus of ``seed``."""
    return [generate_document(seed, i) for i in range(documents)]


def builtin_fingerprint(documents: int, seed: int) -> str:
    """The cache identity of a built-in corpus."""
    return f"builtin-v{BUILTIN_VERSION}-n{documents}-s{seed}"
