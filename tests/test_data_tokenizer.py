"""Tokenizers: BPE training and its cache, local tokenizer files, end-of-document ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from archsearch.data.builtin import generate_corpus
from archsearch.data.tokenizer import EOD_TOKEN, cached_bpe, load_tokenizer, train_bpe
from archsearch.errors import ArchsearchError

TEXTS = [d.text for d in generate_corpus(30, seed=0)]


def test_bpe_is_deterministic_and_sized() -> None:
    a = train_bpe(TEXTS, 500)
    b = train_bpe(TEXTS, 500)
    assert a.to_str() == b.to_str()
    assert a.get_vocab_size() == 500
    assert a.token_to_id(EOD_TOKEN) == 0


def test_bpe_cache_trains_once(tmp_path: Path) -> None:
    calls = []

    def factory():
        calls.append(1)
        return iter(TEXTS)

    t1 = cached_bpe(tmp_path, "fp", 400, texts_factory=factory)
    t2 = cached_bpe(tmp_path, "fp", 400, texts_factory=factory)
    assert len(calls) == 1
    assert t1.path == t2.path and t1.eod_id == 0 and t1.vocab_size == 400
    assert not [p for p in t1.path.parent.iterdir() if p.name.endswith(".tmp")]
    cached_bpe(tmp_path, "fp", 450, texts_factory=factory)
    assert len(calls) == 2  # another vocab size is another entry


def test_encode_keeps_char_offsets(tmp_path: Path) -> None:
    tok = cached_bpe(tmp_path, "fp", 400, texts=TEXTS)
    text = "Ünïcode wörds and the box."
    (ids, offs), = tok.encode([text])
    assert len(ids) == len(offs)
    assert offs[-1][1] == len(text)  # character offsets, not bytes
    assert tok.encode_ids([text])[0].tolist() == ids.tolist()


def test_load_file_and_folder(tmp_path: Path) -> None:
    hf = train_bpe(TEXTS, 300)
    folder = tmp_path / "tok"
    folder.mkdir()
    hf.save(str(folder / "tokenizer.json"))
    assert load_tokenizer(folder / "tokenizer.json").eod_id == 0
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": "e"}}))
    assert load_tokenizer(folder).n_text == 300


def test_tokenizer_without_eod_gets_an_appended_id(tmp_path: Path) -> None:
    hf = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    hf.save(str(tmp_path / "wl.json"))
    tok = load_tokenizer(tmp_path / "wl.json")
    assert tok.n_text == 3 and tok.eod_id == 3 and tok.vocab_size == 4


def test_bad_tokenizers(tmp_path: Path) -> None:
    with pytest.raises(ArchsearchError, match="no such tokenizer"):
        load_tokenizer(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ArchsearchError, match="broken.json: not a readable tokenizer.json"):
        load_tokenizer(tmp_path / "broken.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArchsearchError, match="folder has no tokenizer.json"):
        load_tokenizer(tmp_path / "empty")
    with pytest.raises(ArchsearchError, match="data.vocab_size"):
        train_bpe(TEXTS, 100)
