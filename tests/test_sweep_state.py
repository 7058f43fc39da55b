"""The sweep folder's plain state, piece by piece: journal repair, table rebuilds, the results
writer's never-shrink rule, the folder lock, resumable ASHA rungs and the process watchdog."""

import json
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from archsearch.errors import ArchsearchError
from archsearch.space import SearchSpace
from archsearch.sweep import watchdog
from archsearch.sweep.asha import Rungs, make_scheduler
from archsearch.sweep.folder import SweepFolder
from archsearch.sweep.journal import JournalError, open_study, repair_journal
from archsearch.sweep.lock import FolderInUse
from archsearch.sweep.results import ResultsWriter, read_table, write_table
from archsearch.sweep.search import make_sampler
from archsearch.sweep.tables import load_tables
from archsearch.sweep.trainable import RUN_KEY
from archsearch.sweep.watchdog import processes

SPACE = SearchSpace.from_text("""
name: state
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["AA", "GG"]}
training: {tokens: 640, batch_size: 2, lr: {choices: [0.001, 0.003]}}
data: {seq_len: 16}
evaluation: {every: 2}
objectives: [{metric: semantic_loss}, {metric: copy_loss}]
search: {algorithm: random, samples: 4, seed: 0, asha: {metric: val_loss, grace_period: 1}}
""")


def _study(path):
    return open_study(path, ["min", "min"], make_sampler(SPACE))


def _journal_with_trials(path, n=3):
    study = _study(path)
    for i in range(n):
        trial = study.ask()
        SPACE.suggest(trial)
        trial.set_user_attr("fidelity", 1.0)
        study.tell(trial, [1.0 + i, 2.0])
    return study


# ---------------------------------------------------------------- the journal


def test_a_torn_last_record_is_dropped_with_a_warning_and_the_study_goes_on(tmp_path):
    path = tmp_path / "optuna.journal"
    _journal_with_trials(path, 2)
    intact = path.read_bytes()
    path.write_bytes(intact + b'{"op_code": 4, "worker_id": "x", "study_id"')  # killed mid-write
    Path_lock = tmp_path / "optuna.journal.lock"
    Path_lock.symlink_to(tmp_path / "nowhere")  # Optuna's lock, left by the killed driver
    warning = repair_journal(path)
    assert "dropped its torn last record (record" in warning and "optuna.journal.torn-" in warning
    assert path.read_bytes() == intact and not Path_lock.is_symlink()
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("optuna.journal.torn-")]
    assert len(kept) == 1 and kept[0].read_bytes().startswith(intact)
    study = _study(path)
    assert len(study.trials) == 2
    study.tell(study.ask(), [5.0, 5.0])  # appending works again
    assert len(_study(path).trials) == 3
    assert repair_journal(path) is None  # an intact journal is left alone


def test_a_complete_but_corrupt_last_line_is_dropped_too(tmp_path):
    path = tmp_path / "optuna.journal"
    _journal_with_trials(path, 1)
    intact = path.read_bytes()
    path.write_bytes(intact + b"\x00\x00garbage\n")
    assert "dropped" in repair_journal(path)
    assert path.read_bytes() == intact


def test_damage_before_the_last_record_is_refused_in_one_line(tmp_path):
    path = tmp_path / "optuna.journal"
    _journal_with_trials(path, 2)
    lines = path.read_bytes().split(b"\n")
    lines[1] = b"not json"
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(JournalError, match=r"record 2 of \d+ is not a valid Optuna journal") as err:
        repair_journal(path)
    assert "\n" not in str(err.value)


def test_a_journal_optuna_cannot_replay_is_one_line_not_a_traceback(tmp_path):
    path = tmp_path / "optuna.journal"
    path.write_text('{"op_code": 4, "nonsense": true}\n')
    with pytest.raises(JournalError, match="the Optuna journal cannot be read") as err:
        _study(path)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------- the tables


def _row(trial_id, status, step, **metrics):
    return {"trial_id": trial_id, "pattern": "AA", "status": status, "step": step,
            "fidelity": step / 20, "param.pattern": "AA", "param.training.lr": 0.001, **metrics}


def test_an_unreadable_trials_table_is_kept_aside_and_rebuilt(tmp_path, capsys):
    folder = SweepFolder.under(str(tmp_path), "s")
    study = _journal_with_trials(folder.local / "optuna.journal", 3)
    curves = [{"trial_id": f"t{i:04d}", "step": s, "tokens_seen": s * 32, "wall_time_s": 1.0,
               "val_loss": 3.0 - s / 10, "semantic_loss": 1.0 + i, "copy_loss": 2.0}
              for i in range(3) for s in (10, 20)]
    write_table(folder, "curves.parquet", curves, ["trial_id", "step"], [])
    write_table(folder, "trials.parquet", [_row("t0000", "completed", 20)], ["trial_id"], [])
    good = (folder.local / "trials.parquet").read_bytes()
    (folder.local / "trials.parquet").write_bytes(good[: len(good) // 2])  # truncated
    tables = load_tables(folder, SPACE, study)
    assert any("trials.parquet rebuilt: 3 trials" in w for w in tables.warnings)
    assert any("cannot be read" in w and "unreadable-" in w for w in tables.warnings)
    assert [p.name for p in folder.local.iterdir() if ".unreadable-" in p.name]
    rebuilt = tables.trials
    assert sorted(rebuilt) == ["t0000", "t0001", "t0002"]
    assert {r["status"] for r in rebuilt.values()} == {"completed"}
    assert rebuilt["t0001"]["semantic_loss"] == 2.0 and rebuilt["t0001"]["val_loss"] == 1.0
    assert rebuilt["t0002"]["step"] == 20 and rebuilt["t0002"]["param.pattern"] in ("AA", "GG")
    assert (folder.local / "curves.parquet.bak").is_file()  # the readable one was backed up


def test_an_unreadable_table_with_nothing_to_rebuild_from_is_refused(tmp_path):
    folder = SweepFolder.under(str(tmp_path), "s")
    study = _study(folder.local / "optuna.journal")
    (folder.local / "trials.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ArchsearchError, match="move it away to start the results afresh"):
        load_tables(folder, SPACE, study)


def _trial(trial_id, result=None):
    return SimpleNamespace(config={"pattern": "AA", "training.lr": 0.001,
                                   RUN_KEY: {"trial_id": trial_id}},
                           last_result=result, num_failures=0)


def test_the_results_writer_never_shrinks_a_table(tmp_path):
    folder = SweepFolder.under(str(tmp_path), "s")
    full = {f"t{i:04d}": _row(f"t{i:04d}", "completed", 20, semantic_loss=1.0, copy_loss=2.0)
            for i in range(3)}
    curves = {(k, 20): {"trial_id": k, "step": 20, "semantic_loss": 1.0} for k in full}
    writer = ResultsWriter(folder, SPACE, dict(full), dict(curves), run="001")
    writer.write()
    # A later run that knows no trial, then one that replays an old one at an earlier step.
    empty = ResultsWriter(folder, SPACE, {r["trial_id"]: r for r in read_table(folder,
                          "trials.parquet")}, {}, run="002")
    empty.on_experiment_end([])
    old = _trial("t0001", {"step": 10, "fidelity": 0.5, "semantic_loss": 9.0})
    empty.on_trial_start(0, [], old)
    empty.on_trial_result(0, [], old, {"step": 10, "fidelity": 0.5, "semantic_loss": 9.0})
    empty.on_trial_complete(0, [], old)
    rows = {r["trial_id"]: r for r in read_table(folder, "trials.parquet")}
    assert sorted(rows) == sorted(full)
    assert all(r["status"] == "completed" and r["step"] == 20 for r in rows.values())
    assert rows["t0001"]["semantic_loss"] == 1.0


def test_why_a_trial_was_not_graphed_reaches_its_row(tmp_path):
    """The trainer's text on a refused or failed CUDA graph lands in ``cuda_graph_note`` (a
    string beside the numeric metrics), so a table with ``cuda_graph`` 0 says why; the GDN
    kernel's name lands in ``gdn_kernel`` the same way."""
    folder = SweepFolder.under(str(tmp_path), "s")
    writer = ResultsWriter(folder, SPACE, {}, {}, run="001")
    trial = _trial("t0000")
    writer.on_trial_start(0, [], trial)
    why = "no CUDA graph: it would need about 42.0 GiB"
    result = {"step": 10, "fidelity": 0.5, "semantic_loss": 2.0, "cuda_graph": 0.0,
              "cuda_graph_note": why, "gdn_kernel": "flashqla"}
    writer.on_trial_result(0, [], trial, result)
    writer.write()  # results are written at most so often: now, for the test
    row = read_table(folder, "trials.parquet")[0]
    assert row["cuda_graph"] == 0.0 and row["cuda_graph_note"] == why
    assert row["gdn_kernel"] == "flashqla"  # which kernel ran the GDN layers, also text
    curve = read_table(folder, "curves.parquet")[0]
    assert "cuda_graph_note" not in curve and "gdn_kernel" not in curve  # numbers only


# ---------------------------------------------------------------- the lock


def test_a_second_driver_is_refused_naming_the_holder_and_a_dead_ones_lock_is_taken(tmp_path):
    folder = SweepFolder.under(str(tmp_path), "s")
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time\n"
         "from archsearch.sweep.folder import SweepFolder\n"
         f"with SweepFolder.at({folder.location!r}).lock('resume'):\n"
         "    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUse) as err, folder.lock("sweep"):
            pass
        message = str(err.value)
        assert f"'archsearch resume' (pid {holder.pid} on" in message and "\n" not in message
    finally:
        holder.kill()
        holder.wait()
    with folder.lock("resume"):  # the killed holder's lock went with it
        info = json.loads((folder.local / ".archsearch.lock").read_text())
        assert info["pid"] == os.getpid() and info["verb"] == "resume"


# ---------------------------------------------------------------- ASHA


def test_rungs_decide_like_rays_asha():
    import numpy as np
    from ray.tune.schedulers.async_hyperband import _Bracket

    rng = np.random.default_rng(0)
    ours = Rungs(grace=1, max_t=27, reduction_factor=3, mode="min")
    ray_bracket = _Bracket(min_t=1, max_t=27, reduction_factor=3, s=0)
    stopped: set[int] = set()
    for t in range(1, 27):
        for trial in range(12):
            if trial in stopped:
                continue
            value = float(rng.normal(trial / 10, 1.0))
            keep = ours.decide(str(trial), t, value)
            ray_keep = ray_bracket.on_result(SimpleNamespace(trial_id=str(trial)), t,
                                             -value) == "CONTINUE"
            assert keep == ray_keep, (t, trial)
            if not keep:
                stopped.add(trial)
    assert 0 < len(stopped) < 12


def test_a_resumed_asha_starts_from_the_curves_of_earlier_runs():
    history = [(f"old{i}", {"pattern": "AA", "training.lr": 0.001},
                {"step": 2, "val_loss": float(i)}) for i in range(4)]
    scheduler = make_scheduler(SPACE, history)
    assert len(scheduler.rungs.recorded[1]) == 4  # every=2: step 2 is the first evaluation
    bad = SimpleNamespace(config={"pattern": "AA", "training.lr": 0.001,
                                  RUN_KEY: {"trial_id": "new"}})
    assert scheduler.on_trial_result(None, bad, {"step": 2, "val_loss": 9.0}) == "STOP"
    good = SimpleNamespace(config={**bad.config, RUN_KEY: {"trial_id": "new2"}})
    assert scheduler.on_trial_result(None, good, {"step": 2, "val_loss": -1.0}) == "CONTINUE"


# ---------------------------------------------------------------- the watchdog


def test_the_watchdog_ends_what_a_killed_driver_started_and_nothing_older():
    driver = subprocess.Popen(
        [sys.executable, "-c",
         ("import importlib.util, subprocess, sys, time\n"
         # the module alone, not the package (which imports Ray: seconds)
         f"spec = importlib.util.spec_from_file_location('wd', {watchdog.__file__!r})\n"
         "wd = importlib.util.module_from_spec(spec); spec.loader.exec_module(wd)\n"
         "Watchdog = wd.Watchdog\n"
         "sleep = [sys.executable, '-c', 'import time; time.sleep(60)']\n"
         "older = subprocess.Popen(sleep)\n"
         "dog = Watchdog.start()\n"
         "child = subprocess.Popen([sys.executable, '-c', "
         "'import subprocess, sys, time; subprocess.Popen([sys.executable, \"-c\", "
         "\"import time; time.sleep(60)\"]); time.sleep(60)'])\n"
         "print(older.pid, flush=True)\n"
         "time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    older = int(driver.stdout.readline())
    try:
        time.sleep(1.5)  # the watchdog notes new processes every half second
        table = processes()
        children = {p for p, (pp, _) in table.items() if pp == driver.pid} - {older}
        started = children | {p for p, (pp, _) in table.items() if pp in children}
        assert len(started) >= 3  # the watchdog, the child and its child
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 5
        while set(processes()) & started and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not set(processes()) & started, "processes outlived the killed driver"
        assert older in processes()  # started before the watchdog: not the sweep's, left alone
    finally:
        os.kill(older, signal.SIGKILL)
