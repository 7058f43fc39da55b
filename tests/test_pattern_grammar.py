"""The layer-pattern grammar: parsing, canonical forms, errors with a caret."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.errors import PatternError
from archsearch.pattern import canonical, normalize, parse
from archsearch.pattern.grammar import MAX_GROUPS, MAX_LAYERS

SYMBOLS = "AGS"
layer_lists = st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=40)


def test_olmo_hybrid_stack():
    layers = parse("(GGGA)*8", SYMBOLS)
    assert len(layers) == 32
    assert [i for i, s in enumerate(layers) if s == "A"] == list(range(3, 32, 4))


@pytest.mark.parametrize("spelling", ["GGGAGGGA", "G G G A G G G A", "(GGGA)*2", "(G*3A)*2",
                                      " ( G G G A ) * 2 ", "G*3AG*3A", "((GGGA))*2"])
def test_spellings_of_one_stack_are_one_candidate(spelling):
    assert normalize(spelling, SYMBOLS) == normalize("GGGAGGGA", SYMBOLS)


def test_canonical_is_shortest_and_readable():
    assert canonical(list("GGGA" * 8)) == "(GGGA)*8"
    assert canonical(list("AAAAAAAA")) == "A*8"
    assert canonical(list("GGGA")) == "GGGA"  # ties prefer no operators over G*3A
    assert canonical(list("GA")) == "GA"


def test_nested_and_multi_digit_repeats():
    assert parse("((GA)*2S)*3", SYMBOLS) == list("GAGAS" * 3)
    assert len(parse("A*12", SYMBOLS)) == 12


@pytest.mark.parametrize(
    ("pattern", "message", "position"),
    [
        ("GGXA", "unknown layer symbol 'X'", 2),
        ("(GGGA", "'(' is never closed", 0),
        ("GGGA)", "')' closes nothing", 4),
        ("G*0", "got 0", 2),
        ("G*-2", "negative", 2),
        ("", "empty pattern", 0),
        ("   ", "empty pattern", 0),
        ("()", "empty group", 0),
        ("*3", "must follow", 0),
        ("G*", "followed by a repeat count", 2),
        ("3G", "unexpected number", 0),
        ("G+A", "unexpected character '+'", 1),
    ],
)
def test_errors_point_at_the_fault(pattern, message, position):
    with pytest.raises(PatternError) as info:
        parse(pattern, SYMBOLS)
    err = info.value
    assert message in str(err)
    assert err.position == position
    lines = str(err).splitlines()
    assert lines[1].strip() == pattern.strip() or not pattern.strip()
    assert lines[2].index("^") - 4 == position


def test_huge_expansion_is_refused():
    with pytest.raises(PatternError, match="larger than the 256 layers"):
        parse("(A*999)*999", SYMBOLS)
    with pytest.raises(PatternError, match="more than 256 layers"):
        parse("(A*200)*2", SYMBOLS)
    assert len(parse("(GGGA)*64", SYMBOLS)) == MAX_LAYERS == 256


def test_deep_nesting_is_refused_at_the_limit():
    assert parse("(" * MAX_GROUPS + "A" + ")" * MAX_GROUPS, SYMBOLS) == ["A"]
    with pytest.raises(PatternError, match=f"nested more than {MAX_GROUPS} deep"):
        parse("(" * (MAX_GROUPS + 1) + "A" + ")" * (MAX_GROUPS + 1), SYMBOLS)


@given(layer_lists)
@settings(max_examples=200, deadline=None)
def test_format_parse_round_trip(layers):
    text = canonical(layers)
    assert parse(text, SYMBOLS) == layers


@given(layer_lists)
@settings(max_examples=200, deadline=None)
def test_canonical_is_idempotent_and_no_longer_than_plain(layers):
    text = canonical(layers)
    assert canonical(parse(text, SYMBOLS)) == text
    assert len(text) <= len(layers)


@given(layer_lists, st.integers(1, 4))
@settings(max_examples=100, deadline=None)
def test_equal_layer_lists_have_equal_canonical_forms(layers, times):
    # the same list spelt as an explicit repetition gives the same canonical form
    spelt = f"({''.join(layers)})*{times}"
    assert normalize(spelt, SYMBOLS) == canonical(layers * times)
