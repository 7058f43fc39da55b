"""The training step's CPU-checkable parts (the GPU ones are in tests/test_gpu.py)."""

from __future__ import annotations

from archsearch.train_step import GRAPH_MEMORY_FACTOR, graph_memory_note


def test_a_graph_that_would_not_fit_is_not_captured() -> None:
    """The graphed step's memory check: GRAPH_MEMORY_FACTOR x the eager peak must fit the
    process's share; the note says what it needed, what there was, and how to change it."""
    gib = 1024**3
    assert graph_memory_note(10 * gib, int(GRAPH_MEMORY_FACTOR * 10 * gib)) is None
    note = graph_memory_note(10 * gib, 15 * gib)
    need = f"{GRAPH_MEMORY_FACTOR * 10:.1f} GiB"
    assert note is not None and need in note and "10.0 GiB" in note and "15.0 GiB" in note
    assert "resources.gpus" in note and "cuda_graphs" in note
