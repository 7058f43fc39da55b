"""Corpora from the Hugging Face ``datasets`` library: ``hf:NAME[:CONFIG]:SPLIT`` and folders
written by ``Dataset.save_to_disk``.

Why: the corpora people compare language models on (fineweb-edu, Dolma, ...) are published as
datasets. ``datasets`` is an optional extra (``pip install 'archsearch[hf]'``): without it, a
``hf:`` corpus is a one-line error saying so, and nothing else changes.

- ``hf:HuggingFaceFW/fineweb-edu:sample-10BT:train`` streams the split (``streaming=True``: no
  full download; documents arrive in the dataset's order). The dataset comes from the local
  Hugging Face cache, or the hub when it can be reached (``archsearch.hub``); cap it with
  ``data.max_documents``, or it is read to its end.
- A folder written by ``save_to_disk`` (it holds ``state.json``) is one split, memory-mapped.
  A ``DatasetDict`` folder (``dataset_dict.json``) keeps each split in a subfolder: name that.

The text is the string column ``data.text_field``, as for parquet files; blank rows are skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from archsearch.data.corpus import Document
from archsearch.errors import ArchsearchError

PREFIX = "hf:"
INSTALL = "pip install 'archsearch[hf]'"


def is_hf_corpus(spec: str) -> bool:
    """A ``hf:`` spec, or a folder written by ``save_to_disk``."""
    if spec.startswith(PREFIX):
        return True
    path = Path(spec).expanduser()
    return path.is_dir() and any((path / f).is_file() for f in ("state.json",
                                                                  "dataset_dict.json"))


def parse_hf_spec(spec: str) -> tuple[str, str | None, str]:
    """``hf:NAME[:CONFIG]:SPLIT`` -> (name, config or None, split)."""
    parts = spec[len(PREFIX):].split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise ArchsearchError(f"data.corpus: {spec!r}: expected hf:NAME:SPLIT or "
                              "hf:NAME:CONFIG:SPLIT, e.g. hf:HuggingFaceFW/fineweb-edu:"
                              "sample-10BT:train")
    if len(parts) == 2:
        return parts[0], None, parts[1]
    return parts[0], parts[1], parts[2]


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ArchsearchError(f"data.corpus: hf: corpora and datasets folders need the "
                              f"'datasets' package: {INSTALL}") from None
    return datasets


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _open(spec: str) -> Any:
    """The dataset (streamed, or memory-mapped from disk) a spec names."""
    datasets = _datasets()
    if spec.startswith(PREFIX):
        from archsearch.hub import require_hub

        name, config, split = parse_hf_spec(spec)
        if not Path(name).expanduser().is_dir():
            require_hub(name, "data.corpus", repo_type="dataset")
        try:
            return datasets.load_dataset(name, config, split=split, streaming=True)
        except (OSError, ValueError, KeyError) as err:  # unknown config or split, bad files
            raise ArchsearchError(f"data.corpus: {spec}: {_first_line(err)}") from None
    path = Path(spec).expanduser()
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        raise ArchsearchError(f"data.corpus: {spec} holds the splits {', '.join(splits)}; "
                              f"name one, e.g. {path / (splits[0] if splits else 'train')}")
    try:
        return datasets.load_from_disk(str(path))
    except (OSError, ValueError, FileNotFoundError) as err:
        raise ArchsearchError(f"data.corpus: {spec}: not a readable datasets folder "
                              f"({_first_line(err)})") from None


def iter_hf_documents(spec: str, text_field: str = "text") -> Iterator[Document]:
    """The documents of a ``hf:`` spec or ``save_to_disk`` folder, in the dataset's order."""
    data = _open(spec)
    columns = list(data.column_names or []) if data.column_names is not None else None
    if columns is not None and text_field not in columns:
        raise ArchsearchError(f"data.corpus: {spec}: no column {text_field!r} (columns: "
                              f"{', '.join(columns[:10])}); set data.text_field")
    count = 0
    for row, record in enumerate(data):
        text = record.get(text_field)
        if text is None:
            continue
        if not isinstance(text, str):
            raise ArchsearchError(f"data.corpus: {spec}: row {row}: column {text_field!r} is "
                                  f"{type(text).__name__}, not a string")
        if text.strip():
            count += 1
            yield Document(text, f"{spec}:row {row}")
    if count == 0:
        raise ArchsearchError(f"data.corpus: {spec}: corpus is empty (no non-blank document)")


def hf_fingerprint(spec: str, text_field: str = "text") -> str:
    """Cache identity of a ``datasets`` corpus: a folder's files (names, sizes, modification
    times); for ``hf:``, the spec (a hub dataset is taken as fixed, like a file that is not
    edited)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(["hf", spec, text_field]).encode())
    path = Path(spec).expanduser()
    if not spec.startswith(PREFIX):
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            st = file.stat()
            h.update(json.dumps([str(file.resolve()), st.st_size, st.st_mtime_ns]).encode())
    return h.hexdigest()
