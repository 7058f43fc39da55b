"""The sweep's pieces without a Ray cluster: searcher, Pareto front, parquet tables, resources."""

import math

import optuna
import pytest

from archsearch.analysis.sweep_summary import front_table, trial_front
from archsearch.space import SearchSpace
from archsearch.space.schema import GpuStep, Objective, ResourcesSection
from archsearch.sweep.asha import evaluations_per_trial
from archsearch.sweep.folder import SweepFolder
from archsearch.sweep.journal import open_study
from archsearch.sweep.plan import plan_run
from archsearch.sweep.progress import status_line
from archsearch.sweep.resources import TrialResources, gpu_fraction
from archsearch.sweep.results import classify, read_table, write_table
from archsearch.sweep.search import SweepSearch, grid_points, make_sampler, num_samples
from archsearch.sweep.trainable import RUN_KEY

SPACE = """
name: logic
model: {depth: 2, d_model: 16, n_heads: 2}
symbols:
  G: {kind: gdn, head_dim_k: {choices: [4, 8]}}
patterns: {candidates: ["AA", "GG", "GA"]}
training: {tokens: 6400, batch_size: 2, lr: {choices: [0.001, 0.003]}}
data: {seq_len: 16}
evaluation: {every: 30}
objectives: [{metric: semantic_loss}, {metric: copy_loss}]
search: {algorithm: grid, samples: 100, concurrency: 2, seed: 3}
"""
OBJECTIVES = [Objective("semantic_loss", "min"), Objective("copy_loss", "min")]
METRICS = ["semantic_loss", "copy_loss"]


def _search(space: SearchSpace, journal, rows=None, retry=False):
    """A searcher for one run of the sweep whose study is in ``journal`` (as runner.py does)."""
    study = open_study(journal, ["min", "min"], make_sampler(space))
    grid = grid_points(space) if space.spec.search.algorithm == "grid" else None

    def ask_retry(params, trial_id):
        study.enqueue_trial(params)
        asked = study.ask()
        space.suggest(asked)
        asked.set_user_attr("trial_id", trial_id)
        return asked.number

    plan = plan_run(study, rows or {}, num_samples(space), METRICS, {}, grid, retry, ask_retry,
                    space.missing)
    return SweepSearch(space, study, plan), study, plan


def _tell_all(search: SweepSearch, n: int, prefix: str = "t") -> list[dict]:
    configs = []
    for i in range(n):
        config = search.suggest(f"{prefix}{i}")
        if config is None or config == SweepSearch.FINISHED:
            break
        configs.append(config)
        search.on_trial_complete(f"{prefix}{i}", {"semantic_loss": 1.0 + i, "copy_loss": 2.0 - i,
                                           "fidelity": 1.0})
    return configs


def _params(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != RUN_KEY}


def test_grid_runs_every_point_exactly_once(tmp_path):
    space = SearchSpace.from_text(SPACE)
    # AA: 2 lrs; GG and GA: 2 lrs x 2 head_dim_k (the G option is asked only when G is used)
    assert len(space.grid()) == 2 + 4 + 4 == num_samples(space)
    search, _, _ = _search(space, tmp_path / "journal")
    configs = _tell_all(search, 20)
    assert len(configs) == 10
    assert sorted(map(repr, map(_params, configs))) == sorted(map(repr, space.grid()))
    assert [c[RUN_KEY]["trial_id"] for c in configs] == [f"t{i:04d}" for i in range(10)]
    assert search.suggest("t-extra") == SweepSearch.FINISHED


def test_grid_subset_is_seeded_and_resumes_without_repeats(tmp_path):
    space = SearchSpace.from_text(SPACE.replace("samples: 100", "samples: 6"))
    assert grid_points(space) == grid_points(space) and len(grid_points(space)) == 6
    search, _, _ = _search(space, tmp_path / "journal")
    first = _tell_all(search, 2)
    # The driver dies after asking one more trial that never started: no row, no checkpoint.
    lost = search.suggest("lost")
    rows = {c[RUN_KEY]["trial_id"]: {"trial_id": c[RUN_KEY]["trial_id"], "status": "completed"}
            for c in first}
    resumed, study, plan = _search(space, tmp_path / "journal", rows)
    assert plan.ended == 2 and len(plan.reruns) == 1 and plan.new == 3
    rest = _tell_all(resumed, 10, prefix="r")
    assert len(first) + len(rest) == 6
    assert sorted(map(repr, map(_params, first + rest))) == sorted(map(repr, grid_points(space)))
    assert rest[0] == lost  # the lost trial runs again, once, under its own id and parameters
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 6


def test_a_trial_asked_as_the_driver_stopped_is_abandoned_and_its_point_runs(tmp_path):
    """Ctrl-C or a kill between Optuna's ask and the last of the space's suggestions leaves a
    running trial with some parameters drawn (define-by-run writes each as it is drawn). It never
    reached Tune, so it has no row; resuming must not run it with parameters missing (the row
    could not be made: KeyError), nor count it among the sweep's trials."""
    space = SearchSpace.from_text(SPACE.replace("samples: 100", "samples: 4"))
    search, study, _ = _search(space, tmp_path / "journal")
    first = _tell_all(search, 2)
    point = dict(grid_points(space)[2])
    study.enqueue_trial(point)
    torn = study.ask()
    torn.suggest_categorical("pattern", space.pattern_choices)  # then the driver stopped
    assert set(torn.params) == {"pattern"}
    assert set(space.missing(torn.params)) == {"training.lr"} | (
        {"symbols.G.head_dim_k"} if "G" in point["pattern"] else set())
    rows = {c[RUN_KEY]["trial_id"]: {"trial_id": c[RUN_KEY]["trial_id"], "status": "completed"}
            for c in first}
    resumed, study, plan = _search(space, tmp_path / "journal", rows)
    assert plan.ended == 2 and plan.reruns == () and plan.new == 2
    assert any("t0002: abandoned" in note for note in plan.notes), plan.notes
    rest = _tell_all(resumed, 10, prefix="r")
    assert sorted(map(repr, map(_params, first + rest))) == sorted(map(repr, grid_points(space)))
    assert [c[RUN_KEY]["trial_id"] for c in rest] == ["t0003", "t0004"]
    abandoned = study.trials[2]
    assert abandoned.state == optuna.trial.TrialState.FAIL and abandoned.user_attrs["abandoned"]
    assert abandoned.user_attrs["retryable"] is False
    rows |= {c[RUN_KEY]["trial_id"]: {"trial_id": c[RUN_KEY]["trial_id"], "status": "completed"}
             for c in rest}
    _, _, again = _search(space, tmp_path / "journal", rows, retry=True)  # and it stays out
    assert again.reruns == () and again.new == 0 and again.ended == 4


def test_failed_and_diverged_trials_are_told_fail_with_fidelity(tmp_path):
    space = SearchSpace.from_text(SPACE.replace("algorithm: grid", "algorithm: tpe"))
    search, study, _ = _search(space, tmp_path / "journal")
    for trial_id in ("ok", "nan", "crash", "stopped"):
        search.suggest(trial_id)
    search.on_trial_complete("ok", {"semantic_loss": 1.0, "copy_loss": 2.0, "fidelity": 1.0})
    search.on_trial_complete("nan", {"semantic_loss": math.nan, "copy_loss": math.nan,
                                     "meta/failed": "TrialDiverged: nan", "fidelity": 0.2})
    search.on_trial_complete("crash", None, error=True)
    search.on_trial_complete("stopped", {"semantic_loss": 3.0, "copy_loss": 3.0,
                                         "fidelity": 0.5})
    trials = study.trials
    state = {t: trials[i].state.name for i, t in enumerate(("ok", "nan", "crash", "stopped"))}
    assert state == {"ok": "COMPLETE", "nan": "FAIL", "crash": "FAIL", "stopped": "COMPLETE"}
    assert trials[1].user_attrs["error"] == "TrialDiverged: nan"
    assert trials[1].user_attrs["retryable"] is False  # it would diverge again
    assert trials[2].user_attrs["retryable"] is True
    assert trials[3].user_attrs["fidelity"] == 0.5  # filter on it before reading a front
    search.on_trial_complete("ok", {"semantic_loss": 9.0, "copy_loss": 9.0})  # no double tell
    assert study.trials[0].values == [1.0, 2.0]


def test_the_plan_reconciles_the_study_with_the_tables(tmp_path):
    space = SearchSpace.from_text(SPACE.replace("algorithm: grid", "algorithm: random")
                                  .replace("samples: 100", "samples: 5"))
    search, study, _ = _search(space, tmp_path / "journal")
    configs = [search.suggest(f"r{i}") for i in range(4)]
    ids = [c[RUN_KEY]["trial_id"] for c in configs]
    # r0 ended and was recorded, but the driver died before Optuna was told;
    # r1 was told, but died before its row said so; r2 crashed for good; r3 was running.
    search.on_trial_complete("r1", {"semantic_loss": 1.0, "copy_loss": 1.0, "fidelity": 1.0})
    search.on_trial_complete("r2", None, error=True)
    rows = {ids[0]: {"trial_id": ids[0], "status": "completed", "fidelity": 1.0,
                     "semantic_loss": 2.0, "copy_loss": 3.0, "step": 200},
            ids[1]: {"trial_id": ids[1], "status": "running", "step": 100},
            ids[2]: {"trial_id": ids[2], "status": "failed", "error": "RuntimeError: boom"},
            ids[3]: {"trial_id": ids[3], "status": "running", "step": 90}}
    _, study, plan = _search(space, tmp_path / "journal", rows)
    assert study.trials[0].values == [2.0, 3.0]  # told from its row
    reruns = {r.trial_id: r for r in plan.reruns}
    assert set(reruns) == {ids[1], ids[3]} and plan.ended == 2 and plan.new == 1
    assert reruns[ids[1]].tell is False and reruns[ids[3]].tell is True
    assert "restarted from step 0 (it had reached step 90)" in reruns[ids[3]].note
    # --retry-errored: the crashed trial runs again, same id and parameters, new Optuna trial
    _, study, plan = _search(space, tmp_path / "journal", rows, retry=True)
    retried = [r for r in plan.reruns if r.trial_id == ids[2]]
    assert len(retried) == 1 and retried[0].params == _params(configs[2])
    assert study.trials[retried[0].number].user_attrs["trial_id"] == ids[2]
    assert plan.new == 1  # the retry does not count as a new trial


@pytest.mark.parametrize("algorithm", ["tpe", "nsga2", "gp", "random"])
def test_every_sampler_handles_the_conditional_space(tmp_path, algorithm):
    space = SearchSpace.from_text(SPACE.replace("algorithm: grid", f"algorithm: {algorithm}")
                                  .replace("samples: 100", "samples: 4"))
    configs = _tell_all(_search(space, tmp_path / "journal")[0], 4)
    assert len(configs) == 4
    for config in configs:
        space.resolve(config)  # every relevant field was sampled
        assert ("symbols.G.head_dim_k" in config) == ("G" in config["pattern"])
    again = _tell_all(_search(space, tmp_path / "journal2")[0], 4)
    assert again == configs  # seeded


def test_pareto_front_uses_full_budget_completed_trials_only():
    rows = [
        {"trial_id": "a", "pattern": "AA", "status": "completed", "fidelity": 1.0,
         "semantic_loss": 1.0, "copy_loss": 3.0, "params": 2_500_000, "copy_emerged": 1.0},
        {"trial_id": "b", "pattern": "GG", "status": "completed", "fidelity": 1.0,
         "semantic_loss": 2.0, "copy_loss": 2.0, "params": 1200, "copy_emerged": 0.0},
        {"trial_id": "c", "pattern": "GA", "status": "completed", "fidelity": 1.0,
         "semantic_loss": 2.5, "copy_loss": 2.5},  # dominated by b
        {"trial_id": "d", "pattern": "AG", "status": "stopped", "fidelity": 0.25,
         "semantic_loss": 0.1, "copy_loss": 0.1},  # better, but at a quarter of the budget
        {"trial_id": "e", "pattern": "AG", "status": "failed", "fidelity": 0.0,
         "semantic_loss": None, "copy_loss": None},
    ]
    front = trial_front(rows, OBJECTIVES)
    assert [r["trial_id"] for r in front] == ["a", "b"]
    maximise = [Objective("semantic_loss", "max"), Objective("copy_loss", "min")]
    assert [r["trial_id"] for r in trial_front(rows, maximise)] == ["c", "b"]
    table = front_table(front, OBJECTIVES, ["training.lr"])
    assert table.splitlines()[0].split() == ["pattern", "semantic_loss", "(min)", "copy_loss",
                                             "(min)", "params", "copying", "settings"]
    assert "2.50M" in table and "1.20K" in table
    # the copy_emerged verdict of each front trial; "-" where a row has none
    assert [line.split()[4] for line in table.splitlines()[2:]] == ["yes", "not"]
    assert front_table([{**front[0], "copy_emerged": float("nan")}], OBJECTIVES, []
                       ).splitlines()[2].split()[-1] == "-"


def test_status_classification_and_line():
    assert classify({"fidelity": 1.0}) == "completed"
    assert classify({"fidelity": 0.5}) == "stopped"
    assert classify({"fidelity": 1.0, "meta": {"failed": "x"}}) == "failed"
    assert classify(None, errored=True) == "failed"
    line = status_line(["completed", "running", "failed", "pending"],
                       [{"semantic_loss": 2.0, "copy_loss": 3.0}, {}, {}, {}], 8, OBJECTIVES,
                       75.0, 125.0)
    assert line == ("trials 2/8 done, 1 running, 0 stopped, 1 failed | best semantic_loss 2, "
                    "copy_loss 3 | 1m15s, ETA 2m05s")


def test_parquet_tables_round_trip_atomically(tmp_path):
    folder = SweepFolder.under(str(tmp_path), "s")
    rows = [{"trial_id": "a", "step": 1, "param.x": 1, "m": 0.5, "error": None},
            {"trial_id": "b", "step": 2, "param.x": 2.5, "m": math.nan, "error": "boom",
             "mixed": "x"},
            {"trial_id": "c", "step": 3, "mixed": 4}]
    write_table(folder, "t.parquet", rows, ["trial_id", "step"], ["error"])
    back = read_table(folder, "t.parquet")
    assert [r["trial_id"] for r in back] == ["a", "b", "c"]
    assert back[1]["m"] is None and back[1]["error"] == "boom" and back[0]["param.x"] == 1.0
    assert back[2]["mixed"] == "4"  # a column mixing types falls back to text
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["t.parquet"]  # no temp left
    assert read_table(folder, "missing.parquet") == []


def test_evaluations_per_trial_is_the_largest_budget():
    space = SearchSpace.from_text(SPACE)  # 6400 tokens / (2 x 16) = 200 steps, every 30
    assert evaluations_per_trial(space) == 7
    wider = SearchSpace.from_text(SPACE.replace("batch_size: 2", "batch_size: {choices: [1, 4]}"))
    assert evaluations_per_trial(wider) == 14  # 400 steps at batch 1


def test_gpu_fraction_grows_with_parameters():
    resources = ResourcesSection(gpus=0.1, gpus_by_params=[GpuStep(1_000_000, 0.25),
                                                           GpuStep(100, 0.125)])
    assert gpu_fraction(50, resources) == 0.125
    assert gpu_fraction(5000, resources) == 0.25
    assert gpu_fraction(10**9, resources) == 0.25  # above the last step: the largest fraction
    assert gpu_fraction(10**9, ResourcesSection(gpus=0.5)) == 0.5
    space = SearchSpace.from_text(SPACE + "resources: {cpus: 1, gpus_by_params: "
                                  "[{up_to_params: 40000, gpus: 0.25}, "
                                  "{up_to_params: 1000000000, gpus: 0.5}]}\n")
    small = TrialResources(space).request({"pattern": "AA", "training.lr": 0.001})
    assert small == {"CPU": 1.0, "GPU": 0.25}


def test_asha_sizes_its_rungs_with_the_budget_the_trainer_runs():
    from archsearch.space.trial import Budget

    space = SearchSpace.from_text(SPACE, "logic.yaml")
    # 6400 tokens / (2 x 16) = 200 steps; an evaluation every 30 steps and one at step 200
    budget = Budget.of(space.resolve({"pattern": "AA", "training.lr": 0.001}))
    assert (budget.steps, budget.tokens_per_step) == (200, 32)
    assert budget.evaluations(30) == 7 == evaluations_per_trial(space)
    assert Budget.from_sizes(10, 4, 16).steps == 1  # never zero steps
