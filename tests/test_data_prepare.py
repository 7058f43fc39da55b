"""prepare_data: the token store, split, validation set, caching and process safety."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from archsearch.data.prepare import entry_key, prepare_data
from archsearch.data.probes import IGNORE
from archsearch.errors import ArchsearchError
from archsearch.space import SearchSpace
from archsearch.space.schema import DataSection, EvaluationSection

DATA = DataSection(builtin_documents=80, vocab_size=400, seq_len=64, validation_fraction=0.1)
EVAL = EvaluationSection(validation_tokens=1500, probe_examples=8, bootstrap=20)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory):
    return prepare_data(DATA, EVAL, tmp_path_factory.mktemp("cache"))


def test_sizes_and_vocab(prepared) -> None:
    assert prepared.text_vocab_size == 400
    assert prepared.vocab_size == 400 + 152  # reserved probe block
    assert prepared.meta["n_documents"] == 80
    assert prepared.meta["n_train_documents"] + prepared.meta["n_validation_documents_total"] == 80
    assert len(prepared.labels) == 1500  # validation cut at validation_tokens
    assert set(prepared.probe_eval) == set(DATA.probes)
    assert all(len(v) == 8 for v in prepared.probe_eval.values())


def test_split_is_by_document(prepared) -> None:
    origins = prepared.meta["validation_origins"]
    assert len(set(origins)) == len(origins)
    # no validation document's token sequence appears in the training stream
    train = np.asarray(prepared._stream.tokens)
    first_val = prepared.labels.token[prepared.labels.doc == 0][:24]
    windows = np.lib.stride_tricks.sliding_window_view(train, len(first_val))
    assert not (windows == first_val).all(axis=1).any()


def test_validation_rows_score_each_token_once(prepared) -> None:
    val = prepared.validation
    idx = val.index[val.index >= 0]
    assert sorted(idx.tolist()) == list(range(len(prepared.labels)))
    # targets are the labelled tokens; inputs are the previous tokens (or EOD at a doc start)
    r, t = np.nonzero(val.index >= 0)
    assert np.array_equal(val.targets[r, t], prepared.labels.token[val.index[r, t]])
    assert (val.targets[val.index < 0] == IGNORE).all()
    starts = prepared.labels.position[val.index[r, t]] == 0
    assert (val.inputs[r, t][starts] == prepared.eod_id).all()


def test_labels_cover_categories_and_copies(prepared) -> None:
    lab = prepared.labels
    assert lab.copy.sum() > 0
    assert (lab.copy_run[lab.copy] >= EVAL.copy_min_run).all()
    assert len(np.unique(lab.category)) >= 6
    assert (lab.log_freq >= 0).all() and lab.log_freq.max() > 1


def test_train_batches_shapes_and_shift(prepared) -> None:
    x, y = next(prepared.train_batches(batch_size=16, seed=0))
    assert x.shape == y.shape == (16, 64) and str(x.dtype) == "torch.int64"
    assert int(x.max()) < prepared.vocab_size and int(x.min()) >= 0
    text_rows = [b for b in range(16) if (y[b] != IGNORE).all()]
    for b in text_rows:
        assert (x[b, 1:] == y[b, :-1]).all()  # next-token targets


def test_stream_deterministic_and_resumable(prepared) -> None:
    run = prepared.train_batches(batch_size=4, seed=5)
    full = [next(run) for _ in range(30)]
    resumed = prepared.train_batches(batch_size=4, seed=5, start_step=17)
    for step in range(17, 30):
        x, y = next(resumed)
        assert (x == full[step][0]).all() and (y == full[step][1]).all()
    other = next(prepared.train_batches(batch_size=4, seed=6))
    assert not (other[0] == full[0][0]).all()


def _probe_row_share(prepared) -> float:
    probe_rows = total = 0
    marker_ids = {prepared.probe_vocab.marker(p) for p in DATA.probes}
    for step in range(60):
        x, _ = prepared.train_batch(step, 8, seed=1)
        for row in x:
            total += 1
            probe_rows += int(row[0]) in marker_ids
    return probe_rows / total


def test_probe_fraction_mix(prepared, tmp_path) -> None:
    assert _probe_row_share(prepared) == 0.0  # default: probes are learnt by fine-tuning only
    mixed = prepare_data(DataSection(**{**DATA.__dict__, "probe_fraction": 0.1}), EVAL, tmp_path)
    assert 0.04 < _probe_row_share(mixed) < 0.2


def test_epoch_covers_every_window(prepared) -> None:
    stream = prepared._stream
    w, t = stream.windows, prepared.seq_len
    tokens = np.asarray(stream.tokens, dtype=np.int64)
    views = np.lib.stride_tricks.sliding_window_view(tokens, t + 1)
    hits = []
    for r in range(w):
        x, y = stream.text_row(seed=0, row=r)
        window = np.concatenate([x, y[-1:]])
        hits.append({int(s) for s in np.flatnonzero((views == window).all(axis=1))})
    # one grid offset serves the whole epoch; on it, the rows visit every window once
    offsets = set.intersection(*({s % t for s in h} for h in hits))
    assert offsets
    off = offsets.pop()
    starts = sorted(next(s for s in h if s % t == off) for h in hits)
    assert starts == [off + k * t for k in range(w)]


def test_cached_load_is_cheap(tmp_path: Path) -> None:
    prepare_data(DATA, EVAL, tmp_path)
    t0 = time.perf_counter()
    again = prepare_data(DATA, EVAL, tmp_path)
    assert time.perf_counter() - t0 < 1.0
    assert again.meta["n_train_tokens"] > 0
    # cheap settings reuse the entry; content settings make a new one
    assert entry_key(DATA, EVAL) == entry_key(
        DataSection(**{**DATA.__dict__, "seq_len": 32, "probes": ["copy"]}), EVAL)
    assert entry_key(DATA, EVAL) != entry_key(DataSection(**{**DATA.__dict__, "seed": 1}), EVAL)


def test_concurrent_prepare_is_safe(tmp_path: Path) -> None:
    code = (
        "import sys, json; from archsearch.space.schema import DataSection, EvaluationSection;"
        "from archsearch.data.prepare import prepare_data;"
        "d = DataSection(builtin_documents=60, vocab_size=350, seq_len=64);"
        "e = EvaluationSection(validation_tokens=800, probe_examples=4);"
        "p = prepare_data(d, e, sys.argv[1]);"
        "print(json.dumps([int(p._stream.tokens.sum()), int(p.labels.token.sum())]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    assert len({o[0] for o in outs}) == 1
    entries = [p for p in (tmp_path / "data").iterdir() if p.is_dir()]
    assert len(entries) == 1 and not any(p.name.startswith(".") for p in entries)


def test_file_corpus_and_local_tokenizer(tmp_path: Path) -> None:
    from archsearch.data.builtin import generate_corpus

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": d.text}) for d in generate_corpus(40, 1)))
    data = DataSection(corpus=str(corpus), vocab_size=300, seq_len=32, probes=[])
    p = prepare_data(data, EVAL, tmp_path / "cache")
    assert p.vocab_size == 300 and p.probe_eval == {}
    tok_file = p.path / "tokenizer.json"
    p2 = prepare_data(DataSection(**{**data.__dict__, "tokenizer": str(tok_file)}), EVAL,
                      tmp_path / "cache")
    assert np.array_equal(p2.labels.token, p.labels.token)
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes(tok_file.read_bytes())
    p3 = prepare_data(DataSection(**{**data.__dict__, "tokenizer": str(folder)}), EVAL,
                      tmp_path / "cache")
    assert p3.eod_id == p.eod_id


@pytest.mark.parametrize(("patch", "message"), [
    ("evaluation: {categories: [verbs]}", "evaluation.categories: unknown category 'verbs'"),
    ("data: {probes: [sudoku]}", "data.probes: unknown probe 'sudoku'"),
    ("data: {validation_fraction: 0.0}", "data.validation_fraction: must be in (0, 1)"),
    ("data: {vocab_size: 100}", "data.vocab_size: a byte-level BPE needs at least 260"),
    ("data: {seq_len: 8}", "data.seq_len: must be at least 16"),
    ("data: {builtin_documents: 1}", "data.builtin_documents: must be at least 2"),
    ("evaluation: {copy_buckets: [8, 4]}", "evaluation.copy_buckets: must be positive run"),
])
def test_settings_prepare_relies_on_are_rejected_when_the_space_loads(patch: str,
                                                                       message: str) -> None:
    """prepare_data takes a validated space's settings: each rule is checked once, at load."""
    text = f"name: x\npatterns: {{candidates: [A]}}\n{patch}\n"
    with pytest.raises(ArchsearchError, match=re.escape(message)):
        SearchSpace.from_text(text, "bad.yaml")


def test_missing_files_name_the_file(tmp_path: Path) -> None:
    """Files can vanish after validation: prepare_data still names them."""
    with pytest.raises(ArchsearchError, match="no such tokenizer"):
        prepare_data(DataSection(**{**DATA.__dict__, "tokenizer": str(tmp_path / "t.json")}),
                     EVAL, tmp_path)
    with pytest.raises(ArchsearchError, match="missing.txt: no such file"):
        prepare_data(DataSection(corpus=str(tmp_path / "missing.txt")), EVAL, tmp_path)


def test_corpus_too_small(tmp_path: Path) -> None:
    one = tmp_path / "one.txt"
    one.write_text("just one document here")
    with pytest.raises(ArchsearchError, match="one.txt: corpus holds 1 document"):
        prepare_data(DataSection(corpus=str(one), vocab_size=300), EVAL, tmp_path)
    two = tmp_path / "two.txt"
    two.write_text("tiny\n<|endoftext|>\ndocs\n")
    with pytest.raises(ArchsearchError, match="data.seq_len: the training split holds"):
        prepare_data(DataSection(corpus=str(two), vocab_size=300), EVAL, tmp_path)


def test_a_model_vocabulary_smaller_than_a_tokenizer_files_is_refused_before_any_trial(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """validate (and sweep / scale / resume, through the same check) reads the tokenizer file."""
    from tokenizers import Tokenizer, models

    from archsearch.cli import main

    vocab = {f"w{i}": i for i in range(500)}
    tok = tmp_path / "tokenizer.json"
    Tokenizer(models.WordLevel(vocab, unk_token="w0")).save(str(tok))
    space = tmp_path / "space.yaml"
    base = f"name: x\npatterns: {{candidates: [A]}}\ndata: {{tokenizer: {tok}, probes: [parity]}}\n"
    space.write_text(base + "model: {vocab_size: 600}\n")
    assert main(["validate", str(space)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "space.yaml:4: model.vocab_size: must be at least 653" in err and "got 600" in err
    assert f"(the 501 ids of tokenizer {tok} + 152 probe ids)" in err
    space.write_text(base + "model: {vocab_size: 1000}\n")
    assert main(["validate", str(space)]) == 0
