"""``archsearch.environ.environment``: variables set for a block, then given back exactly."""

from __future__ import annotations

import os

import pytest

from archsearch.environ import environment


def test_values_come_back_after_the_block_even_when_it_raises(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHSEARCH_TEST_SET", "before")
    monkeypatch.delenv("ARCHSEARCH_TEST_UNSET", raising=False)
    with pytest.raises(RuntimeError), environment({"ARCHSEARCH_TEST_SET": "inside",
                                                   "ARCHSEARCH_TEST_UNSET": "inside"}):
        assert os.environ["ARCHSEARCH_TEST_SET"] == os.environ["ARCHSEARCH_TEST_UNSET"] == "inside"
        raise RuntimeError("the block failed")
    assert os.environ["ARCHSEARCH_TEST_SET"] == "before"
    assert "ARCHSEARCH_TEST_UNSET" not in os.environ
