"""Checks of a space that need the data package, run wherever a space is validated or started.

The space package sits above ``data`` (docs/ARCHITECTURE.md), so ``SearchSpace`` cannot open a
tokenizer. What it cannot see is checked here by ``archsearch validate`` and before a sweep,
scale run or resume starts, so a trial never finds out first.
"""

from __future__ import annotations

from pathlib import Path

from archsearch.data.probes.base import BLOCK_SIZE
from archsearch.data.tokenizer import load_tokenizer
from archsearch.space import SearchSpace
from archsearch.space.loader import possible_values


def check_data(space: SearchSpace) -> None:
    """Every check of this module; a one-line ``SpaceError`` naming the field if one fails."""
    check_model_vocab(space)


def check_model_vocab(space: SearchSpace) -> None:
    """A fixed ``model.vocab_size`` holds every id of a local tokenizer, plus the probe ids.

    ``bpe`` is checked when the space loads (its size is ``data.vocab_size``); a hub id is
    checked when the trial fetches it (the hub may be unreachable from here).
    """
    fixed = space.spec.model.vocab_size
    data = space.spec.data
    if fixed is None:
        return
    for spec in possible_values(data.tokenizer):
        if spec == "bpe" or not Path(spec).expanduser().exists():
            continue
        ids = load_tokenizer(spec).vocab_size
        need = ids + (BLOCK_SIZE if data.probes else 0)
        probes = f" + {BLOCK_SIZE} probe ids" if data.probes else ""
        for size in possible_values(fixed):
            if size < need:
                raise space.field_error("model.vocab_size", f"must be at least {need} (the "
                                        f"{ids} ids of tokenizer {spec}{probes}), got {size}")
