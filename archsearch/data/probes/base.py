"""What every probe shares: the reserved token ids, the sequence format, the generator API.

Token ids. Probe tokens never collide with text: they live in a reserved block appended after
the text vocabulary (the tokenizer's ids, plus an appended end-of-document id if it has none).
With ``base`` = the text vocabulary size, the block is

    base + 0 .. base + 7        specials: SEP, EOS, QUERY, FILL, PUT, and spares
    base + 8 .. base + 23       one task marker per registered probe (registry order), which
                                starts every example, so the model knows which task it is in
    base + 24 .. base + 151     128 generic symbols, ``sym(0)`` .. ``sym(127)``; each probe
                                gives them its own meaning (copy alphabet, MQAR keys and
                                values, S5 elements, bits, boxes and items, brackets)

so the model's vocabulary is ``base + 152`` whenever probes are on. The layout is fixed by the
registry order, not by which probes a run enables: ids stay stable across runs.

Sequences. A probe example is ``inputs`` and ``targets`` of the same length: ``targets[j]`` is
the token the model must output at position ``j`` (after reading ``inputs[: j + 1]``), or -100
(PyTorch's ``ignore_index``) where nothing is scored. For next-token tasks (copy, MQAR, entity,
brackets) a target equals the next input; for state tracking (S5, parity) it is the state after
reading the current element (a tagging task, as in Merrill et al.). Training uses the same
positions as evaluation: only scored positions carry a loss.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from archsearch.data.seeding import py_rng

IGNORE = -100
SPECIALS: tuple[str, ...] = ("SEP", "EOS", "QUERY", "FILL", "PUT", "PAD", "SPARE6", "SPARE7")
MAX_PROBES = 16
N_SYMBOLS = 128
BLOCK_SIZE = len(SPECIALS) + MAX_PROBES + N_SYMBOLS


@dataclass(frozen=True)
class ProbeVocab:
    """The reserved id block: ``base`` is the first id after the text vocabulary."""

    base: int
    probe_names: tuple[str, ...]  # every registered probe, registry order

    def special(self, name: str) -> int:
        return self.base + SPECIALS.index(name)

    def marker(self, probe: str) -> int:
        return self.base + len(SPECIALS) + self.probe_names.index(probe)

    def sym(self, i: int) -> int:
        if not 0 <= i < N_SYMBOLS:
            raise ValueError(f"probe symbol {i} outside 0..{N_SYMBOLS - 1}")
        return self.base + len(SPECIALS) + MAX_PROBES + i

    def sym_index(self, token_id: int) -> int:
        """Inverse of ``sym`` (for tests and debugging)."""
        return token_id - (self.base + len(SPECIALS) + MAX_PROBES)

    @property
    def end(self) -> int:
        """One past the last reserved id: the model vocabulary size."""
        return self.base + BLOCK_SIZE


@dataclass(frozen=True)
class ProbeSequence:
    """One example or evaluation instance; ``split`` is ``in`` (training lengths) or ``long``."""

    inputs: np.ndarray  # int64 [L]
    targets: np.ndarray  # int64 [L], IGNORE where not scored
    split: str = "in"

    def __post_init__(self) -> None:
        if self.inputs.shape != self.targets.shape:
            raise ValueError("inputs and targets differ in length")

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def scored(self) -> np.ndarray:
        """Positions that carry a target."""
        return np.flatnonzero(self.targets != IGNORE)


def make_sequence(inputs: Sequence[int], targets: Sequence[int], split: str) -> ProbeSequence:
    return ProbeSequence(np.asarray(inputs, dtype=np.int64), np.asarray(targets, dtype=np.int64),
                         split)


def next_token_sequence(full: Sequence[int], scored: Sequence[int], split: str) -> ProbeSequence:
    """``inputs = full[:-1]``; ``targets[j] = full[j + 1]`` for ``j`` in ``scored``."""
    inputs = list(full[:-1])
    targets = [IGNORE] * len(inputs)
    for j in scored:
        targets[j] = full[j + 1]
    return make_sequence(inputs, targets, split)


class Probe(ABC):
    """A synthetic task generator. Subclasses set ``name`` and implement ``example``.

    ``max_len`` is the longest instance in tokens (``evaluation.probe_len``); difficulty
    settings are constructor keywords whose defaults scale with it: training instances use up
    to about half of it, the ``long`` split (``has_long``) the lengths or sizes beyond those.
    """

    name: ClassVar[str]
    has_long: ClassVar[bool] = True

    def __init__(self, vocab: ProbeVocab, max_len: int) -> None:
        self.vocab = vocab
        self.max_len = max_len
        self.marker = vocab.marker(self.name)

    @abstractmethod
    def example(self, rng: random.Random, room: int, split: str = "in") -> ProbeSequence | None:
        """One instance of at most ``room`` tokens, or None if none of ``split`` fits."""

    def candidates(self) -> np.ndarray | None:
        """The answer set: ids among which accuracy takes the argmax (None: the whole vocabulary)."""
        return None

    def chance(self) -> float:
        """Chance accuracy: ``1 / |answer set|``, what guessing scores, and the best any input-blind
        answer can do when answers are uniform over the set (true of every registered probe;
        the tests check it). A probe with skewed answers must override this. NaN without an
        answer set."""
        answers = self.candidates()
        return 1.0 / len(answers) if answers is not None and len(answers) else float("nan")

    def eval_set(self, seed: int, count: int) -> list[ProbeSequence]:
        """``count`` held-out instances (half of them ``long`` when the probe has that split).

        Drawn from their own seed stream, separate from the training stream's.
        """
        n_long = count // 2 if self.has_long else 0
        out: list[ProbeSequence] = []
        for i in range(count):
            split = "long" if i >= count - n_long else "in"
            rng = py_rng("probe-eval", self.name, seed, i)
            seq = self.example(rng, self.max_len, split)
            if seq is None and split == "long":
                seq = self.example(rng, self.max_len, "in")
            if seq is None:
                raise ValueError(f"probe {self.name}: no instance fits {self.max_len} tokens")
            out.append(seq)
        return out


def clamp_range(lo: int, hi: int, cap: int) -> tuple[int, int] | None:
    """``[lo, min(hi, cap)]`` or None when empty."""
    hi = min(hi, cap)
    return (lo, hi) if lo <= hi else None


class StateTrackingProbe(Probe):
    """A probe whose instance is ``MARK x1 ... xn`` of random length: the ``in`` split draws
    ``n`` from ``min_len .. train_max``, the ``long`` split from ``train_max + 1 .. long_max``
    (defaults: ``long_max = max_len - 1``, ``train_max = long_max // 2``).

    In the ``long`` split only the steps past ``train_max`` are scored: the first ``train_max``
    states are the trained task, and counting them would lift a model that tracks the state
    only as far as it was trained well above chance (Grazzi et al. score the extrapolation).
    """

    def __init__(self, vocab: ProbeVocab, max_len: int, min_len: int = 2,
                 train_max: int | None = None, long_max: int | None = None) -> None:
        super().__init__(vocab, max_len)
        self.min_len = min_len
        self.long_max = long_max if long_max is not None else max(min_len, max_len - 1)
        self.train_max = train_max if train_max is not None else max(min_len, self.long_max // 2)

    def length(self, rng: random.Random, room: int, split: str) -> int | None:
        """How many steps an instance of ``split`` has (one position goes to the marker)."""
        cap = room - 1
        span = (clamp_range(self.min_len, self.train_max, cap) if split == "in"
                else clamp_range(self.train_max + 1, self.long_max, cap))
        return None if span is None else rng.randint(*span)

    def scored_from(self, split: str) -> int:
        """The first step scored in ``split`` (steps count from 1; position 0 is the marker)."""
        return 1 if split == "in" else self.train_max + 1
