"""Kendall tau between consecutive rungs and the swaps between them, on constructed rankings."""

import math

import pytest

from archsearch.scaling.stability import rank_stability, ranking


def scores(table: dict[str, list[float]]) -> dict[str, dict[int, float]]:
    return {name: dict(enumerate(values)) for name, values in table.items()}


def test_an_unchanged_order_has_tau_one_and_no_swaps():
    result = rank_stability(scores({"a": [3.0, 2.0, 1.0], "b": [4.0, 3.0, 2.0],
                                    "c": [5.0, 4.0, 3.0]}))
    assert [p.tau for p in result.pairs] == pytest.approx([1.0, 1.0])
    assert result.swaps == ()
    assert result.rankings[2] == ("a", "b", "c")


def test_a_reversed_order_has_tau_minus_one_and_every_pair_swaps():
    result = rank_stability(scores({"a": [1.0, 3.0], "b": [2.0, 2.0], "c": [3.0, 1.0]}))
    assert result.last_tau == pytest.approx(-1.0)
    assert {(s.ahead_before, s.ahead_after) for s in result.swaps} == {
        ("a", "b"), ("a", "c"), ("b", "c")}


def test_one_swap_is_found_between_the_rungs_where_it_happens():
    # b overtakes a between rung 1 and rung 2; c stays last
    result = rank_stability(scores({"a": [1.0, 1.0, 2.0], "b": [2.0, 1.5, 1.5],
                                    "c": [3.0, 3.0, 3.0]}))
    assert [(s.rung_a, s.rung_b, s.ahead_before, s.ahead_after) for s in result.swaps] == [
        (1, 2, "a", "b")]
    assert result.pairs[0].tau == pytest.approx(1.0)
    assert result.pairs[1].tau == pytest.approx(1 / 3)


def test_a_tie_is_not_a_swap_and_missing_scores_are_left_out():
    result = rank_stability({"a": {0: 1.0, 1: 2.0}, "b": {0: 2.0, 1: 2.0},
                             "c": {0: 3.0, 1: math.nan}})
    assert result.swaps == ()
    assert result.pairs[0].n_patterns == 2


def test_one_pattern_gives_an_undefined_tau():
    result = rank_stability({"a": {0: 1.0, 1: 0.5}})
    assert math.isnan(result.pairs[0].tau)


def test_ranking_breaks_ties_by_name():
    assert ranking({"b": 1.0, "a": 1.0, "c": 0.5}) == ("c", "a", "b")
