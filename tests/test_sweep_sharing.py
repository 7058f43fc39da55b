"""A sweep folder is data, not code: crafted pickles planted wherever a sweep folder could hold
one never run, whichever verb opens the folder (resume, report, recommend, scale --from,
export --from), and a checkpoint that is a crafted pickle is refused by the real trainer."""

import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from archsearch.cli import main
from archsearch.errors import CheckpointUnreadable
from archsearch.scaling.run import run_scale
from archsearch.sweep import resume_sweep, run_sweep
from archsearch.testing.standin import SyntheticTrainer

SPACE = """
name: shared
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["AA", "GG", "GA"]}
data: {seq_len: 16}
training: {tokens: 640, batch_size: 2, checkpoint_every: 5}
evaluation: {every: 5}
objectives:
  - {metric: semantic_loss, mode: min}
  - {metric: copy_loss, mode: min}
search: {algorithm: grid, samples: 3, concurrency: 2, seed: 0}
"""
LADDER = SPACE.replace("name: shared", "name: shared-ladder") + """
ladder:
  rungs: [{d_model: 16, depth: 2}, {d_model: 32, depth: 2}]
  min_tokens: 320
  max_tokens: 640
"""


class Payload:
    """Unpickling this creates ``marker``: proof that a pickle in the folder was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _plant(folder: Path, marker: Path) -> list[Path]:
    data = pickle.dumps(Payload(marker))
    run = sorted((folder / "runs").iterdir())[0]
    trial = sorted(p for p in run.iterdir() if p.is_dir())[0]
    checkpoint = sorted(trial.glob("checkpoint_*"))[-1]
    places = [folder / "tuner.pkl", folder / "searcher-state-2026.pkl",
              folder / "experiment_state-2026.pkl", run / "tuner.pkl",
              run / "searcher-state-2026.pkl", run / "scheduler.pkl", trial / "params.pkl",
              trial / "error.pkl", trial / "result.pkl", checkpoint / "trainer_state.pt",
              checkpoint / "state.pkl", folder / "data_cache" / "evil.pkl",
              folder / "data_cache" / "train_tokens.npy"]
    for place in places:
        place.parent.mkdir(parents=True, exist_ok=True)
        place.write_bytes(data)
    np.save(folder / "data_cache" / "tokens.npy", np.array([Payload(marker)], dtype=object),
            allow_pickle=True)
    return places


@pytest.fixture()
def shared_folder(tmp_path):
    """A finished sweep folder as a colleague would hand it over, with pickles planted."""
    (tmp_path / "space.yaml").write_text(SPACE)
    outcome = run_sweep(str(tmp_path / "space.yaml"), storage=str(tmp_path / "theirs"),
                        train_fn=SyntheticTrainer())
    assert outcome.finished
    # copied to another place: a moved folder must work as well as one left in place
    folder = tmp_path / "mine" / "shared"
    shutil.copytree(outcome.folder.local, folder)
    marker = tmp_path / "EXECUTED"
    _plant(folder, marker)
    return folder, marker


def test_no_verb_executes_a_pickle_planted_in_a_sweep_folder(shared_folder, tmp_path, capsys):
    folder, marker = shared_folder
    # One trial left unfinished, so resume really continues it from its (planted) checkpoint.
    trials = pd.read_parquet(folder / "trials.parquet")
    trials.loc[0, "status"] = "running"
    trials.to_parquet(folder / "trials.parquet")
    # ... and its newest checkpoint is damaged in place (same size: it passes the size check)
    newest = sorted((folder / "runs").glob(f"*/{trials.trial_id[0]}/checkpoint_*"))[-1]
    state = newest / "synthetic_state.json"
    state.write_bytes(b"#" * len(state.read_bytes()))
    outcome = resume_sweep(str(folder), train_fn=SyntheticTrainer())
    assert outcome.finished and not marker.exists()
    assert len(outcome.rows) == 3 and {r["status"] for r in outcome.rows} == {"completed"}
    rerun = next(r for r in outcome.rows if r["trial_id"] == trials.trial_id[0])
    assert "is unreadable" in rerun["note"] and "restarted from step 0" in rerun["note"]

    assert main(["report", str(folder), "--out", str(tmp_path / "report")]) == 0
    assert main(["recommend", str(folder)]) == 0
    assert main(["export", "--from", str(folder), "--format", "hf",
                 str(tmp_path / "export")]) == 0
    (tmp_path / "ladder.yaml").write_text(LADDER)
    jobs = []
    run_scale(str(tmp_path / "ladder.yaml"), storage=str(tmp_path / "scales"),
              from_sweep=str(folder), top_k=2, runner=jobs.append)
    assert len(jobs) == 1 and not marker.exists()
    capsys.readouterr()
    assert not marker.exists()


def test_the_trainer_refuses_a_checkpoint_that_is_a_pickle(tmp_path):
    from archsearch.model import HybridLM
    from archsearch.model.checkpoint import save_checkpoint
    from archsearch.model.config import HybridConfig
    from archsearch.space.schema import TrainingSection
    from archsearch.trainer import OPTIMIZER_FILE, _restore, make_optimizer

    config = HybridConfig.from_dict(HybridConfig.from_dict(_tiny_config()).to_dict())
    model = HybridLM(config)
    folder = save_checkpoint(model, tmp_path / "checkpoint_0000010")
    marker = tmp_path / "EXECUTED"
    (folder / OPTIMIZER_FILE).write_bytes(pickle.dumps(Payload(marker), protocol=2))
    optimizer = make_optimizer(model, TrainingSection())
    with pytest.raises(CheckpointUnreadable, match="checkpoint_0000010 is unreadable"):
        _restore(model, optimizer, folder, torch.device("cpu"))
    assert not marker.exists()


def _tiny_config() -> dict:
    from archsearch.space import SearchSpace
    from archsearch.space.build import hybrid_config

    space = SearchSpace.from_text(SPACE)
    return hybrid_config(space.resolve({"pattern": "GA"}), 64).to_dict()
