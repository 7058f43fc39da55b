"""Atomic writes: a failed write leaves the old file whole and no temporary file behind."""

import pytest

from archsearch.atomic import atomic_path, atomic_write_bytes


def test_a_write_that_fails_keeps_the_old_file_and_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "table.parquet"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in target.parent.iterdir()] == ["table.parquet"]
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and len(list(target.parent.iterdir())) == 1
