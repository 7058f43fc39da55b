"""Corpus readers: formats, document units, and errors that name the file (and line/column)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from archsearch.data.corpus import corpus_fingerprint, iter_documents, read_parquet_file
from archsearch.errors import ArchsearchError


def texts(spec: str, **kw: str) -> list[str]:
    return [d.text for d in iter_documents(spec, **kw)]


def test_text_files_folder_and_glob(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first doc\n<|endoftext|>\nsecond doc\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("third doc\n")
    (tmp_path / "skip.bin").write_bytes(b"\x00\x01")
    assert texts(str(tmp_path)) == ["first doc\n", "second doc\n", "third doc\n"]
    assert texts(str(tmp_path / "*.txt")) == ["first doc\n", "second doc\n"]
    assert texts(str(tmp_path / "**" / "*.md")) == ["third doc\n"]


def test_jsonl_and_gzip(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"doc {i}", "id": i}) for i in range(3)] + [""]
    (tmp_path / "c.jsonl").write_text("\n".join(lines))
    assert texts(str(tmp_path / "c.jsonl")) == ["doc 0", "doc 1", "doc 2"]
    with gzip.open(tmp_path / "d.jsonl.gz", "wt") as f:
        f.write(json.dumps({"body": "zipped"}) + "\n")
    assert texts(str(tmp_path / "d.jsonl.gz"), text_field="body") == ["zipped"]


def test_parquet_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "e.parquet"
    pq.write_table(pa.table({"content": [f"row {i}" for i in range(50)] + [None, "  "],
                             "n": list(range(52))}), path, row_group_size=7)
    docs = list(read_parquet_file(path, "content", batch_rows=5))
    assert [d.text for d in docs] == [f"row {i}" for i in range(50)]
    assert docs[3].origin.endswith("row 4")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ArchsearchError, match="nope.txt: no such file"):
        texts(str(tmp_path / "nope.txt"))
    with pytest.raises(ArchsearchError, match="no file matches"):
        texts(str(tmp_path / "*.jsonl"))


def test_empty_corpus(tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("  \n\n")
    with pytest.raises(ArchsearchError, match="empty.txt: corpus is empty"):
        texts(str(tmp_path / "empty.txt"))


def test_undecodable_bytes_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"fine line\nbad \xff byte\n")
    with pytest.raises(ArchsearchError, match=r"bad.txt:2: not valid UTF-8 .*column 5"):
        texts(str(tmp_path / "bad.txt"))


def test_jsonl_errors(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"text": "ok"}\n{"text": "broken\n')
    with pytest.raises(ArchsearchError, match=r"x.jsonl:2: not valid JSON"):
        texts(str(tmp_path / "x.jsonl"))
    (tmp_path / "y.jsonl").write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(ArchsearchError, match=r"y.jsonl:2: no field 'text' \(fields: body\)"):
        texts(str(tmp_path / "y.jsonl"))
    (tmp_path / "z.jsonl").write_text('[1, 2]\n')
    with pytest.raises(ArchsearchError, match=r"z.jsonl:1: expected a JSON object"):
        texts(str(tmp_path / "z.jsonl"))
    (tmp_path / "w.jsonl").write_text('{"text": 5}\n')
    with pytest.raises(ArchsearchError, match=r"w.jsonl:1: field 'text' is int"):
        texts(str(tmp_path / "w.jsonl"))


def test_parquet_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"body": ["a"]}), path)
    with pytest.raises(ArchsearchError, match=r"p.parquet: no column 'text' \(columns: body\)"):
        texts(str(path))
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "q.parquet")
    with pytest.raises(ArchsearchError, match=r"q.parquet: column 'text' is int64"):
        texts(str(tmp_path / "q.parquet"))
    (tmp_path / "r.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ArchsearchError, match=r"r.parquet: not a readable parquet"):
        texts(str(tmp_path / "r.parquet"))


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    f.write_text("one")
    before = corpus_fingerprint(str(f))
    assert corpus_fingerprint(str(f)) == before
    f.write_text("one two")
    assert corpus_fingerprint(str(f)) != before
    assert corpus_fingerprint(str(f), text_field="x") != corpus_fingerprint(str(f))
