"""The English closed-class lexicon: the words that count as *function* tokens.

Ai2's token-level analysis separates open-class content words (nouns, verbs, adjectives,
adverbs) from closed-class function words; a lexicon is the one labelling that works on any
text without a tagger. The lists below are the closed classes of English grammar: determiners
and quantifiers, pronouns, prepositions, conjunctions, auxiliaries and modals, particles and
the wh-words, plus the clitic halves a Penn-Treebank style split produces (``do`` + ``n't``,
``ca`` + ``n't``, ``'s``, ``'ll``). Spelled-out numerals form their own class (``number``), as
they do in Universal Dependencies (``NUM``). Everything is lower case; look words up with
``word.lower()``.

Words with an open-class reading as well (``like``, ``can``, ``will``, ``round``) are listed by
their closed-class reading: a lexicon cannot disambiguate, and the optional spaCy tagger in
``categories.py`` exists for when that matters.
"""

from __future__ import annotations


def _words(text: str) -> list[str]:
    """The whitespace-separated words of a block (keeps long word lists readable)."""
    return text.split()


DETERMINERS = frozenset(
    _words("""
    a an the this that these those my your his her its our their whose
    some any no every each either neither all both half few fewer fewest little less least
    many much more most several such what which whatever whichever another other
    enough
    """)
)

PRONOUNS = frozenset(
    _words("""
    i me my mine myself you your yours yourself yourselves he him his himself she her hers
    herself it its itself we us our ours ourselves they them their theirs themselves thee thou
    thy thine ye one ones oneself who whom whose whoever whomever what whatever which whichever
    that this these those somebody someone something anybody anyone anything nobody nothing
    none everybody everyone everything
    """)
)

PREPOSITIONS = frozenset(
    _words("""
    aboard about above across after against along alongside amid amidst among amongst around
    as at atop before behind below beneath beside besides between beyond but by concerning
    considering despite down during except excepting excluding following for from in inside
    into like minus near nearby next notwithstanding of off on onto opposite out outside over
    past per plus regarding round save since than through throughout thru till to toward
    towards under underneath unlike until unto up upon versus via vs with within without
    worth ago including circa pending barring
    """)
)

CONJUNCTIONS = frozenset(
    _words("""
    and or but nor so yet for because although though while whilst whereas if unless whether
    since once than that as after before until till when whenever where wherever why how
    lest provided providing supposing both either neither albeit whereby wherein whereupon
    """)
)

AUXILIARIES = frozenset(
    _words("""
    be am is are was were been being have has had having do does did
    will would shall should can could may might must ought wo ca sha ai
    """)
)

PARTICLES = frozenset(
    _words("""
    not n't no to there
    's 're 've 'll 'd 'm ’s ’re ’ve ’ll ’d ’m n’t
    """)
)

INTERROGATIVES = frozenset(_words("how why when where what which who whom whose"))

FUNCTION_WORDS: frozenset[str] = (
    DETERMINERS | PRONOUNS | PREPOSITIONS | CONJUNCTIONS | AUXILIARIES | PARTICLES | INTERROGATIVES
)

NUMBER_WORDS: frozenset[str] = frozenset(
    _words("""
    zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
    fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty
    ninety hundred thousand million billion trillion dozen first second third fourth fifth
    sixth seventh eighth ninth tenth
    """)
) - {"one", "second"}  # "one" is a pronoun far more often than a numeral in running text;
# "second" is a noun (a unit of time) about as often as an ordinal: both stay where they are.

OPEN_DELIMITERS: frozenset[str] = frozenset("([{“‘«‹〈《「『【")
CLOSE_DELIMITERS: frozenset[str] = frozenset(")]}”’»›〉》」』】")
