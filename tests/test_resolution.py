"""Telling patterns apart: pooled seed noise, differences from the best, "not resolved".

The statistics are checked on frames built here against float64 references (numpy and scipy)
and for coverage on simulated seeds; the sweep's closing summary, the report and ``recommend``
on one sweep run with the synthetic trainer, whose objectives are set per pattern and moved by
the seed, so that the truth is known.
"""

import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from archsearch import analysis as A
from archsearch.analysis.resolution import resolve, statement
from archsearch.analysis.sweep_summary import sweep_summary
from archsearch.report import write_report
from archsearch.scaling.recommend import recommend as recommend_folder
from archsearch.scaling.render import as_dict, render
from archsearch.space import SearchSpace
from archsearch.sweep import run_sweep
from archsearch.sweep.folder import SweepFolder
from archsearch.sweep.runner import SweepOutcome
from archsearch.testing.standin import SyntheticTrainer


def trial(pattern, seed, status="completed", fidelity=1.0, **metrics):
    return {"trial_id": f"{pattern}-{seed}-{status}", "pattern": pattern, "status": status,
            "fidelity": fidelity, "seed": seed, "param.training.seed": seed} | metrics


def frame(values, metric="x", **extra):
    """{pattern: [value per seed]} -> trials; NaN values stay (a trial missing the metric)."""
    return pd.DataFrame([trial(p, s, **{metric: v}, **extra)
                         for p, vs in values.items() for s, v in enumerate(vs)])


def flat(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- the statistics


def test_pooled_noise_means_and_differences_match_a_float64_reference():
    values = {"A": [1.00, 1.30, 1.15], "B": [1.40, 1.52], "C": [0.90], "D": [1.61, math.nan]}
    trials = frame(values)
    trials.loc[len(trials)] = trial("C", 9, status="stopped", fidelity=0.4, x=-5.0)  # not counted
    res = resolve(trials, "x", "min")

    groups = [np.array([v for v in vs if math.isfinite(v)], dtype=np.float64)
              for vs in values.values()]
    df = sum(len(g) - 1 for g in groups if len(g) >= 2)
    s = math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups if len(g) >= 2) / df)
    t = stats.t.ppf(0.975, df)
    assert (res.noise.df, res.noise.groups) == (3, 2) and res.noise.sd == pytest.approx(s, 1e-12)

    table = res.table.set_index("pattern")
    assert list(res.table["pattern"]) == ["C", "A", "B", "D"]  # by mean, lowest first
    means = {p: g.mean() for p, g in zip(values, groups, strict=True)}
    ns = {p: len(g) for p, g in zip(values, groups, strict=True)}
    for p in values:
        assert table.loc[p, "mean"] == pytest.approx(means[p], 1e-12)
        half = t * s / math.sqrt(ns[p])
        assert (table.loc[p, "lo"], table.loc[p, "hi"]) == pytest.approx(
            (means[p] - half, means[p] + half), 1e-9)
        if p != "C":
            half = t * s * math.sqrt(1 / ns[p] + 1 / ns["C"])
            diff = means[p] - means["C"]
            assert (table.loc[p, "diff"], table.loc[p, "diff_lo"], table.loc[p, "diff_hi"]) == \
                pytest.approx((diff, diff - half, diff + half), 1e-9)
    # A is 0.25 behind C with a half-width of 0.27: tied; B (0.56) and D (0.71) are behind
    assert dict(zip(res.table["pattern"], res.table["status"], strict=True)) == {
        "C": "best", "A": "tied", "B": "behind", "D": "behind"}
    assert res.tied == ["C", "A"] and not res.resolved


def test_two_patterns_give_scipys_pooled_two_sample_interval():
    a, b = [2.10, 2.31, 2.05, 2.22], [2.40, 2.36, 2.61]
    res = resolve(frame({"a": a, "b": b}), "x")
    expected = stats.ttest_ind(b, a, equal_var=True).confidence_interval(0.95)
    got = res.difference("b", "a")
    assert (got.lo, got.hi) == pytest.approx((expected.low, expected.high), 1e-10)
    maximised = resolve(frame({"a": a, "b": b}), "x", "max")
    assert maximised.best == "b" and maximised.gap("a").estimate == pytest.approx(
        np.mean(b) - np.mean(a))


def test_intervals_cover_at_their_level_on_simulated_seeds():
    """Patterns with 2, 2, 3, 1 and 2 seeds, Gaussian seed noise: the mean and difference
    intervals hold the truth 95% of the time, and two equal patterns are called resolved 5% of
    the time (the level), never more than sampling error allows."""
    rng = np.random.default_rng(11)
    truth = {"p0": 3.00, "p1": 3.02, "p2": 3.10, "p3": 2.95, "p4": 3.20}
    seeds = {"p0": 2, "p1": 2, "p2": 3, "p3": 1, "p4": 2}
    sigma, runs = 0.04, 1000
    mean_hits = diff_hits = 0
    for _ in range(runs):
        sample = {p: list(truth[p] + sigma * rng.standard_normal(seeds[p])) for p in truth}
        res = resolve(frame(sample), "x")
        row = res.row("p3")  # the single-seed pattern: only the pooled noise gives it an interval
        mean_hits += row["lo"] <= truth["p3"] <= row["hi"]
        d = res.difference("p0", "p3")
        diff_hits += d.lo <= truth["p0"] - truth["p3"] <= d.hi
    tolerance = 3.5 * math.sqrt(0.95 * 0.05 / runs)
    assert abs(mean_hits / runs - 0.95) < tolerance
    assert abs(diff_hits / runs - 0.95) < tolerance

    resolved = sum(resolve(frame({"a": list(3 + sigma * rng.standard_normal(2)),
                                  "b": list(3 + sigma * rng.standard_normal(2))}), "x").resolved
                   for _ in range(runs))
    assert abs(resolved / runs - 0.05) < tolerance


def test_one_seed_cannot_tell_noise_from_effect_and_shows_the_evaluation_interval():
    trials = frame({"A*8": [3.0], "G*8": [3.2]}, x_lo=0.0, x_hi=0.0)
    trials["x_lo"], trials["x_hi"] = trials["x"] - 0.05, trials["x"] + 0.04
    res = resolve(trials, "x")
    assert not res.noise.known and not res.resolved
    assert list(res.table["status"]) == ["best", "unknown"] and res.tied == ["A*8", "G*8"]
    assert (res.row("G*8")["lo"], res.row("G*8")["hi"]) == pytest.approx((3.15, 3.24))
    text = statement(res)
    assert text.startswith("not resolved: every pattern ran one seed")
    assert "cannot tell seed noise from a real difference" in text
    assert "validation sampling only, not seed-to-seed noise" in text
    assert "seed: {choices: [0, 1]}" in text


def test_the_pooled_noise_of_some_patterns_applies_to_single_seed_ones():
    base = {"A": [3.00, 3.02], "B": [3.50, 3.52]}
    near = resolve(frame(base | {"C": [3.03]}), "x")  # one seed, close to A
    far = resolve(frame(base | {"C": [2.50]}), "x")   # one seed, far ahead
    assert near.noise.df == 2 and near.row("C")["status"] == "tied" and not near.resolved
    assert far.best == "C" and far.resolved and far.tied == ["C"]
    assert math.isfinite(far.row("C")["lo"])  # a pooled interval, not the evaluation one


def test_a_large_gap_is_resolved_and_a_gap_inside_the_noise_is_not():
    big = A.rank_patterns(frame({"GGGA": [2.90, 2.94], "A*4": [3.20, 3.25], "G*4": [3.30, 3.27]}),
                      ["x"])
    assert big.resolved and big.tied == ["GGGA"] and big.pattern == "GGGA"
    assert big.statement().startswith("resolved: GGGA is best on the weighted score, ahead of "
                                      "the runner-up A*4 by")
    small = A.rank_patterns(frame({"GGGA": [2.90, 3.00], "A*4": [2.95, 3.04], "G*4": [3.6, 3.7]}),
                        ["x"])
    assert not small.resolved and small.tied == ["GGGA", "A*4"]
    text = small.statement()
    assert text.startswith("not resolved at this size: GGGA and A*4 cannot be told apart")
    assert "is best" not in text and "run more seeds or larger proxies" in text
    assert small.margin_interval.lo < 0 < small.margin_interval.hi


def test_trial_scores_use_the_pattern_means_constants_and_average_to_their_scores():
    rng = np.random.default_rng(3)
    rows = [trial(p, s, x=rng.normal(mx, 0.1), y=rng.normal(my, 0.1))
            for p, mx, my, n in (("a", 1, 5, 3), ("b", 2, 4, 2), ("c", 3, 1, 1), ("d", 2, 2, 2))
            for s in range(n)]
    trials = pd.DataFrame(rows)
    objectives = [("x", "min"), ("y", "max")]
    table = A.by_pattern(trials, ["x", "y"])
    scored = A.weighted_scores(table, objectives, {"x": 3, "y": 1}).set_index("pattern")
    per_trial = A.trial_scores(trials, table, objectives, {"x": 3, "y": 1})
    # the constants by hand, in float64: x minimised, y maximised (negated), weights 3:1
    x, y = table.set_index("pattern")["x"], -table.set_index("pattern")["y"]
    by_hand = (0.75 * (trials["x"] - x.min()) / (x.max() - x.min())
               + 0.25 * (-trials["y"] - y.min()) / (y.max() - y.min()))
    assert np.allclose(per_trial, by_hand, rtol=0, atol=1e-12)
    means = per_trial.groupby(trials["pattern"]).mean()
    assert np.allclose(means.loc[scored.index], scored["score"], rtol=0, atol=1e-12)
    pick = A.rank_patterns(trials, objectives, {"x": 3, "y": 1})
    assert pick.resolution.noise.df == 2 + 1 + 1
    assert np.allclose(pick.table.set_index("pattern")["score"].loc[scored.index],
                       scored["score"], atol=1e-12)


def test_other_tuned_settings_within_a_pattern_are_named_as_counted_in_the_noise():
    trials = frame({"A": [3.0, 3.1], "B": [3.4, 3.3]})
    trials["param.training.lr"] = [1e-3, 3e-3, 1e-3, 3e-3]
    res = resolve(trials, "x")
    assert res.varying == ("training.lr",)
    assert "also differ in training.lr, whose effect is counted as noise" in statement(res)


# ---------------------------------------------------------------- a sweep, end to end


@dataclass(frozen=True)
class SeededTrainer:
    """The synthetic trainer with each pattern's objectives set here, moved by ``noise`` down
    for even seeds and up for odd ones (the same way on both objectives, as a lucky seed is)."""

    truth: dict[str, tuple[float, float]]
    noise: float = 0.02

    def __call__(self, trial, report, workdir, data_cache, resume_from=None, device="cpu"):
        shift = self.noise if trial.training.seed % 2 else -self.noise

        def seeded(metrics, checkpoint):
            out = dict(metrics)
            for name, value in zip(("semantic_loss", "copy_loss"), self.truth[trial.pattern],
                                   strict=True):
                out[name] = value + shift
                out[f"{name}_lo"], out[f"{name}_hi"] = value + shift - 0.01, value + shift + 0.01
            report(out, checkpoint)

        return SyntheticTrainer()(trial, seeded, workdir, data_cache, resume_from, device)


SPACE = """
name: seeds
model: {depth: 2, d_model: 16, n_heads: 2}
patterns: {candidates: ["AA", "GG", "GA"]}
data: {seq_len: 16}
training: {tokens: 640, batch_size: 2, checkpoint_every: 20, seed: {choices: [0, 1]}}
evaluation: {every: 20}
objectives:
  - {metric: semantic_loss, mode: min}
  - {metric: copy_loss, mode: min}
search: {algorithm: grid, samples: 6, concurrency: 2}
"""
# AA is far ahead; GG and GA are 0.01 apart, inside the seed noise (0.02 either way).
TRUTH = {"AA": (3.0, 2.0), "GG": (3.50, 2.50), "GA": (3.51, 2.51)}


@pytest.fixture(scope="module")
def seeded_sweep(tmp_path_factory):
    import ray.cloudpickle

    # Ray workers cannot import this test module by name: send the trainer's class by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    root = tmp_path_factory.mktemp("seeded")
    (root / "seeds.yaml").write_text(SPACE)
    outcome = run_sweep(str(root / "seeds.yaml"), storage=str(root / "sweeps"),
                        train_fn=SeededTrainer(TRUTH))
    assert {r["status"] for r in outcome.rows} == {"completed"} and len(outcome.rows) == 6
    return outcome


def _subset(outcome, keep):
    rows = [r for r in outcome.rows if keep(r)]
    space = SearchSpace.from_text(SPACE, "seeds.yaml")
    return sweep_summary(SweepOutcome(SweepFolder.at(outcome.folder.location), rows, space,
                                      len(rows)))


def _folder_with(outcome, tmp_path, keep):
    """A copy of the sweep folder whose trials.parquet holds only the rows ``keep`` accepts."""
    folder = tmp_path / "copy"
    source = Path(outcome.folder.location)
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("runs", "data_cache"))
    trials = pd.read_parquet(folder / "trials.parquet")
    trials[trials.apply(keep, axis=1)].to_parquet(folder / "trials.parquet")
    return folder


def test_the_sweep_names_a_winner_only_when_two_seeds_resolve_it(seeded_sweep):
    summary = sweep_summary(seeded_sweep)
    table = summary.split("Patterns, best first")[1]
    rows = {line.split()[1]: line for line in table.splitlines() if line[:3].strip().isdigit()}
    assert list(rows) == ["AA", "GG", "GA"]
    assert "3.0000 +-0.0" in rows["AA"] and rows["AA"].rstrip().endswith("best")
    assert rows["GG"].rstrip().endswith("behind") and rows["GA"].rstrip().endswith("behind")
    assert "pooled over the 3 patterns with 2+ seeds (3 degrees of freedom)" in flat(summary)
    verdict = flat(summary.split("verdict: ")[1])  # the last thing printed
    assert verdict.startswith("resolved: AA is best on the weighted score, ahead of the "
                              "runner-up GG by")
    assert "results in" not in verdict and "Pareto" not in verdict


def test_a_gap_inside_the_seed_noise_names_no_winner(seeded_sweep):
    summary = _subset(seeded_sweep, lambda r: r["pattern"] != "AA")
    verdict = flat(summary.split("verdict: ")[1])
    assert verdict.startswith("not resolved at this size: GG and GA cannot be told apart on the "
                              "weighted score")
    assert "run more seeds or larger proxies" in verdict and "is best" not in verdict
    assert "semantic_loss: not resolved at this size" in flat(summary)


def test_one_seed_says_the_tool_cannot_tell_noise_from_effect(seeded_sweep):
    summary = _subset(seeded_sweep, lambda r: r["param.training.seed"] == 0)
    assert "one seed per pattern, so no seed-noise estimate" in flat(summary)
    assert "validation sampling only, not seed-to-seed noise" in flat(summary)
    verdict = flat(summary.split("verdict: ")[1])
    assert verdict.startswith("not resolved: every pattern ran one seed")
    assert "2.9800 [2.9700, 2.9900]" in summary  # AA's evaluation interval, seed 0


def test_the_report_shows_the_marks_and_no_winner_when_unresolved(seeded_sweep, tmp_path):
    page = write_report(Path(seeded_sweep.folder.location), tmp_path / "resolved").read_text()
    box = page.split('<div class="pick"')[1].split("</ul></div>")[0]
    assert "Recommended pattern" in box and '<div class="pattern">AA</div>' in box
    top = page.split('<section id="patterns">')[1].split("</section>")[0]
    assert top.count("<b>behind</b>") >= 4 and "<b>best</b>" in top and "score − best" in top

    tied = write_report(_folder_with(seeded_sweep, tmp_path / "t", lambda r: r.pattern != "AA"),
                        tmp_path / "tied").read_text()
    box = tied.split('<div class="pick"')[1].split("</ul></div>")[0]
    assert "Recommended pattern" not in tied
    assert "Not resolved at this size: no winner" in box and "<b>tied</b>" in tied
    assert "cannot be told apart on the weighted score" in box

    single = write_report(_folder_with(seeded_sweep, tmp_path / "s",
                                       lambda r: r["param.training.seed"] == 0),
                          tmp_path / "single").read_text()
    box = single.split('<div class="pick"')[1].split("</ul></div>")[0]
    assert "Not resolved: one seed per pattern" in box and "Recommended pattern" not in single
    top = single.split('<section id="patterns">')[1].split("</section>")[0]
    assert "evaluation bootstrap, which measures validation sampling only" in top


def test_recommend_marks_ties_in_text_and_json(seeded_sweep, tmp_path):
    rec = recommend_folder(seeded_sweep.folder.location)
    assert rec.resolved and rec.tied == ["AA"]
    text = render(rec)
    assert "recommended: " in text and "verdict: resolved: AA" in text
    assert [line.split()[-2] for line in text.split("ranking (")[1].splitlines()[2:5]] == \
        ["best", "behind", "behind"]
    data = as_dict(rec)
    assert data["resolved"] and data["recommended"]["pattern"] == "AA"

    tied = recommend_folder(_folder_with(seeded_sweep, tmp_path / "t",
                                         lambda r: r.pattern != "AA"))
    assert not tied.resolved and sorted(tied.tied) == ["GA", "GG"]
    text = render(tied)
    assert "recommended:" not in text
    assert "not resolved: no recommendation; tied with the best: " in text
    assert [line.split()[-2] for line in text.split("ranking (")[1].splitlines()[2:4]] == \
        ["best", "tied"]
    data = json.loads(json.dumps(as_dict(tied), allow_nan=False))
    assert data["recommended"] is None and data["resolved"] is False
    assert sorted(data["tied_with_best"]) == ["GA", "GG"]
    assert data["best"]["pattern"] == tied.winner.key
    assert data["verdict"].startswith("not resolved at this size")

    single = recommend_folder(_folder_with(seeded_sweep, tmp_path / "s",
                                           lambda r: r["param.training.seed"] == 0))
    assert not single.resolved and [e.status for e in single.ranking] == [
        "best", "unknown", "unknown"]
    text = render(single)
    assert "not resolved: no recommendation; no pattern can be told apart from the best" in text
    assert "verdict: not resolved: every pattern ran one seed" in text
    assert "no score intervals: every pattern ran one seed" in text
    assert as_dict(single)["recommended"] is None


def test_the_summary_says_why_a_trial_was_not_graphed(seeded_sweep):
    """A GPU trial's ``cuda_graph_note`` joins the notes the sweep prints, beside its resume
    note: a user reading ``cuda_graph`` 0 in the table finds the reason without the logs."""
    why = "no CUDA graph: it would need about 42.0 GiB"
    rows = [dict(r) for r in seeded_sweep.rows]
    rows[0]["cuda_graph_note"] = why
    rows[1]["note"], rows[1]["cuda_graph_note"] = "restarted from step 0", why
    space = SearchSpace.from_text(SPACE, "seeds.yaml")
    summary = sweep_summary(SweepOutcome(SweepFolder.at(seeded_sweep.folder.location), rows, space,
                                         len(rows)))
    notes = summary.split("notes:\n")[1].split("\n\n")[0].splitlines()
    assert notes == [f"  {rows[0]['trial_id']}  {rows[0]['pattern']}  {why}",
                     f"  {rows[1]['trial_id']}  {rows[1]['pattern']}  restarted from step 0; {why}"]


def test_the_summary_says_which_kernel_ran_the_gdn_layers(seeded_sweep):
    """Under the counts, a GPU sweep names the kernels its GDN layers ran on (the trials'
    ``gdn_kernel``), so a user sees FlashQLA was taken without opening the table; CPU sweeps
    (``torch``) and trials without GDN layers add no line."""
    space = SearchSpace.from_text(SPACE, "seeds.yaml")
    folder = SweepFolder.at(seeded_sweep.folder.location)

    def summary_of(kernels: list[str | None]) -> list[str]:
        rows = [dict(r, gdn_kernel=k) for r, k in zip(seeded_sweep.rows, kernels)]
        return sweep_summary(SweepOutcome(folder, rows, space, len(rows))).splitlines()

    n = len(seeded_sweep.rows)
    kernels = ["flashqla"] * (n - 2) + ["fla", None]
    lines = summary_of(kernels)
    assert lines[1] == f"GDN layers ran on fla (1 trial), flashqla ({n - 2} trials)"
    assert not any(line.startswith("GDN layers") for line in summary_of(["torch"] * n))
