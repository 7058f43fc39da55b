"""The command line: every verb has --help, user errors are one line with a non-zero exit."""

import subprocess
import sys
from pathlib import Path

import pytest

from archsearch.cli import _parser, main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "search_spaces/quickstart.yaml")


def test_every_verb_has_help(capsys):
    _, verbs = _parser()
    for verb in verbs:
        with pytest.raises(SystemExit) as info:
            main([verb, "--help"])
        assert info.value.code == 0
        assert "usage: archsearch " + verb in capsys.readouterr().out


def test_validate_summarises(capsys):
    assert main(["validate", QUICKSTART]) == 0
    out = capsys.readouterr().out
    assert "valid search space 'quickstart'" in out
    assert "8 distinct candidates" in out
    assert "semantic_loss (min), copy_loss (min)" in out


def test_patterns_lists_one_row_per_candidate(capsys):
    assert main(["patterns", QUICKSTART]) == 0
    out = capsys.readouterr().out
    for pattern in ("A*8", "G*8", "GGGAGGGA"):
        assert f"\n{pattern} " in out


def test_user_errors_are_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntraining: {lr: fast}\npatterns: {candidates: [GA]}\n")
    result = subprocess.run([sys.executable, "-m", "archsearch.cli", "validate", str(bad)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "bad.yaml:2: training.lr: expected a number" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_verb_exits_non_zero():
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code != 0


def test_patterns_prints_the_olmo_hybrid_7b_parameter_count(capsys):
    assert main(["patterns", str(ROOT / "search_spaces/olmo_hybrid_7b.yaml")]) == 0
    out = capsys.readouterr().out
    assert "(GGGA)*8" in out
    assert "7,430,870,688" in out
    assert "7,045,519,008" in out


def test_tag_counts_categories_and_writes_the_table(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "tokens.parquet"
    assert main(["tag", "builtin", "--max-documents", "20", "--out", str(out)]) == 0
    summary = capsys.readouterr().out
    for category in ("content", "function", "copy_4_7"):
        assert category in summary
    table = pd.read_parquet(out)
    assert {"doc", "position", "token", "text", "category", "copy", "copy_run"} <= set(table.columns)
    assert table["doc"].nunique() == 20


def test_tag_missing_corpus_is_one_line(tmp_path, capsys):
    assert main(["tag", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert "missing.txt" in err and err.count("\n") == 1
