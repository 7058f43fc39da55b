"""Training batches and the packed validation set.

Training stream. The training documents are one token array ``EOD d1 EOD d2 ...``. Each epoch
cuts it into ``W`` windows of ``seq_len + 1`` tokens (consecutive windows share one token, so
every token is a target once per epoch), on a grid shifted by a per-epoch offset and visited in
a per-epoch permutation. Global row ``r = step * batch_size + b`` reads window
``perm_e[r mod W]`` of epoch ``e = r // W``. Some rows are probe rows instead (chosen per step
with probability ``probe_fraction``): packed with probe examples, their window is skipped.

Everything is a pure function of ``(seed, step, batch_size)`` and the data: the data position
*is* the step, so resuming at step ``s`` yields exactly what an uninterrupted run yields from
``s``, with no iterator state to checkpoint.

Targets use -100 (PyTorch's ``ignore_index``) where nothing is to be learnt: padding and the
unscored positions of probe examples.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from archsearch.data.labels import TokenLabels
from archsearch.data.probes.base import IGNORE, Probe, ProbeSequence
from archsearch.data.seeding import np_rng
from archsearch.errors import ArchsearchError


class TrainStream:
    """Deterministic, resumable training batches (see the module docstring)."""

    def __init__(self, tokens: np.ndarray, seq_len: int, probes: dict[str, Probe],
                 probe_fraction: float, pad_id: int) -> None:
        if len(tokens) < 2 * seq_len:
            raise ArchsearchError(
                f"data.seq_len: the training split holds {len(tokens)} tokens, fewer than "
                f"2 x seq_len = {2 * seq_len}; use a larger corpus or a shorter seq_len")
        self.tokens = tokens
        self.seq_len = seq_len
        self.probes = probes
        self.probe_names = list(probes)
        self.probe_fraction = probe_fraction if probes else 0.0
        self.pad_id = pad_id
        self.windows = (len(tokens) - seq_len) // seq_len
        self._epoch_cache: tuple[int, int, int, np.ndarray] | None = None

    def _epoch(self, seed: int, epoch: int) -> tuple[int, np.ndarray]:
        cached = self._epoch_cache
        if cached is not None and cached[0] == seed and cached[1] == epoch:
            return cached[2], cached[3]
        rng = np_rng("train-epoch", seed, epoch)
        offset = int(rng.integers(0, self.seq_len))
        perm = rng.permutation(self.windows)
        self._epoch_cache = (seed, epoch, offset, perm)
        return offset, perm

    def text_row(self, seed: int, row: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets of global row ``row`` read as text."""
        epoch, i = divmod(row, self.windows)
        offset, perm = self._epoch(seed, epoch)
        start = offset + int(perm[i]) * self.seq_len
        window = np.asarray(self.tokens[start: start + self.seq_len + 1], dtype=np.int64)
        return window[:-1], window[1:]

    def probe_row(self, row_seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A row packed with probe examples drawn from ``row_seed``; padded at the end."""
        return pack_probe_row(self.probes, random.Random(row_seed), self.seq_len, self.pad_id)

    def batch(self, step: int, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Inputs and targets (int64 [batch_size, seq_len]) of optimiser step ``step``."""
        if step < 0 or batch_size < 1:
            raise ValueError("step must be >= 0 and batch_size >= 1")
        rng = np_rng("train-step", seed, step)
        is_probe = rng.random(batch_size) < self.probe_fraction
        row_seeds = rng.integers(0, 2**62, size=batch_size)
        inputs = np.empty((batch_size, self.seq_len), dtype=np.int64)
        targets = np.empty((batch_size, self.seq_len), dtype=np.int64)
        for b in range(batch_size):
            if is_probe[b]:
                inputs[b], targets[b] = self.probe_row(int(row_seeds[b]))
            else:
                inputs[b], targets[b] = self.text_row(seed, step * batch_size + b)
        return inputs, targets

    def batches(self, batch_size: int, seed: int, start_step: int = 0) -> Iterator[tuple]:
        """Endless (input_ids, targets) LongTensors from ``start_step`` on."""
        import torch

        step = start_step
        while True:
            x, y = self.batch(step, batch_size, seed)
            yield torch.from_numpy(x), torch.from_numpy(y)
            step += 1


def pack_probe_row(probes: dict[str, Probe], rng: random.Random, seq_len: int,
                   pad_id: int, tries: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Probe examples back to back (tasks drawn uniformly) until the row is full."""
    inputs = np.full(seq_len, pad_id, dtype=np.int64)
    targets = np.full(seq_len, IGNORE, dtype=np.int64)
    names = list(probes)
    pos = 0
    misses = 0
    while pos < seq_len and misses < tries:
        probe = probes[rng.choice(names)]
        ex = probe.example(rng, seq_len - pos, "in")
        if ex is None:
            misses += 1
            continue
        inputs[pos: pos + len(ex)] = ex.inputs
        targets[pos: pos + len(ex)] = ex.targets
        pos += len(ex)
    return inputs, targets


@dataclass(frozen=True)
class ValidationSet:
    """The fixed validation set: packed rows plus per-token labels.

    ``index[r, t]`` is the row of ``labels`` scored at row ``r``, position ``t`` (-1: nothing
    scored there: a document boundary or padding); ``targets`` is -100 at the same places.
    """

    inputs: np.ndarray  # int64 [R, seq_len]
    targets: np.ndarray  # int64 [R, seq_len]
    index: np.ndarray  # int64 [R, seq_len]
    labels: TokenLabels
    doc_origins: tuple[str, ...]

    @property
    def n_tokens(self) -> int:
        return len(self.labels)


def pack_validation(doc_tokens: Sequence[np.ndarray], labels: TokenLabels, seq_len: int,
                    eod_id: int, pad_id: int, doc_origins: Sequence[str] = ()) -> ValidationSet:
    """Rows of ``EOD d1 EOD d2 ...`` cut like the training stream; each token scored once.

    The end-of-document token before each document is its beginning-of-sequence context and is
    never a target, so the scored tokens are exactly the documents' tokens (``labels`` order).
    """
    stream: list[np.ndarray] = []
    index: list[np.ndarray] = []
    at = 0
    for toks in doc_tokens:
        stream += [np.asarray([eod_id], np.int64), np.asarray(toks, np.int64)]
        index += [np.asarray([-1], np.int64), np.arange(at, at + len(toks), dtype=np.int64)]
        at += len(toks)
    if at != len(labels):
        raise ValueError("labels do not match the validation documents")
    flat = np.concatenate(stream) if stream else np.zeros(1, np.int64)
    flat_idx = np.concatenate(index) if index else np.full(1, -1, np.int64)
    rows = max(1, -(-(len(flat) - 1) // seq_len))
    total = rows * seq_len + 1
    flat = np.concatenate([flat, np.full(total - len(flat), pad_id, np.int64)])
    flat_idx = np.concatenate([flat_idx, np.full(total - len(flat_idx), -1, np.int64)])
    starts = np.arange(rows) * seq_len
    grid = starts[:, None] + np.arange(seq_len + 1)[None, :]
    windows, windex = flat[grid], flat_idx[grid]
    inputs = windows[:, :-1]
    idx = windex[:, 1:]
    targets = np.where(idx >= 0, windows[:, 1:], IGNORE)
    return ValidationSet(inputs, targets, idx, labels, tuple(doc_origins))


def pad_sequences(seqs: Sequence[ProbeSequence], pad_id: int,
                  multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded inputs and targets of probe instances, as wide as the longest rounded up to
    ``multiple`` (few distinct widths: fewer recompiles and kernel autotunes on a GPU)."""
    width = -(-max(len(s) for s in seqs) // multiple) * multiple
    inputs = np.full((len(seqs), width), pad_id, dtype=np.int64)
    targets = np.full((len(seqs), width), IGNORE, dtype=np.int64)
    for i, s in enumerate(seqs):
        inputs[i, : len(s)] = s.inputs
        targets[i, : len(s)] = s.targets
    return inputs, targets
