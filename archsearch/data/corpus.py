"""Reading a corpus: documents from text, JSONL and parquet files, one document at a time.

Documents stay units all the way through (an end-of-document token between them in the token
stream; copy matches never cross them; the train/validation split is by document), so every
reader yields whole documents. Nothing reads a file whole when it can stream: text and JSONL
are read line by line, parquet in record batches of the one column needed.

Formats (``data.format``; ``auto`` picks by extension):

- ``text`` (``.txt``, ``.md``, ``.text``, anything unknown; ``.gz`` allowed): each file is one
  document, or several separated by a line holding only ``<|endoftext|>``.
- ``jsonl`` (``.jsonl``, ``.ndjson``, ``.json``; ``.gz`` allowed): one JSON object per line,
  the text in field ``data.text_field``.
- ``parquet`` (``.parquet``, ``.pq``): the text in column ``data.text_field``.
- ``hf:NAME[:CONFIG]:SPLIT`` and folders written by ``datasets``' ``save_to_disk``: read by
  ``data/hf.py`` (the optional ``datasets`` package), column ``data.text_field``.

Every bad input raises ``ArchsearchError`` naming the file (and line, or column).
Whitespace-only documents are skipped.

Length caps, so that no file can exhaust memory or hang the tokenizer: a document longer than
``MAX_DOCUMENT_CHARS`` characters is cut into consecutive documents of at most that length
(origin ``file:line part 2`` ...; nothing is dropped, but copy matches do not cross a cut).
Text files are read ``READ_BYTES`` at a time, so a file that is one endless line streams like
any other; a JSONL line longer than ``MAX_JSONL_LINE_BYTES`` is an error naming it.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from archsearch.errors import ArchsearchError

DOC_SEPARATOR_LINE = "<|endoftext|>"
TEXT_EXTENSIONS = (".txt", ".text", ".md")
JSONL_EXTENSIONS = (".jsonl", ".ndjson", ".json")
PARQUET_EXTENSIONS = (".parquet", ".pq")
KNOWN_EXTENSIONS = TEXT_EXTENSIONS + JSONL_EXTENSIONS + PARQUET_EXTENSIONS
FORMATS = ("auto", "text", "jsonl", "parquet")
# about 250k tokens: far beyond any proxy's context, small enough for one tokenizer call
MAX_DOCUMENT_CHARS = 1_000_000
READ_BYTES = 1 << 20  # a line is read at most this many bytes at a time
MAX_JSONL_LINE_BYTES = 64 << 20  # a JSON record is parsed whole: refuse a line longer than this


@dataclass(frozen=True)
class Document:
    """One document's text and where it came from (``file`` or ``file:line``), for messages."""

    text: str
    origin: str


def _is_glob(spec: str) -> bool:
    return any(ch in spec for ch in "*?[")


def resolve_files(spec: str) -> list[Path]:
    """The files a corpus spec names: a file, a folder (recursively, known extensions), a glob.

    Sorted, so document order and the split are the same on every machine.
    """
    if _is_glob(spec):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True)
                       if Path(p).is_file())
        if not files:
            raise ArchsearchError(f"{spec}: no file matches this pattern")
        return files
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _known(p))
        if not files:
            raise ArchsearchError(
                f"{spec}: folder holds no corpus file ({', '.join(KNOWN_EXTENSIONS)})")
        return files
    if not path.exists():
        raise ArchsearchError(f"{spec}: no such file or folder")
    return [path]


def _known(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith(KNOWN_EXTENSIONS)


def file_format(path: Path, fmt: str = "auto") -> str:
    """The format a file is read in: ``fmt`` unless ``auto``, else by extension."""
    if fmt not in FORMATS:
        raise ArchsearchError(f"data.format: unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if fmt != "auto":
        return fmt
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(JSONL_EXTENSIONS):
        return "jsonl"
    if name.endswith(PARQUET_EXTENSIONS):
        return "parquet"
    return "text"


def _open_binary(path: Path) -> IO[bytes]:
    try:
        if path.name.lower().endswith(".gz"):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except FileNotFoundError:
        raise ArchsearchError(f"{path}: no such file") from None
    except OSError as err:
        raise ArchsearchError(f"{path}: cannot read: {err.strerror or err}") from None


def _decode(raw: bytes, path: Path, line_no: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ArchsearchError(
            f"{path}:{line_no}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
            f"{err.start + 1})") from None


def _read_pieces(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(line number, bytes, whole)``: each line, in pieces of at most ``READ_BYTES`` when it is
    longer (``whole`` is True for a line read in one piece)."""
    with _open_binary(path) as f:
        line_no, continued = 1, False
        try:
            while raw := f.readline(READ_BYTES):
                ends = raw.endswith(b"\n")
                yield line_no, raw, ends and not continued
                continued = not ends
                line_no += ends
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise ArchsearchError(f"{path}: cannot read: {err}") from None


def _read_lines(path: Path, max_bytes: int) -> Iterator[tuple[int, bytes]]:
    """Whole lines; a line longer than ``max_bytes`` is an error naming it."""
    held: list[bytes] = []
    size = 0
    for line_no, raw, whole in _read_pieces(path):
        if whole:
            yield line_no, raw
            continue
        held.append(raw)
        size += len(raw)
        if size > max_bytes:
            raise ArchsearchError(f"{path}:{line_no}: line longer than {max_bytes >> 20} MB; "
                                  "split the record")
        if raw.endswith(b"\n"):
            yield line_no, b"".join(held)
            held, size = [], 0
    if held:
        yield line_no, b"".join(held)


def read_text_file(path: Path) -> Iterator[Document]:
    """Documents of a plain-text file (separated by ``<|endoftext|>`` lines, if any), each at
    most ``MAX_DOCUMENT_CHARS`` long (a longer one continues in the next)."""
    parts: list[str] = []
    size, start, part = 0, 1, 1
    decoder = codecs.getincrementaldecoder("utf-8")()
    column = 0  # bytes of the current line in earlier pieces
    for line_no, raw, whole in _read_pieces(path):
        try:
            line = decoder.decode(raw)
        except UnicodeDecodeError as err:
            byte = raw[min(err.start, len(raw) - 1)]
            raise ArchsearchError(f"{path}:{line_no}: not valid UTF-8 (byte 0x{byte:02x} at "
                                  f"column {column + err.start + 1})") from None
        column = 0 if raw.endswith(b"\n") else column + len(raw)
        if whole and line.strip() == DOC_SEPARATOR_LINE:
            text = "".join(parts)
            if text.strip():
                yield Document(text, _origin(path, start, part))
            parts, size, start, part = [], 0, line_no + 1, 1
            continue
        parts.append(line)
        size += len(line)
        while size >= MAX_DOCUMENT_CHARS:  # an overlong document continues in the next one
            text = "".join(parts)
            if text[:MAX_DOCUMENT_CHARS].strip():
                yield Document(text[:MAX_DOCUMENT_CHARS], _origin(path, start, part))
                part += 1
            parts = [text[MAX_DOCUMENT_CHARS:]]
            size = len(parts[0])
    text = "".join(parts) + decoder.decode(b"", final=True)
    if text.strip():
        yield Document(text, _origin(path, start, part))


def _origin(path: Path, line: int, part: int) -> str:
    return f"{path}:{line}" + (f" part {part}" if part > 1 else "")


def _cut(docs: Iterator[Document]) -> Iterator[Document]:
    """Each document, cut into pieces of at most ``MAX_DOCUMENT_CHARS`` characters."""
    for doc in docs:
        if len(doc.text) <= MAX_DOCUMENT_CHARS:
            yield doc
            continue
        for k, i in enumerate(range(0, len(doc.text), MAX_DOCUMENT_CHARS), start=1):
            piece = doc.text[i:i + MAX_DOCUMENT_CHARS]
            if piece.strip():
                yield Document(piece, doc.origin + (f" part {k}" if k > 1 else ""))


def read_jsonl_file(path: Path, text_field: str) -> Iterator[Document]:
    """Documents of a JSONL file: the string in ``text_field`` of each line's object."""
    for line_no, raw in _read_lines(path, MAX_JSONL_LINE_BYTES):
        line = _decode(raw, path, line_no)
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ArchsearchError(
                f"{path}:{line_no}: not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(record, dict):
            raise ArchsearchError(
                f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
        if text_field not in record:
            fields = ", ".join(sorted(map(str, record))[:10]) or "none"
            raise ArchsearchError(
                f"{path}:{line_no}: no field {text_field!r} (fields: {fields}); "
                "set data.text_field")
        text = record[text_field]
        if text is None:
            continue
        if not isinstance(text, str):
            raise ArchsearchError(
                f"{path}:{line_no}: field {text_field!r} is {type(text).__name__}, not a string")
        if text.strip():
            yield Document(text, f"{path}:{line_no}")


def read_parquet_file(path: Path, text_field: str, batch_rows: int = 1024) -> Iterator[Document]:
    """Documents of a parquet file, column ``text_field``, read in record batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except FileNotFoundError:
        raise ArchsearchError(f"{path}: no such file") from None
    except (OSError, pa.ArrowException) as err:
        raise ArchsearchError(f"{path}: not a readable parquet file ({err})") from None
    names = pf.schema_arrow.names
    if text_field not in names:
        raise ArchsearchError(
            f"{path}: no column {text_field!r} (columns: {', '.join(names[:10])}); "
            "set data.text_field")
    col_type = pf.schema_arrow.field(text_field).type
    if not (pa.types.is_string(col_type) or pa.types.is_large_string(col_type)
            or pa.types.is_string_view(col_type)):
        raise ArchsearchError(f"{path}: column {text_field!r} is {col_type}, not a string")
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=[text_field]):
            for text in batch.column(0).to_pylist():
                row += 1
                if text is not None and text.strip():
                    yield Document(text, f"{path}:row {row}")
    except (OSError, pa.ArrowException) as err:
        raise ArchsearchError(f"{path}: cannot read column {text_field!r} ({err})") from None


def iter_file_documents(path: Path, fmt: str = "auto", text_field: str = "text") -> Iterator[Document]:
    """Documents of one file in the given (or detected) format."""
    kind = file_format(path, fmt)
    if kind == "text":
        return read_text_file(path)
    if kind == "jsonl":
        return _cut(read_jsonl_file(path, text_field))
    return _cut(read_parquet_file(path, text_field))


def iter_documents(spec: str, fmt: str = "auto", text_field: str = "text") -> Iterator[Document]:
    """Every document of a corpus spec (file, folder or glob), in a stable order.

    Raises ``ArchsearchError`` if the spec names no file or the corpus holds no document.
    ``hf:NAME[:CONFIG]:SPLIT`` and ``save_to_disk`` folders are read by ``data.hf``.
    """
    from archsearch.data.hf import is_hf_corpus, iter_hf_documents

    if is_hf_corpus(spec):
        yield from iter_hf_documents(spec, text_field)
        return
    files = resolve_files(spec)
    count = 0
    for path in files:
        for doc in iter_file_documents(path, fmt, text_field):
            count += 1
            yield doc
    if count == 0:
        raise ArchsearchError(f"{spec}: corpus is empty (no non-blank document)")


def corpus_fingerprint(spec: str, fmt: str = "auto", text_field: str = "text") -> str:
    """A cheap identity of a file corpus: paths, sizes and modification times, plus settings.

    Used as a cache key: editing, adding or removing a file changes it; reading the data does
    not (so a cached tokenizer or token store stays cheap to find for a large corpus).
    """
    from archsearch.data.hf import hf_fingerprint, is_hf_corpus

    if is_hf_corpus(spec):
        return hf_fingerprint(spec, text_field)
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps([fmt, text_field]).encode())
    for path in resolve_files(spec):
        try:
            st = path.stat()
        except OSError as err:
            raise ArchsearchError(f"{path}: cannot read: {err.strerror or err}") from None
        h.update(json.dumps([str(path.resolve()), st.st_size, st.st_mtime_ns]).encode())
    return h.hexdigest()
