"""The node-local Triton autotune cache: turned on for GPU trials, saved, and seeded safely."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from archsearch.autotune import (
    AUTOTUNE_ENV,
    CACHE_DIR_ENV,
    read_archive,
    pack_autotune,
    seed_cache,
    use_node_cache,
)
from archsearch.errors import ArchsearchError

CHOICE = b'{"key": [1024, 8, 48], "configs_timings": [[{"num_warps": 4}, 0.01]]}'


def add(tar: tarfile.TarFile, name: str, data: bytes = CHOICE, kind: bytes = tarfile.REGTYPE,
        target: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.type, info.linkname = kind, target
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def test_node_cache_turns_on_autotune_caching_in_the_users_triton_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(AUTOTUNE_ENV, raising=False)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "triton"))
    folder = use_node_cache()
    assert folder == tmp_path / "triton" and folder.is_dir()
    import os

    assert os.environ[AUTOTUNE_ENV] == "1"


def test_choices_saved_on_one_machine_seed_another(tmp_path):
    first = tmp_path / "first"
    (first / "HASH1").mkdir(parents=True)
    (first / "HASH1" / "chunk_fwd_kernel_o.autotune.json").write_bytes(CHOICE)
    (first / "HASH1" / "chunk_fwd_kernel_o.cubin").write_bytes(b"\x7fELF compiled code")
    archive = tmp_path / "autotune.tar"
    archive.write_bytes(pack_autotune(first))  # the choices only, not compiled kernels
    second = tmp_path / "second"
    assert seed_cache(read_archive(archive), second) == 1
    assert (second / "HASH1" / "chunk_fwd_kernel_o.autotune.json").read_bytes() == CHOICE
    assert not (second / "HASH1" / "chunk_fwd_kernel_o.cubin").exists()
    assert seed_cache(read_archive(archive), second) == 0  # what a node already has is kept
    assert pack_autotune(tmp_path / "empty") is None


def test_a_crafted_archive_can_only_add_autotune_choices_inside_the_cache(tmp_path):
    archive = tmp_path / "crafted.tar"
    with tarfile.open(archive, "w") as tar:
        add(tar, "../escaped.autotune.json")
        add(tar, "/tmp/absolute.autotune.json")
        add(tar, "HASH/kernel.so", b"\x7fELF")
        add(tar, "HASH/link.autotune.json", kind=tarfile.SYMTYPE, target="/etc/passwd")
        add(tar, "HASH/huge.autotune.json", b"x" * (2 << 20))
        add(tar, "./HASH/good.autotune.json")
    cache = tmp_path / "sandbox" / "cache"
    assert seed_cache(read_archive(archive), cache) == 1
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["crafted.tar", "sandbox/cache/HASH/good.autotune.json"]


def test_an_unreadable_archive_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "autotune.tar"
    bad.write_bytes(b"not a tar at all")
    with pytest.raises(ArchsearchError, match=r"autotune\.tar: not a readable autotune archive"):
        read_archive(bad)
    with pytest.raises(ArchsearchError, match="missing.tar: not a readable autotune archive"):
        read_archive(Path(tmp_path / "missing.tar"))


def test_a_sweep_keeps_its_machines_choices_and_a_resume_starts_from_them(tmp_path, monkeypatch,
                                                                          capsys):
    from archsearch.sweep.folder import AUTOTUNE_FILE, SweepFolder
    from archsearch.sweep.runner import SweepOptions, _autotune_seed, _keep_autotune

    folder = SweepFolder.at(str(tmp_path / "sweep"))
    assert _autotune_seed(folder, SweepOptions()) is None  # nothing saved yet: tune afresh
    cache = tmp_path / "triton"
    (cache / "HASH").mkdir(parents=True)
    (cache / "HASH" / "l2norm_fwd_kernel.autotune.json").write_bytes(CHOICE)
    monkeypatch.setenv(CACHE_DIR_ENV, str(cache))
    _keep_autotune(folder)
    seed = _autotune_seed(folder, SweepOptions())
    assert seed and seed == (tmp_path / "sweep" / AUTOTUNE_FILE).read_bytes()
    fresh = tmp_path / "fresh-node"
    assert seed_cache(seed, fresh) == 1
    # --autotune-cache wins over the folder's own archive
    given = tmp_path / "given.tar"
    with tarfile.open(given, "w") as tar:
        add(tar, "OTHER/chunk_fwd_kernel_o.autotune.json")
    assert _autotune_seed(folder, SweepOptions(autotune_cache=str(given))) == given.read_bytes()
    # a damaged archive in the folder only costs the speed-up, with a line that names it
    (tmp_path / "sweep" / AUTOTUNE_FILE).write_bytes(b"torn")
    assert _autotune_seed(folder, SweepOptions()) is None
    assert f"{AUTOTUNE_FILE}: not a readable autotune archive" in capsys.readouterr().err
