"""A tiny ladder end to end on CPU: real proxies trained through Ray Tune, fitted, recommended,
exported. Three rungs x two patterns x one seed, a few hundred tokens each (about a minute)."""

import json
from pathlib import Path

import pandas as pd

from archsearch.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "search_spaces/ladder_quickstart.yaml")
TINY = [
    "data.builtin_documents=80", "data.vocab_size=300", "data.seq_len=32",
    "data.probes=[]", "data.probe_fraction=0", "training.batch_size=2",
    "evaluation.validation_tokens=256", "evaluation.bootstrap=10",
    'patterns.generate.ratios=["3:1"]', "ladder.seeds=[0]",
    "ladder.min_tokens=128", "ladder.max_tokens=384", "ladder.bootstrap=20",
    "ladder.rungs=[{d_model: 8, depth: 4}, {d_model: 16, depth: 4}, {d_model: 16, depth: 8}]",
]


def test_tiny_ladder_trains_fits_recommends_and_exports(tmp_path, capsys):
    args = ["scale", QUICKSTART, "--storage", str(tmp_path)]
    for override in TINY:
        args += ["--set", override]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "6 ladder points: 6 completed, 0 failed" in out
    folder = tmp_path / "ladder_quickstart-scale"
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 6 and set(trials["status"]) == {"completed"}
    assert set(trials["pattern"]) == {"A*4", "A*8", "GGGA", "GGGAGGGA"}
    # `archsearch resume` continues a scale folder too; here nothing is left to run
    assert main(["resume", str(folder)]) == 0
    assert "6 ladder points: 6 completed, 0 failed" in capsys.readouterr().out

    assert main(["recommend", str(folder), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["source"] == "scale"
    assert rec["best"]["at_target"] in ("A*32", "(GGGA)*8")
    # a recommendation only when the margin's interval excludes 0 (one seed, 20 resamples)
    assert (rec["recommended"] is not None) == rec["resolved"]
    assert len(rec["ranking"]) == 2 and set(rec["stability"]) == {
        "semantic_loss", "copy_loss", "score"}
    assert main(["recommend", str(folder)]) == 0
    text = capsys.readouterr().out
    assert ("recommended:" in text) == rec["resolved"]
    assert ("not resolved: no recommendation" in text) == (not rec["resolved"])

    export = tmp_path / "hf"
    assert main(["export", "--from", str(folder), "--format", "hf", str(export)]) == 0
    config = json.loads((export / "config.json").read_text())
    assert config["num_hidden_layers"] == 32 and config["hidden_size"] == 3840
    info = json.loads((export / "export.json").read_text())
    assert info["pattern"] == rec["best"]["at_target"]
    assert info["resolved"] is None  # export fits once, without the bootstrap: not checked
