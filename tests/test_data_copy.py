"""Copy detection: constructed repeats, run lengths, buckets, and no matches across documents."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.data.copy import (
    bucket_names,
    bucket_of,
    copy_matches,
    copy_matches_reference,
    copy_runs,
    copy_runs_reference,
    first_sources,
)
from archsearch.data.labels import TokenLabels, label_document
from archsearch.data.tokenizer import train_bpe


def test_repeated_span_runs() -> None:
    span = list(range(100, 110))  # 10 distinct tokens
    x = [1, 2, 3] + span + [4, 5] + span + [6]
    runs = copy_runs(x, 4)
    second = 3 + 10 + 2
    # the first 4 tokens of the repeat are not copies; token i of it has run i
    assert runs[:second + 4].tolist() == [0] * (second + 4)
    assert runs[second + 4: second + 10].tolist() == [4, 5, 6, 7, 8, 9]
    assert runs[-1] == 0
    # each copy token's source is the same token of the first span
    sources = copy_matches(x, 4).source
    assert sources[second + 4: second + 10].tolist() == list(range(3 + 4, 3 + 10))
    assert (sources[:second + 4] == -1).all() and sources[-1] == -1


def test_run_counts_longest_match_including_context() -> None:
    x = [7, 8, 9, 1, 2, 3, 4, 5, 0, 8, 9, 1, 2, 3, 4, 5]
    runs = copy_runs(x, 4)
    # second "8 9 1 2 3 4 5": token 3 (index 13) has 8 9 1 2 before it -> run 4
    assert runs.tolist()[9:] == [0, 0, 0, 0, 4, 5, 6]


def test_min_run_threshold() -> None:
    x = [1, 2, 3, 9, 1, 2, 3]
    assert copy_runs(x, 2).tolist() == [0, 0, 0, 0, 0, 0, 2]
    assert copy_runs(x, 3).tolist() == [0] * 7


def test_self_overlapping_repeat() -> None:
    x = [5] * 8
    assert copy_runs(x, 4).tolist() == [0, 0, 0, 0, 0, 4, 5, 6]
    # each copies the token just before it; the first occurrence of "5 5 5 5 5" ends at 4
    assert copy_matches(x, 4).source.tolist() == [-1] * 5 + [4, 5, 6]
    assert first_sources(copy_matches(x, 4).source).tolist() == [-1] * 5 + [4, 4, 4]


def test_a_span_seen_three_times_leads_back_to_its_first_occurrence() -> None:
    span = [10, 11, 12, 13, 14, 15]
    x = [1] + span + [2] + span + [3] + span
    matches = copy_matches(x, 4)
    third = [i for i in range(len(x)) if i > 2 * 7 and matches.run[i]]
    second = [i - 7 for i in third]
    first = [i - 14 for i in third]
    assert matches.source[third].tolist() == second  # the most recent occurrence
    assert first_sources(matches.source)[third].tolist() == first
    assert first_sources(matches.source)[second].tolist() == first


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=50), st.integers(1, 5))
def test_matches_brute_force(tokens: list[int], k: int) -> None:
    assert copy_runs(tokens, k).tolist() == copy_runs_reference(tokens, k).tolist()
    fast, slow = copy_matches(tokens, k), copy_matches_reference(tokens, k)
    assert fast.source.tolist() == slow.source.tolist()
    # the first occurrence is the earliest place the token and the k before it appear
    first = first_sources(fast.source)
    for t in np.nonzero(fast.run)[0]:
        gram = tokens[t - k: t + 1]
        earliest = next(j for j in range(k, t) if tokens[j - k: j + 1] == gram)
        assert first[t] == earliest


def test_label_rows_of_sources_survive_reordering() -> None:
    x = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
    m = copy_matches(x, 3)
    n = len(x)
    one = TokenLabels(doc=np.zeros(n, np.int32), position=np.arange(n, dtype=np.int32),
                      token=np.asarray(x, np.int64), category=np.zeros(n, np.int8),
                      first=np.ones(n, bool), copy_run=m.run, copy_source=m.source,
                      log_freq=np.zeros(n))
    # two documents, then shuffled: rows move, (doc, position) keys stay
    shifted = TokenLabels(**{**one.to_arrays(), "doc": np.ones(n, np.int32)})
    both = TokenLabels.concat([one, shifted])
    order = np.random.default_rng(0).permutation(2 * n)
    mixed = both.take(order)
    rows = mixed.first_source_rows()
    copies = np.nonzero(mixed.copy)[0]
    assert len(copies) and (rows[~mixed.copy] == -1).all()
    assert (mixed.doc[rows[copies]] == mixed.doc[copies]).all()
    assert (mixed.position[rows[copies]] == first_sources(m.source)[mixed.position[copies]]).all()


def test_buckets() -> None:
    runs = np.array([0, 3, 4, 7, 8, 15, 16, 40])
    assert bucket_of(runs, [4, 8, 16]).tolist() == [-1, -1, 0, 0, 1, 1, 2, 2]
    assert bucket_names([4, 8, 16]) == ["4_7", "8_15", "16_plus"]


def test_no_match_across_documents() -> None:
    text = "the quick brown fox jumps over the lazy dog near the river bank today"
    tok = train_bpe([text] * 3, 300)
    enc = tok.encode(text, add_special_tokens=False)
    ids = np.asarray(enc.ids)
    # document 1 and document 2 are identical: nothing in document 2 is a copy...
    a = label_document(0, text, ids, np.asarray(enc.offsets), 4)
    b = label_document(1, text, ids, np.asarray(enc.offsets), 4)
    assert not a.copy.any() and not b.copy.any()
    # ...while the same text twice inside one document is
    both = text + " " + text
    enc2 = tok.encode(both, add_special_tokens=False)
    c = label_document(0, both, np.asarray(enc2.ids), np.asarray(enc2.offsets), 4)
    assert c.copy.sum() >= len(ids) - 5
    # a copy token keeps its word class: content and copy at once
    assert (c.copy & (c.category == 0)).any()
