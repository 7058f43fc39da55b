"""Corpora from ``datasets``: a small dataset saved locally with ``save_to_disk`` read as a corpus
(documents, the ``max_documents`` cap, prepare_data, tag, compare), and the one-line errors."""

from __future__ import annotations

import sys
import time

import datasets
import pytest

from archsearch.data import prepare_data, tag_corpus
from archsearch.data.builtin import generate_corpus
from archsearch.data.corpus import corpus_fingerprint, iter_documents
from archsearch.data.hf import parse_hf_spec
from archsearch.errors import ArchsearchError
from archsearch.space.schema import DataSection, EvaluationSection

TEXTS = [d.text for d in generate_corpus(30, 3)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("hf")
    rows = {"text": [*TEXTS[:5], "   ", *TEXTS[5:]], "id": list(range(len(TEXTS) + 1))}
    datasets.Dataset.from_dict(rows).save_to_disk(str(root / "one"))
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": TEXTS[:20]}),
                          "validation": datasets.Dataset.from_dict({"text": TEXTS[20:]})}
                         ).save_to_disk(str(root / "both"))
    return root


def test_saved_dataset_is_read_document_by_document(saved) -> None:
    docs = list(iter_documents(str(saved / "one")))
    assert [d.text for d in docs] == TEXTS  # the blank row skipped, order kept
    assert docs[5].origin.endswith(":row 6")
    split = list(iter_documents(str(saved / "both" / "validation")))
    assert [d.text for d in split] == TEXTS[20:]
    assert corpus_fingerprint(str(saved / "one")) != corpus_fingerprint(str(saved / "both/train"))


def test_prepare_and_tag_read_a_saved_dataset_with_a_document_cap(saved, tmp_path) -> None:
    data = DataSection(corpus=str(saved / "one"), max_documents=12, vocab_size=300, seq_len=32,
                       probes=[])
    prepared = prepare_data(data, EvaluationSection(validation_tokens=256), tmp_path)
    assert prepared.meta["n_documents"] == 12
    full = prepare_data(DataSection(corpus=str(saved / "one"), vocab_size=300, seq_len=32,
                                    probes=[]), EvaluationSection(validation_tokens=256), tmp_path)
    assert full.meta["n_documents"] == len(TEXTS)
    result = tag_corpus(str(saved / "one"), "bpe", vocab_size=300, cache_dir=tmp_path,
                        max_documents=4)
    assert result.n_documents == 4 and result.n_tokens > 100


def test_dataset_dict_folder_names_its_splits(saved) -> None:
    with pytest.raises(ArchsearchError, match="holds the splits train, validation; name one"):
        list(iter_documents(str(saved / "both")))


def test_missing_text_column_is_one_line(saved) -> None:
    with pytest.raises(ArchsearchError, match=r"no column 'body' \(columns: text, id\)"):
        list(iter_documents(str(saved / "one"), text_field="body"))


def test_hf_spec_forms() -> None:
    assert parse_hf_spec("hf:HuggingFaceFW/fineweb-edu:sample-10BT:train") == (
        "HuggingFaceFW/fineweb-edu", "sample-10BT", "train")
    assert parse_hf_spec("hf:allenai/c4:validation") == ("allenai/c4", None, "validation")
    with pytest.raises(ArchsearchError, match="expected hf:NAME:SPLIT"):
        parse_hf_spec("hf:allenai/c4")


def test_unreachable_hub_dataset_fails_fast_with_one_line(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    start = time.perf_counter()
    with pytest.raises(ArchsearchError) as err:
        list(iter_documents("hf:archsearch-tests/no-such-dataset:train"))
    assert "\n" not in str(err.value)
    assert "data.corpus archsearch-tests/no-such-dataset" in str(err.value)
    assert time.perf_counter() - start < 20


def test_without_datasets_installed_the_error_says_how_to_install(saved, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ArchsearchError, match=r"pip install 'archsearch\[hf\]'"):
        list(iter_documents("hf:HuggingFaceFW/fineweb-edu:sample-10BT:train"))
    with pytest.raises(ArchsearchError, match="need the 'datasets' package"):
        list(iter_documents(str(saved / "one")))
