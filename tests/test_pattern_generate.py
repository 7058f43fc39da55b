"""Pattern generators: exact depth, the documented ratio rounding, and each placement."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.pattern import canonical, generate, parse_ratio, pattern_stats
from archsearch.pattern.generate import PLACEMENTS, Ratio, attention_count

KINDS = {"A": "attention", "G": "gdn", "S": "attention"}


def test_olmo_hybrid_is_3_to_1_even_end():
    assert canonical(generate(32, "3:1", "even_end")) == "(GGGA)*8"


def test_pure_ratios():
    assert generate(6, "1:0", "even_end") == list("GGGGGG")
    assert generate(6, "0:1", "front") == list("AAAAAA")


def test_placements_at_depth_8_with_two_attention_layers():
    assert "".join(generate(8, "3:1", "even_end")) == "GGGAGGGA"
    assert "".join(generate(8, "3:1", "even_inner")) == "GGAGGAGG"
    assert "".join(generate(8, "3:1", "front")) == "AAGGGGGG"
    assert "".join(generate(8, "3:1", "back")) == "GGGGGGAA"
    assert "".join(generate(8, "3:1", "middle")) == "GGGAAGGG"
    assert "".join(generate(8, "3:1", [0, -1])) == "AGGGGGGA"


def test_even_inner_never_uses_the_ends_and_refuses_when_it_must():
    stats = pattern_stats(generate(32, "11:1", "even_inner"), KINDS)
    assert not stats.first_is_attention and not stats.last_is_attention
    with pytest.raises(ValueError, match="even_inner"):
        generate(4, "1:3", "even_inner")  # 3 attention layers, only 2 inner slots
    assert generate(4, "1:3", "front")  # 3 attention of 4 is fine elsewhere


def test_rounding_is_half_up_and_hybrids_stay_hybrid():
    assert attention_count(6, Ratio(3, 1)) == 2  # 1.5 -> 2
    assert attention_count(10, Ratio(3, 1)) == 3  # 2.5 -> 3
    assert attention_count(4, Ratio(15, 1)) == 1  # 0.25 -> 0, kept at 1
    assert attention_count(4, Ratio(1, 15)) == 3  # 3.75 -> 4, kept at depth - 1
    assert attention_count(1, Ratio(1, 1)) == 1  # a single layer cannot be both


@pytest.mark.parametrize("bad", ["3", "3:1:1", "a:b", "0:0", "-1:2", ""])
def test_bad_ratios(bad):
    with pytest.raises(ValueError):
        parse_ratio(bad)


def test_bad_explicit_indices():
    with pytest.raises(ValueError, match="outside"):
        generate(4, "3:1", [4])
    with pytest.raises(ValueError, match="twice"):
        generate(4, "3:1", [1, -3])


@given(
    depth=st.integers(1, 64),
    linear=st.integers(0, 16),
    attention=st.integers(0, 16),
    placement=st.sampled_from(PLACEMENTS),
)
@settings(max_examples=300, deadline=None)
def test_generators_give_the_depth_and_documented_ratio(depth, linear, attention, placement):
    if linear == attention == 0:
        return
    ratio = Ratio(linear, attention)
    expected = math.floor(depth * attention / (linear + attention) + 0.5)
    if depth >= 2:
        expected = max(expected, 1) if attention else expected
        expected = min(expected, depth - 1) if linear else expected
    try:
        layers = generate(depth, ratio, placement)
    except ValueError:
        assert placement == "even_inner" and expected > depth - 2
        return
    assert len(layers) == depth
    assert layers.count("A") == expected
    stats = pattern_stats(layers, KINDS)
    if placement == "even_end" and expected:
        assert stats.last_is_attention
    if placement == "even_inner":
        assert not stats.first_is_attention and not stats.last_is_attention
