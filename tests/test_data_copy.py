"""Copy detection: constructed repeats, run lengths, buckets, and no matches across documents."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.data.copy import bucket_names, bucket_of, copy_runs, copy_runs_reference
from archsearch.data.labels import label_document
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


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=50), st.integers(1, 5))
def test_matches_brute_force(tokens: list[int], k: int) -> None:
    assert copy_runs(tokens, k).tolist() == copy_runs_reference(tokens, k).tolist()


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
