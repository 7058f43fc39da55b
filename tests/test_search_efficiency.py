"""benchmarks/search_efficiency.py: replaying search strategies on a fully trained grid.

Synthetic grids whose answers are known by construction, plus the committed GPU calibration grid
(docs/results/calibration) for the folder reader and the command line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from archsearch.analysis.resolution import SEED_PARAM, resolve
from archsearch.errors import ArchsearchError
from archsearch.space.schema import AshaSection, Objective
from archsearch.sweep.asha import Rungs

ROOT = Path(__file__).resolve().parents[1]
CALIBRATION = ROOT / "docs" / "results" / "calibration"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("search_efficiency",
                                                  ROOT / "benchmarks" / "search_efficiency.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


se = _load_benchmark()


def make_grid(means: dict[str, float], *, spread: float = 0.01, cost: float = 1.0,
              curves: dict[str, list[float]] | None = None, asha: AshaSection | None = None,
              every: int = 10) -> se.Grid:
    """Two seeds per pattern at mean -+ spread on every metric; every trial costs ``cost``.
    ``curves``: per pattern, the val_loss at each evaluation (both seeds share it)."""
    rows, curve_frames = [], {}
    for i, (pattern, mean) in enumerate(means.items()):
        for seed, value in ((0, mean - spread), (1, mean + spread)):
            trial_id = f"t{i}s{seed}"
            rows.append({"trial_id": trial_id, "pattern": pattern, "seed": seed,
                         "semantic_loss": value, "val_loss": value, "copy_loss": value,
                         "flops": cost, "device_s": 10.0, "status": "completed",
                         "fidelity": 1.0})
            if curves and pattern in curves:
                points = curves[pattern]
                n = len(points)
                curve_frames[trial_id] = pd.DataFrame({
                    "step": [every * (k + 1) for k in range(n)],
                    "val_loss": points, "semantic_loss": points, "copy_loss": points,
                    "flops": [cost * (k + 1) / n for k in range(n)],
                    "device_s": [10.0 * (k + 1) / n for k in range(n)]})
    max_t = max((len(c) for c in (curves or {}).values()), default=1)
    return se.Grid(pd.DataFrame(rows), curve_frames,
                   (Objective("semantic_loss"), Objective("copy_loss")),
                   asha or AshaSection(), every, max_t)


FOUR = {"P0": 1.0, "P1": 2.0, "P2": 3.0, "P3": 4.0}  # P0 alone is best, far beyond the noise


def test_found_set_is_analysis_resolution_tied_set():
    grid = make_grid({"best": 1.00, "close": 1.005, "far": 1.5, "farther": 2.0}, spread=0.01)
    found = se.targets(grid, "semantic_loss", "min")
    frame = grid.trials.assign(**{SEED_PARAM: grid.trials["seed"]})
    assert found == resolve(frame, "semantic_loss", "min").tied
    assert found == ["best", "close"]  # 0.005 apart with seed sd ~0.014: tied; 0.5 apart: not


def test_answer_is_best_seed_mean_and_counts_a_repeated_seed_once():
    seen = pd.DataFrame({"pattern": ["a", "a", "a", "b"], "seed": [0, 0, 1, 0],
                         "val_loss": [1.0, 1.0, 3.0, 1.9]})
    # a: seeds 0 and 1 -> mean 2.0 (the repeat of seed 0 does not count twice); b: 1.9
    assert se.answer(seen, "val_loss", "min") == "b"
    assert se.answer(seen, "val_loss", "max") == "a"


def test_found_at_is_the_compute_when_the_answer_entered_the_found_set_for_good():
    run = se.Run("x", 0, costs=[1, 2, 3, 4], device_s=[1, 1, 1, 1],
                 answers=["P2", "P0", "P1", "P0"])
    assert se.found_at(run, ["P0"], total=20.0) == pytest.approx(10 / 20)  # left P0 at trial 3
    assert se.found_at(run, ["P0", "P1"], total=20.0) == pytest.approx(3 / 20)
    assert se.found_at(run, ["P3"], total=20.0) == math.inf
    assert se.device_s_at(run, ["P0", "P1"]) == 2  # the first two trials


def test_random_search_finds_the_best_when_it_first_draws_it():
    grid = make_grid(FOUR)  # 8 trials of cost 1
    run = se.replay(grid, "random", seed=3, metric="semantic_loss", mode="min")
    # the same draws from a fresh RandomSampler with the same seed, asked the same way
    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=3))
    expected = []
    for _ in range(len(run.asked)):
        trial = study.ask()
        expected.append((trial.suggest_categorical("pattern", grid.patterns),
                         trial.suggest_categorical("training.seed", grid.seeds)))
        study.tell(trial, [0.0, 0.0])
    assert run.asked == expected
    first = next(i for i, (p, _) in enumerate(expected) if p == "P0")
    assert se.found_at(run, ["P0"], grid.total_flops) == pytest.approx((first + 1) / 8)
    assert sum(run.costs) >= grid.total_flops  # ran to its budget: the whole grid's compute


def test_random_search_on_average_matches_the_geometric_first_draw():
    # one of 4 patterns is best: its first draw is geometric with p = 1/4 (about 4 trials, half
    # of the 8-trial grid), capped at the 8 trials the budget allows
    grid = make_grid(FOUR)
    fractions = [se.found_at(se.replay(grid, "random", s, "semantic_loss", "min"), ["P0"], 8.0)
                 for s in range(60)]
    capped = [min(f, 1.0) for f in fractions]
    exact = sum(min(k, 8) * 0.25 * 0.75 ** (k - 1) for k in range(1, 9)) + 8 * 0.75 ** 8
    assert np.mean(capped) == pytest.approx(exact / 8, abs=0.1)


def test_asha_replay_stops_what_the_sweeps_asha_stops():
    curves = {"P0": [3.0, 2.0, 1.5, 1.0], "P1": [3.5, 2.5, 2.2, 2.0],
              "P2": [2.5, 2.4, 2.35, 3.0], "P3": [4.0, 3.9, 3.8, 4.0]}
    asha = AshaSection(metric="val_loss", mode="min", grace_period=1, reduction_factor=2.0)
    grid = make_grid(FOUR, curves=curves, asha=asha)
    order = [("P0", 0), ("P1", 0), ("P2", 0), ("P3", 0), ("P1", 1)]
    ours = Rungs(1, grid.max_t, 2.0, "min")
    outcomes = [se.run_trial(grid, p, s, ours, str(i)) for i, (p, s) in enumerate(order)]
    # the sweep's rungs (archsearch.sweep.asha) fed the same curves in the same order
    theirs = Rungs(1, grid.max_t, 2.0, "min")
    stopped_at = []
    for i, (pattern, _) in enumerate(order):
        at = None
        for t, value in enumerate(curves[pattern], start=1):
            if not theirs.decide(str(i), t, value) and t < len(curves[pattern]):
                at = t
                break
        stopped_at.append(at)
    assert [not o.full for o in outcomes] == [a is not None for a in stopped_at]
    assert stopped_at[1] == 1 and stopped_at[3] == 1  # worse than P0 at the first rung
    assert stopped_at[0] is None  # the first trial is never judged against anyone
    for outcome, at in zip(outcomes, stopped_at, strict=True):
        assert outcome.flops == pytest.approx(1.0 if at is None else at / 4)  # only steps run


def test_tpe_asha_replay_spends_less_per_trial_than_tpe():
    curves = {p: [m + 3, m + 2, m + 1, m] for p, m in FOUR.items()}
    grid = make_grid(FOUR, curves=curves,
                     asha=AshaSection(grace_period=1, reduction_factor=2.0))
    plain = se.replay(grid, "tpe", 0, "semantic_loss", "min", max_trials=12)
    early = se.replay(grid, "tpe+asha", 0, "semantic_loss", "min", max_trials=12)
    assert all(c == 1.0 for c in plain.costs)
    assert any(c < 1.0 for c in early.costs)


def test_kendall_tau_on_a_known_permutation():
    grid = make_grid({f"p{i}": float(i) for i in range(5)})
    one_swap = pd.DataFrame({"pattern": ["p0", "p1", "p2", "p3", "p4"],
                             "val_loss": [0.0, 2.0, 1.0, 3.0, 4.0]})
    net = se.SupernetRun(Path("x"), one_swap, pd.DataFrame(), 1.0, 1.0, 0)
    tau, n = se.kendall(grid, net, "val_loss")
    assert n == 5 and tau == pytest.approx(0.8)  # 9 concordant pairs, 1 discordant, of 10
    reversed_ = net.scored.assign(val_loss=[4.0, 3.0, 2.0, 1.0, 0.0])
    tau, _ = se.kendall(grid, se.SupernetRun(Path("x"), reversed_, pd.DataFrame(), 1, 1, 0),
                        "val_loss")
    assert tau == pytest.approx(-1.0)


def test_resolved_pairs_count_only_what_the_grid_tells_apart():
    """p0 and p1 lie within seed noise of each other, both far from p2: the supernet swapping
    p0 and p1 costs tau but no resolved pair; putting p2 between them costs one."""
    grid = make_grid({"p0": 1.0, "p1": 1.005, "p2": 2.0}, spread=0.01)
    swapped = se.SupernetRun(Path("x"), pd.DataFrame({"pattern": ["p0", "p1", "p2"],
                                                       "val_loss": [1.1, 1.0, 3.0]}),
                             pd.DataFrame(), 1.0, 1.0, 0)
    assert se.resolved_agreement(grid, swapped, "val_loss") == (2, 2)
    assert se.kendall(grid, swapped, "val_loss")[0] == pytest.approx(1 / 3)
    between = dataclasses.replace(swapped, scored=swapped.scored.assign(val_loss=[1.0, 3.0, 2.0]))
    assert se.resolved_agreement(grid, between, "val_loss") == (1, 2)


def write_supernet(folder: Path, scored: dict[str, float], proxies: dict[str, float],
                   train_flops: float, eval_flops: float, monitor_flops: float | None = None,
                   finetune_flops: float | None = None) -> Path:
    folder.mkdir(parents=True)
    rows = [{"pattern": p, "val_loss": v, "semantic_loss": v, "copy_loss": v,
             "source": "supernet"} for p, v in scored.items()]
    rows += [{"pattern": p, "val_loss": v, "semantic_loss": v, "copy_loss": v,
              "source": "sweep", "status": "completed", "fidelity": 1.0, SEED_PARAM: 0}
             for p, v in proxies.items()]
    pd.DataFrame(rows).to_parquet(folder / "trials.parquet")
    meta = {"train_flops": train_flops, "eval_flops": eval_flops, "tokens": 1000, "seed": 0,
            "steps": 10, "wall_s": 36.0}
    if monitor_flops is not None:
        meta["monitor_flops"] = monitor_flops
    if finetune_flops is not None:
        meta["finetune_flops"] = finetune_flops
    (folder / "supernet.json").write_text(json.dumps(meta))
    return folder


def test_supernet_rows_charge_its_compute_and_top_k_adds_the_real_proxies(tmp_path):
    grid = make_grid(FOUR)  # total 8
    # the supernet scores P1 first (wrong); its top-2 real proxies put P0 first (right)
    folder = write_supernet(tmp_path / "net", {"P0": 1.2, "P1": 1.1, "P2": 3, "P3": 4},
                            {"P1": 2.0, "P0": 1.0}, train_flops=1.0, eval_flops=0.5,
                            monitor_flops=0.25, finetune_flops=0.25)
    net = se.load_supernet(folder)
    _, rows = se.evaluate(grid, "semantic_loss", "min", seeds=1, budget=1.0, nets=[net],
                          strategies=())
    by_name = {r.strategy: r for r in rows}
    assert by_name["supernet"].fractions == [math.inf]
    # 2 (supernet: training, scoring, monitoring, fine-tuning) + 2 grid-cost-1 proxies = 4 of 8
    assert by_name["supernet+top-k"].fractions == [pytest.approx(0.5)]


def test_a_folder_without_supernet_json_is_refused_in_one_line(tmp_path):
    (tmp_path / "trials.parquet").write_bytes(b"")
    with pytest.raises(ArchsearchError, match="no supernet.json"):
        se.load_supernet(tmp_path)


def test_calibration_grid_reads_with_its_cost_and_asha_settings():
    grid = se.load_grid(CALIBRATION)
    assert len(grid.patterns) == 8 and grid.seeds == [0, 1]
    trials = pd.read_parquet(CALIBRATION / "trials.parquet")
    training = float((trials["train_flops_per_token"] * trials["tokens_seen"]).sum())
    validation = float((trials["train_flops_per_token"] / 3 * trials["n_tokens"] * 6).sum())
    assert grid.total_flops == pytest.approx(training + validation, rel=1e-12)
    assert grid.max_t == 6 and grid.asha == AshaSection()  # the space has none: the defaults
    assert all(len(c) == 6 for c in grid.curves.values())
    last = grid.curves[str(trials["trial_id"].iloc[0])].iloc[-1]
    assert last["flops"] == pytest.approx(float(grid.trials["flops"].iloc[0]))


def test_an_incomplete_grid_is_refused_naming_the_gap(tmp_path):
    folder = tmp_path / "calibration"
    shutil.copytree(CALIBRATION, folder)
    trials = pd.read_parquet(folder / "trials.parquet")
    gone = trials[(trials["pattern"] == "G*12") & (trials[SEED_PARAM] == 1)].index
    trials.drop(index=gone).to_parquet(folder / "trials.parquet")
    with pytest.raises(ArchsearchError, match=r"G\*12 has no full-budget trial with seed 1"):
        se.load_grid(folder)


def test_command_line_prints_the_table_and_both_goals(tmp_path, capsys):
    grid = se.load_grid(CALIBRATION)
    means = grid.trials.groupby("pattern")["val_loss"].mean()
    folder = write_supernet(tmp_path / "net", means.to_dict(), {},
                            train_flops=0.1 * grid.total_flops, eval_flops=0.0)
    assert se.main([str(CALIBRATION), "--seeds", "2", "--supernet", str(folder),
                    "--metric", "val_loss"]) == 0
    out = capsys.readouterr().out
    for strategy in ("| random |", "| tpe |", "| tpe+asha |", "| nsga2 |", "| supernet |"):
        assert strategy in out
    assert "| supernet | 1 | 100% | 10.0% |" in out  # its best is the grid's best, at 10%
    assert "| val_loss | 8 | +1.00 |" in out  # scored exactly in the grid's order
    assert "goal 1" in out and "PASS" in out
    assert "goal 2 (supernet Kendall tau on val_loss >= 0.6): PASS: median tau +1.00" in out


def test_exact_counts_only_the_grid_best_as_found():
    grid = make_grid({"best": 1.00, "close": 1.005, "far": 1.5, "farther": 2.0}, spread=0.01)
    loose, _ = se.evaluate(grid, "semantic_loss", "min", 1, 1.0, strategies=())
    strict, _ = se.evaluate(grid, "semantic_loss", "min", 1, 1.0, strategies=(), exact=True)
    assert loose == ["best", "close"] and strict == ["best"]
    settled_on_close = se.Run("x", 0, costs=[1.0], device_s=[1.0], answers=["close"])
    assert se.found_at(settled_on_close, loose, 8.0) == pytest.approx(1 / 8)
    assert se.found_at(settled_on_close, strict, 8.0) == math.inf


def test_concurrency_asks_a_batch_before_telling_any_of_it():
    grid = make_grid(FOUR)
    run = se.replay(grid, "tpe", 0, "semantic_loss", "min", max_trials=8, concurrency=3)
    assert run.known == [0, 0, 0, 3, 3, 3, 6, 6]
    assert se.replay(grid, "tpe", 0, "semantic_loss", "min", max_trials=4).known == [0, 1, 2, 3]


def test_run_supernet_runs_the_verb_once_per_seed_and_reads_the_folder_it_printed(
        tmp_path, monkeypatch):
    commands = []

    def fake_run(command, **_):
        commands.append(command)
        folder = Path(command[command.index("--storage") + 1]) / "space-supernet"
        folder.mkdir(parents=True)
        return se.subprocess.CompletedProcess(command, 0, f"{folder}\nsupernet: 60 steps\n", "")

    monkeypatch.setattr(se.subprocess, "run", fake_run)
    folders = se.run_supernet_verb("space.yaml", 2, 3, tmp_path, ["supernet.tokens=100"])
    assert folders == [tmp_path / f"seed{s}" / "space-supernet" for s in (0, 1)]
    assert commands[1] == ["archsearch", "supernet", "space.yaml", "--storage",
                           str(tmp_path / "seed1"), "--seed", "1", "--top-k", "3",
                           "--set", "supernet.tokens=100"]
    monkeypatch.setattr(se.subprocess, "run", lambda command, **_: se.subprocess.CompletedProcess(
        command, 2, "", "error: space.yaml: no such file"))
    with pytest.raises(ArchsearchError, match="failed: error: space.yaml: no such file"):
        se.run_supernet_verb("space.yaml", 1, None, tmp_path / "other")


PLACEMENT = ROOT / "docs" / "results" / "placement_grid"
# the supernet at the default budget (one proxy's tokens), at four times that, and with
# sandwich sampling and an all-path warm-up
PLACEMENT_NETS = sorted((ROOT / "docs" / "results").glob("placement_grid-supernet*/seed*"))


def test_committed_supernet_runs_are_charged_their_own_and_their_proxies_compute():
    grid = se.load_grid(PLACEMENT)
    assert len(grid.patterns) == 21 and len(PLACEMENT_NETS) == 30
    fine_tuned = 0
    for folder in PLACEMENT_NETS:
        net = se.load_supernet(folder)
        meta = json.loads((folder / "supernet.json").read_text())
        # every part it recorded: the first 15 folders predate monitor_flops and finetune_flops
        parts = [meta["train_flops"], meta["eval_flops"], meta.get("monitor_flops", 0.0),
                 meta.get("finetune_flops", 0.0)]
        assert net.flops == pytest.approx(sum(parts), rel=1e-12)
        fine_tuned += meta.get("finetune_steps", 0) > 0
        trials = pd.read_parquet(folder / "trials.parquet")
        proxies = trials[trials["source"] == "sweep"]
        assert len(proxies) == 2 * meta["top_k"]  # each top-k pattern at the space's two seeds
        # a proxy's compute, from its own row, is the grid's trial of that pattern and seed
        flops, _ = se.proxy_cost(grid, proxies)
        expected = sum(float(grid.trial(p, int(s))["flops"])
                       for p, s in zip(proxies["pattern"], proxies[SEED_PARAM], strict=True))
        assert flops == pytest.approx(expected, rel=1e-12)
    assert fine_tuned == 10  # the -ft10 and -ft20 folders charge their subnets' fine-tuning


def test_a_grid_without_cost_columns_is_refused_naming_the_column(tmp_path):
    folder = tmp_path / "calibration"
    shutil.copytree(CALIBRATION, folder)
    trials = pd.read_parquet(folder / "trials.parquet")
    trials.drop(columns=["train_flops_per_token"]).to_parquet(folder / "trials.parquet")
    with pytest.raises(ArchsearchError, match="no train_flops_per_token column"):
        se.load_grid(folder)


# -- --replay-top-k: a supernet's top-k proxies taken from the grid ------------------------------

REPLAY_SPACE = """
name: replay
model: {depth: 4, d_model: 16, n_heads: 2}
patterns: {candidates: ["A*4", "G*4", "(GA)*2", "GGGA"]}
data: {corpus: builtin, seq_len: 16}
training: {tokens: 1024, batch_size: 4, seed: SEED}
objectives: [{metric: semantic_loss, mode: min}]
"""


def replay_grid(seed_spec: str) -> tuple[se.Grid, list[str]]:
    """A synthetic grid over a real space's four patterns (best first), seeds 0 and 1."""
    space = se.SearchSpace.from_text(REPLAY_SPACE.replace("SEED", seed_spec), "replay.yaml")
    patterns = [c.pattern for c in space.candidates]
    grid = make_grid({p: 1.0 + i for i, p in enumerate(patterns)})
    return dataclasses.replace(grid, space=space), patterns


@pytest.mark.parametrize(("seed_spec", "seeds"), [("{choices: [0, 1]}", [0, 1]),
                                                  ("{choices: [1]}", [1]), ("0", [0])])
def test_replayed_top_k_takes_the_grids_trials_at_the_seeds_top_k_would_train(
        tmp_path, seed_spec, seeds):
    grid, (p0, p1, p2, p3) = replay_grid(seed_spec)  # total compute 8, P0 best
    # the supernet ranks p1 first, then p0 (its top 2), then the others
    folder = write_supernet(tmp_path / "net", {p0: 1.2, p1: 1.1, p2: 3.0, p3: 4.0}, {},
                            train_flops=1.0, eval_flops=1.0)
    net = se.replay_top_k(grid, se.load_supernet(folder), 2)
    assert net.replayed
    assert sorted(zip(net.proxies["pattern"], net.proxies[SEED_PARAM])) == sorted(
        (p, s) for p in (p0, p1) for s in seeds)
    _, rows = se.evaluate(grid, "semantic_loss", "min", seeds=1, budget=1.0, nets=[net],
                          strategies=())
    by_name = {r.strategy: r for r in rows}
    assert by_name["supernet"].fractions == [math.inf]  # its own answer p1 is wrong
    # 2 (the supernet) + one grid trial of cost 1 per (pattern, seed) replayed; p0 is found
    replayed = by_name["supernet+top-k (replayed from the grid)"]
    assert replayed.fractions == [pytest.approx((2 + 2 * len(seeds)) / 8)]
    assert replayed.device_s == [pytest.approx(36.0 + 10.0 * 2 * len(seeds))]


def test_replay_keeps_a_folders_own_proxies_and_refuses_what_the_grid_lacks(tmp_path):
    grid, (p0, p1, *_) = replay_grid("{choices: [0, 1]}")
    own = write_supernet(tmp_path / "own", {p0: 1.0, p1: 2.0}, {p1: 2.0, p0: 1.0}, 1.0, 1.0)
    net = se.load_supernet(own)
    assert se.replay_top_k(grid, net, 2) is net  # trained its own: nothing replayed
    _, rows = se.evaluate(grid, "semantic_loss", "min", 1, 1.0, nets=[net], strategies=())
    assert "supernet+top-k" in {r.strategy for r in rows}
    wider = replay_grid("{choices: [0, 1, 2]}")[0]
    scored = write_supernet(tmp_path / "net", {p0: 1.0, p1: 2.0}, {}, 1.0, 1.0)
    with pytest.raises(ArchsearchError, match=r"seed 2\) of .* is not in the grid"):
        se.replay_top_k(dataclasses.replace(grid, space=wider.space), se.load_supernet(scored), 1)
    with pytest.raises(ArchsearchError, match="--replay-top-k needs the space"):
        se.replay_top_k(dataclasses.replace(grid, space=None), se.load_supernet(scored), 1)


def test_command_line_replays_top_k_from_the_calibration_grid(tmp_path, capsys):
    grid = se.load_grid(CALIBRATION)
    means = grid.trials.groupby("pattern")["semantic_loss"].mean().sort_values()
    folder = write_supernet(tmp_path / "net", means.to_dict(), {},  # scored in the grid's order
                            train_flops=0.1 * grid.total_flops, eval_flops=0.0)
    assert se.main([str(CALIBRATION), "--seeds", "1", "--supernet", str(folder),
                    "--replay-top-k", "2"]) == 0
    out = capsys.readouterr().out
    best = list(means.index[:2])  # the space's seeds are 0 and 1: both trials of each
    replayed = sum(float(grid.trial(p, s)["flops"]) for p in best for s in (0, 1))
    fraction = se.percent((0.1 * grid.total_flops + replayed) / grid.total_flops)
    assert f"| supernet+top-k (replayed from the grid) | 1 | 100% | {fraction} |" in out
    assert f"{best[1]} seed 0, {best[1]} seed 1 stand for those --top-k 2 would train" in out
    assert se.main([str(CALIBRATION), "--replay-top-k", "2"]) == 2


def test_kendall_tau_on_pareto_ranks_of_the_objectives():
    """Overall tau: the patterns' non-dominated ranks on the space's two objectives, supernet
    against grid. Same fronts in both: +1; the fronts reversed: -1."""
    means = {"p0": 1.0, "p1": 2.0, "p2": 3.0, "p3": 4.0}
    grid = make_grid(means)  # every metric of a pattern equals its mean: fronts p0 < p1 < ...
    assert [o.metric for o in grid.objectives] == ["semantic_loss", "copy_loss"]
    frame = pd.DataFrame({"pattern": list(means), "semantic_loss": list(means.values()),
                          "copy_loss": list(means.values())})
    same = se.SupernetRun(Path("x"), frame, pd.DataFrame(), 1.0, 1.0, 0)
    assert se.kendall_objectives(grid, same) == (pytest.approx(1.0), 4)
    reversed_ = frame.assign(semantic_loss=frame["semantic_loss"][::-1].to_numpy(),
                             copy_loss=frame["copy_loss"][::-1].to_numpy())
    flipped = se.SupernetRun(Path("x"), reversed_, pd.DataFrame(), 1.0, 1.0, 0)
    assert se.kendall_objectives(grid, flipped)[0] == pytest.approx(-1.0)
