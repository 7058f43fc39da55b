"""Probe generators: every target checked by an independent computation."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from archsearch.data.probes import (
    BLOCK_SIZE,
    IGNORE,
    PROBE_MODULES,
    build_probes,
    probe_classes,
    probe_vocab,
)
from archsearch.errors import ArchsearchError
from archsearch.space.schema import MIN_PROBE_LEN

BASE = 1000
SEQ = 128
V = probe_vocab(BASE)


def sym(token: int) -> int:
    return V.sym_index(token)


def samples(name: str, split: str = "in", n: int = 40, seq_len: int = SEQ):
    probe = build_probes([name], V, seq_len)[name]
    out = []
    for i in range(n):
        ex = probe.example(random.Random(i), seq_len, split)
        assert ex is not None
        assert len(ex) <= seq_len
        assert ex.inputs.min() >= BASE and ex.inputs.max() < V.end
        scored = ex.scored
        assert len(scored) > 0
        assert ex.targets[scored].min() >= BASE and ex.targets[scored].max() < V.end
        out.append(ex)
    return probe, out


def test_registry_and_id_block() -> None:
    classes = probe_classes()
    assert list(classes) == list(PROBE_MODULES)
    assert V.end == BASE + BLOCK_SIZE
    ids = {V.special(s) for s in ("SEP", "EOS", "QUERY", "FILL", "PUT", "PAD")}
    ids |= {V.marker(p) for p in PROBE_MODULES}
    ids |= {V.sym(i) for i in range(128)}
    assert len(ids) == 6 + len(PROBE_MODULES) + 128 and min(ids) >= BASE
    with pytest.raises(ArchsearchError, match="unknown probe 'nope'"):
        build_probes(["nope"], V, SEQ)


def test_copy_targets() -> None:
    probe, exs = samples("copy")
    for ex in exs:
        x = ex.inputs.tolist()
        assert x[0] == V.marker("copy")
        sep = x.index(V.special("SEP"))
        s = x[1:sep]
        # scored: SEP and the second copy but its last token; the targets spell s
        assert ex.scored.tolist() == list(range(sep, sep + len(s)))
        assert ex.targets[ex.scored].tolist() == s
        assert x[sep + 1:] == s  # inputs stop before EOS
        assert probe.min_len <= len(s) <= probe.train_max


def test_copy_long_split_beyond_training() -> None:
    probe, exs = samples("copy", "long")
    for ex in exs:
        assert probe.train_max < len(ex.scored) <= probe.long_max


def test_mqar_targets() -> None:
    _, exs = samples("mqar")
    for ex in exs:
        x = ex.inputs.tolist() + [int(ex.targets[ex.scored[-1]])]
        assert x[0] == V.marker("mqar")
        # read the key-value pairs independently: they precede the first FILL or repeated key
        pairs = {}
        i = 1
        while i + 1 < len(x) and 0 <= sym(x[i]) < 64 and x[i] not in pairs:
            pairs[x[i]] = x[i + 1]
            i += 2
        assert len(ex.scored) == len(pairs)  # every key queried once
        for j in ex.scored:
            assert j > i - 1
            assert ex.targets[j] == pairs[x[j]]
            assert 64 <= sym(int(ex.targets[j])) < 128


def _perm_matrix(p: tuple[int, ...]) -> np.ndarray:
    m = np.zeros((5, 5), dtype=np.int64)
    for src, dst in enumerate(p):
        m[dst, src] = 1
    return m


def _scored_steps(probe, ex) -> range:
    """Steps a state-tracking instance scores: all of them at training lengths, only those past
    the training lengths in the long split."""
    first = 1 if ex.split == "in" else probe.train_max + 1
    return range(first, len(ex))


def test_s5_running_product_by_matrices() -> None:
    elements = list(itertools.permutations(range(5)))
    mats = [_perm_matrix(p) for p in elements]
    probe, exs = samples("s5")
    _, long_exs = samples("s5", "long", n=10)
    for ex in exs + long_exs:
        x = ex.inputs.tolist()
        assert x[0] == V.marker("s5") and ex.targets[0] == IGNORE
        assert ex.scored.tolist() == list(_scored_steps(probe, ex))
        state = np.eye(5, dtype=np.int64)
        for j in range(1, len(x)):
            state = mats[sym(x[j])] @ state  # apply g_1 first: P_i = G_i P_(i-1)
            want = next(k for k, m in enumerate(mats) if np.array_equal(m, state))
            if j in ex.scored:
                assert sym(int(ex.targets[j])) == want


def test_parity_targets() -> None:
    probe, exs = samples("parity")
    _, long_exs = samples("parity", "long", n=10)
    for ex in exs + long_exs:
        bits = [sym(t) for t in ex.inputs.tolist()[1:]]
        assert set(bits) <= {0, 1}
        want = np.cumsum(bits) % 2
        assert ex.scored.tolist() == list(_scored_steps(probe, ex))
        assert [sym(int(ex.targets[j])) for j in ex.scored] == want[ex.scored - 1].tolist()
    assert all(ex.scored[0] == probe.train_max + 1 for ex in long_exs)


def test_entity_targets_replay_state() -> None:
    _, exs = samples("entity")
    _, long_exs = samples("entity", "long", n=10)
    for ex in exs + long_exs:
        x = ex.inputs.tolist() + [int(ex.targets[ex.scored[-1]])]
        state = {}
        answers = {}
        for j in range(1, len(x), 3):
            op, item, box = x[j], x[j + 1], x[j + 2]
            if op == V.special("PUT"):
                state[item] = box
            else:
                assert op == V.special("QUERY")
                answers[j + 1] = state[item]
        assert ex.scored.tolist() == sorted(answers)
        for j, box in answers.items():
            assert ex.targets[j] == box


def test_entity_long_split_is_longer() -> None:
    probe, exs = samples("entity", "long", n=20)
    assert all(len(e) > probe.train_max for e in exs)


def test_brackets_targets_by_stack() -> None:
    probe, exs = samples("brackets")
    _, long_exs = samples("brackets", "long", n=10)
    close_of = {V.sym(t): V.sym(t + 3) for t in range(3)}
    closes = set(close_of.values())
    for ex in exs + long_exs:
        # the full sequence: inputs plus the last token (the final closing bracket)
        full = ex.inputs.tolist() + [int(ex.targets[-1])]
        assert full[0] == V.marker("brackets")
        stack, expected = [], {}
        for j in range(1, len(full)):
            if full[j] in close_of:
                stack.append(full[j])
            elif full[j] in closes:
                expected[j - 1] = close_of[stack.pop()]  # the innermost open bracket
        assert not stack  # well nested
        assert ex.scored.tolist() == sorted(expected)
        assert all(ex.targets[j] == t for j, t in expected.items())
    assert probe.candidates().tolist() == sorted(closes)
    assert max(len(e) for e in long_exs) > probe.train_max


def test_eval_sets_deterministic_and_split() -> None:
    probes = build_probes(list(PROBE_MODULES), V, SEQ)
    for name, p in probes.items():
        a = p.eval_set(seed=3, count=10)
        b = p.eval_set(seed=3, count=10)
        c = p.eval_set(seed=4, count=10)
        assert all(np.array_equal(x.inputs, y.inputs) for x, y in zip(a, b, strict=True))
        assert any(not np.array_equal(x.inputs, y.inputs) for x, y in zip(a, c, strict=True))
        splits = [x.split for x in a]
        assert splits.count("long") == (5 if p.has_long else 0), name


@pytest.mark.parametrize("seq_len", [16, 32, 2048])
def test_generators_fit_any_seq_len(seq_len: int) -> None:
    for name, p in build_probes(list(PROBE_MODULES), V, seq_len).items():
        for ex in p.eval_set(seed=0, count=4):
            assert len(ex) <= seq_len, name


def test_examples_never_exceed_max_len() -> None:
    for seq_len in (16, 17, 64):
        for name, p in build_probes(list(PROBE_MODULES), V, seq_len).items():
            for max_len in range(seq_len + 1):
                for s in range(5):
                    for split in ("in", "long"):
                        ex = p.example(random.Random(s), max_len, split)
                        assert ex is None or len(ex) <= max_len, (name, max_len, split)


@pytest.mark.parametrize("max_len", [MIN_PROBE_LEN, 128])
def test_every_draw_fits_the_probe_length(max_len: int) -> None:
    """Fine-tuning draws thousands of instances and the held-out set wants both splits: none
    may come back empty at any allowed ``max_len``."""
    for name, p in build_probes(list(PROBE_MODULES), V, max_len).items():
        for split in ("in", "long"):
            for s in range(300):
                ex = p.example(random.Random(s), max_len, split)
                assert ex is not None and len(ex) <= max_len, (name, split, s)


def test_mqar_long_split_has_more_pairs_than_training() -> None:
    probe = build_probes(["mqar"], V, SEQ)["mqar"]
    assert probe.max_pairs < probe.long_pairs <= probe.keys
    trained = [len(probe.example(random.Random(i), SEQ, "in").scored) for i in range(50)]
    longer = [len(probe.example(random.Random(i), SEQ, "long").scored) for i in range(50)]
    assert max(trained) <= probe.max_pairs < min(longer) and max(longer) <= probe.long_pairs
