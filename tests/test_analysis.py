"""archsearch.analysis on small frames built here: fronts, hypervolume, intervals, gaps, choice."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from archsearch import analysis as A
from archsearch.analysis.intervals import t_quantile
from archsearch.errors import ArchsearchError
from archsearch.pattern import parse


def trial(pattern, seed=0, status="completed", fidelity=1.0, fraction=None, origins="list", **m):
    row = {"trial_id": f"{pattern}-{seed}-{status}", "pattern": pattern, "status": status,
           "fidelity": fidelity, "seed": seed, "origins": origins,
           "attention_fraction": fraction if fraction is not None else _fraction(pattern)}
    return row | m


def _fraction(pattern):
    layers = parse(pattern, {c for c in pattern if c.isalpha()})
    return sum(layer in "AS" for layer in layers) / len(layers)


def frame(*rows):
    return pd.DataFrame(list(rows))


# ---------------------------------------------------------------- fronts


def test_front_keeps_non_dominated_full_budget_rows_only():
    df = frame(trial("a", x=1, y=3), trial("b", x=2, y=2), trial("c", x=3, y=1),
               trial("d", x=3, y=3),  # dominated by b
               trial("e", x=0, y=0, status="stopped", fidelity=0.5),  # ASHA: partial losses
               trial("f", x=0, y=0, fidelity=0.5),
               trial("g", x=0, y=0, status="failed"),
               trial("h", x=np.nan, y=0))
    front = A.pareto_front(df, ["x", "y"])
    assert list(front["pattern"]) == ["a", "b", "c"]


def test_front_honours_directions_and_three_objectives():
    df = frame(trial("a", x=1, y=1, z=1), trial("b", x=2, y=2, z=2), trial("c", x=2, y=2, z=0))
    assert list(A.pareto_front(df, [("x", "max"), ("y", "max")])["pattern"]) == ["b", "c"]
    assert set(A.pareto_front(df, ["x", "y", "z"])["pattern"]) == {"a", "c"}
    assert list(A.pareto_front(df, [("x", "max"), ("y", "max"), ("z", "max")])["pattern"]) == ["b"]


def test_ranks_peel_fronts():
    df = frame(trial("a", x=1, y=1), trial("b", x=2, y=2), trial("c", x=3, y=3),
               trial("d", x=1, y=4), trial("e", x=2, y=2))
    ranks = A.pareto_ranks(df, ["x", "y"])
    assert dict(zip(df.loc[ranks.index, "pattern"], ranks, strict=True)) == {
        "a": 1, "d": 2, "b": 2, "e": 2, "c": 3}


def test_unknown_objective_is_a_one_line_error():
    with pytest.raises(ArchsearchError, match="no column nope"):
        A.pareto_front(frame(trial("a", x=1)), ["x", "nope"])
    with pytest.raises(ArchsearchError, match="mode"):
        A.as_objectives([("x", "largest")])


# ---------------------------------------------------------------- hypervolume


def test_hypervolume_2d_exact():
    df = frame(trial("a", x=1, y=3), trial("b", x=2, y=2), trial("c", x=3, y=1),
               trial("d", x=3, y=3))
    assert A.hypervolume(df, ["x", "y"], reference=(4, 4)) == pytest.approx(6.0)
    # maximising: flip both axes and the reference
    flipped = df.assign(x=-df["x"], y=-df["y"])
    assert A.hypervolume(flipped, [("x", "max"), ("y", "max")], reference=(-4, -4)) == \
        pytest.approx(6.0)
    # points outside the reference box add nothing
    assert A.hypervolume(df, ["x", "y"], reference=(2.5, 4)) == pytest.approx(1 * 1 + 0.5 * 2)


def _box_union_volume(points, ref):
    """Inclusion-exclusion over every subset of the boxes [p, ref]: the brute-force truth."""
    total = 0.0
    for k in range(1, len(points) + 1):
        for subset in itertools.combinations(points, k):
            corner = np.max(subset, axis=0)
            total += (-1) ** (k + 1) * np.prod(np.clip(np.asarray(ref) - corner, 0, None))
    return total


def test_hypervolume_3d_matches_inclusion_exclusion():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pts = rng.uniform(0, 1, size=(6, 3))
        df = frame(*[trial("G" * (i + 1), x=p[0], y=p[1], z=p[2]) for i, p in enumerate(pts)])
        expected = _box_union_volume(pts, (1.2, 1.1, 1.0))
        assert A.hypervolume(df, ["x", "y", "z"], reference=(1.2, 1.1, 1.0)) == \
            pytest.approx(expected)
    two = frame(trial("a", x=0, y=0, z=1), trial("b", x=1, y=1, z=0))
    assert A.hypervolume(two, ["x", "y", "z"], reference=(2, 2, 2)) == pytest.approx(5.0)


def test_hypervolume_default_reference_counts_every_front_point():
    df = frame(trial("a", x=1, y=3), trial("b", x=3, y=1))
    # reference (3.2, 3.2): two 2.2 x 0.2 strips plus ... computed directly
    assert A.hypervolume(df, ["x", "y"]) == pytest.approx(_box_union_volume(
        np.array([[1, 3], [3, 1]]), (3.2, 3.2)))
    assert A.hypervolume(frame(trial("a", x=1, status="failed")), ["x"]) == 0.0


# ---------------------------------------------------------------- intervals


def test_t_quantiles_match_tables():
    for df, value in [(1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042)]:
        assert t_quantile(df) == pytest.approx(value, abs=1e-3)
    assert t_quantile(4, 0.99) == pytest.approx(4.604, abs=1e-3)


def test_t_quantiles_match_scipy():
    for df in (1, 2, 3, 7, 8, 50, 400):
        for level in (0.8, 0.95, 0.999):
            assert t_quantile(df, level) == pytest.approx(stats.t.ppf(0.5 + level / 2, df))


def test_mean_and_difference_intervals():
    iv = A.mean_interval([1.0, 2.0, 3.0])
    assert (iv.estimate, iv.n) == (2.0, 3)
    assert iv.hi - iv.estimate == pytest.approx(4.303 / math.sqrt(3), abs=1e-3)
    assert math.isnan(A.mean_interval([1.0]).lo)
    d = A.difference_interval([3.0, 3.2, 2.8], [1.0, 1.1, 0.9])
    assert d.estimate == pytest.approx(2.0) and d.lo > 0


# ---------------------------------------------------------------- per pattern


def test_by_pattern_t_interval_over_seeds_or_evaluation_interval():
    df = frame(*[trial("A*8", seed=s, semantic_loss=v) for s, v in enumerate([3.0, 3.2, 3.4])],
               trial("G*8", semantic_loss=2.5, semantic_loss_lo=2.4, semantic_loss_hi=2.7),
               trial("G*8", seed=1, semantic_loss=9.0, status="stopped", fidelity=0.5))
    table = A.by_pattern(df, ["semantic_loss"]).set_index("pattern")
    assert table.loc["A*8", "n"] == 3 and table.loc["G*8", "n"] == 1
    assert table.loc["A*8", "semantic_loss"] == pytest.approx(3.2)
    half = 4.303 * 0.2 / math.sqrt(3)
    assert table.loc["A*8", "semantic_loss_hi"] == pytest.approx(3.2 + half, abs=1e-3)
    assert (table.loc["G*8", "semantic_loss_lo"], table.loc["G*8", "semantic_loss_hi"]) == (2.4, 2.7)


def test_parse_origins_and_placement_lines():
    assert A.parse_origins("3:1 even_end, list") == [("3:1", "even_end")]
    assert A.parse_origins("1:1 [1, 3, -1], 3:1 front") == [("1:1", "[1, 3, -1]"), ("3:1", "front")]
    assert A.parse_origins("list") == []
    df = frame(trial("A*8", fraction=1.0, val_loss=3.0),
               trial("G*8", fraction=0.0, val_loss=2.9),
               trial("GGGAGGGA", fraction=0.25, origins="3:1 even_end", val_loss=2.5),
               trial("AAGGGGGG", fraction=0.25, origins="3:1 front", val_loss=2.7))
    lines = A.by_placement(df, ["val_loss"])
    assert sorted(lines["placement"].unique()) == ["even_end", "front"]
    even = lines[lines["placement"] == "even_end"]
    assert list(even["pattern"]) == ["G*8", "GGGAGGGA", "A*8"]  # pure stacks are end points


# ---------------------------------------------------------------- gaps


def _gap_frame():
    rows = []
    for s in range(3):
        rows.append(trial("A*8", seed=s, content_loss=3.0 + 0.1 * s, copy_loss=1.0,
                          copy_loss_4_7=1.2, copy_loss_16_plus=0.5 + 0.01 * s))
        rows.append(trial("GGGAGGGA", seed=s, content_loss=2.9 + 0.1 * s, copy_loss=1.05,
                          copy_loss_4_7=1.1, copy_loss_16_plus=0.6 + 0.01 * s))
    rows.append(trial("G*8", content_loss=2.95, content_loss_lo=2.9, content_loss_hi=3.0,
                      copy_loss=1.3, copy_loss_lo=1.2, copy_loss_hi=1.4))
    return frame(*rows)


def test_category_gaps_sign_intervals_and_reference():
    df = _gap_frame()
    assert A.reference_pattern(df) == "A*8"
    assert A.reference_pattern(df, "AAAAAAAA") == "A*8"  # any spelling
    gaps = A.category_gaps(df, categories=["content", "copy"]).set_index(["pattern", "label"])
    assert gaps.attrs["reference"] == "A*8"
    hybrid = gaps.loc[("GGGAGGGA", "content")]
    assert hybrid["gap"] == pytest.approx(0.1) and hybrid["method"] == "seeds"
    assert gaps.loc[("GGGAGGGA", "copy"), "gap"] == pytest.approx(-0.05)
    pure = gaps.loc[("G*8", "copy")]
    assert pure["method"] == "evaluation" and pure["gap"] == pytest.approx(-0.3)
    assert pure["hi"] - pure["gap"] == pytest.approx(0.1)  # seeds' spread on A*8 is 0
    assert "A*8" not in gaps.index.get_level_values("pattern")


def test_copy_run_gaps_ordered_by_run_length():
    gaps = A.copy_run_gaps(_gap_frame())
    hybrid = gaps[gaps["pattern"] == "GGGAGGGA"]
    assert list(hybrid["label"]) == ["4-7", "16+"]
    assert list(hybrid["gap"].round(6)) == [0.1, -0.1]


def test_reference_errors():
    with pytest.raises(ArchsearchError, match="no all-attention"):
        A.reference_pattern(frame(trial("G*8", fraction=0.0, x=1)))
    with pytest.raises(ArchsearchError, match="has no completed"):
        A.reference_pattern(_gap_frame(), "GGAA")


# ---------------------------------------------------------------- choosing


def _choice_frame():
    pts = {"A*8": (1.0, 0.0), "AAGG": (0.1, 0.3), "GGAG": (0.5, 0.1), "G*8": (0.0, 1.0),
           "SSSS": (0.6, 0.6)}
    return frame(*[trial(p, x=x, y=y) for p, (x, y) in pts.items()])


def test_knee_is_farthest_from_the_line_between_extremes():
    df = _choice_frame()
    front = A.pareto_front(df, ["x", "y"])
    assert df.loc[A.knee_point(front, ["x", "y"]), "pattern"] == "AAGG"
    assert A.knee_point(front.iloc[:0], ["x", "y"]) is None


def test_weighted_best_and_recommendation():
    df = _choice_frame()
    pick = A.recommend(df, ["x", "y"])
    assert pick.pattern == "AAGG" and pick.knee == "AAGG" and pick.on_front
    assert pick.runner_up == "GGAG"
    assert pick.margin == pytest.approx(0.6 / 2 - 0.4 / 2)
    assert pick.differences == pytest.approx({"x": 0.4, "y": -0.2})
    assert pick.weights == {"x": 0.5, "y": 0.5}
    assert A.recommend(df, ["x", "y"], {"y": 1.0}).pattern == "A*8"
    assert A.recommend(df, ["x", "y"], [1, 0]).pattern == "G*8"
    with pytest.raises(ArchsearchError, match="not objectives"):
        A.recommend(df, ["x", "y"], {"z": 1.0})


# ---------------------------------------------------------------- loading


def test_load_one_or_several_sweeps(tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        _gap_frame().to_parquet(tmp_path / name / "trials.parquet")
    sweep = A.load_sweep(tmp_path / "one")
    assert sweep.name == "one" and (sweep.trials["sweep"] == "one").all()
    assert sweep.curves.empty and sweep.space is None
    assert [o.metric for o in sweep.objectives] == ["semantic_loss", "copy_loss"]
    both = A.load_trials([tmp_path / "one", tmp_path / "two"])
    assert len(both) == 2 * len(_gap_frame()) and set(both["sweep"]) == {"one", "two"}
    with pytest.raises(ArchsearchError, match="several sweeps"):
        A.load_sweep(tmp_path)
    (tmp_path / "two" / "trials.parquet").unlink()
    assert A.load_sweep(tmp_path).name == "one"  # a storage folder holding one sweep


def test_load_errors_are_one_line(tmp_path):
    for path, message in [(tmp_path / "missing", "no such folder"), (tmp_path, "no trials.parquet")]:
        with pytest.raises(ArchsearchError, match=message) as info:
            A.load_sweep(path)
        assert "\n" not in str(info.value)


# ---------------------------------------------------------------- learning curves, copying


def _curve(trial_id, step, gain, emerged, **m):
    return {"trial_id": trial_id, "step": step, "tokens_seen": 100 * step,
            "copy_gain": gain, "copy_emerged": emerged} | m


def _curve_frames():
    trials = frame(trial("A*2", seed=0), trial("A*2", seed=1), trial("G*2", seed=0),
                   trial("GA", seed=0), trial("AG", seed=0, status="stopped", fidelity=0.5))
    ids = dict(zip(zip(trials["pattern"], trials["seed"]), trials["trial_id"], strict=True))
    rows = []
    # A*2 seed 0 copies from step 2, seed 1 from step 3 (after a flicker at step 2)
    for step, gain, verdict in [(1, 0.0, 0.0), (2, 1.0, 1.0), (3, 2.0, 1.0)]:
        rows.append(_curve(ids[("A*2", 0)], step, gain, verdict, content_loss=4.0 - step,
                           content_loss_lo=3.9 - step, content_loss_hi=4.1 - step))
    for step, gain, verdict in [(1, 0.0, 0.0), (2, 0.5, 1.0), (3, 0.05, 0.0), (4, 1.5, 1.0)]:
        rows.append(_curve(ids[("A*2", 1)], step, gain, verdict, content_loss=4.2 - step))
    for step in (1, 2, 3):  # never copies
        rows.append(_curve(ids[("G*2", 0)], step, 0.01, 0.0, content_loss=3.5 - 0.5 * step,
                           content_loss_lo=3.4 - 0.5 * step, content_loss_hi=3.6 - 0.5 * step))
    for step in (1, 2):  # no copy token scored at any evaluation
        rows.append(_curve(ids[("GA", 0)], step, np.nan, np.nan, content_loss=3.0))
    rows.append(_curve(ids[("AG", 0)], 1, 3.0, 1.0, content_loss=1.0))  # stopped: left out
    return frame(*rows), trials


def test_pattern_curves_average_seeds_or_keep_the_evaluation_interval():
    curves, trials = _curve_frames()
    table = A.pattern_curves(curves, trials).set_index(["pattern", "tokens_seen"])
    assert A.curve_metrics(curves.columns) == ["content_loss", "copy_gain"]
    assert "AG" not in table.index.get_level_values("pattern")  # stopped early
    both = table.loc[("A*2", 200)]
    assert both["n"] == 2 and both["content_loss"] == pytest.approx(2.1)
    half = t_quantile(1) * np.std([2.0, 2.2], ddof=1) / math.sqrt(2)
    assert both["content_loss_hi"] - both["content_loss"] == pytest.approx(half)
    assert table.loc[("A*2", 400), "n"] == 1  # only seed 1 evaluated there
    single = table.loc[("G*2", 300)]
    assert (single["content_loss_lo"], single["content_loss_hi"]) == pytest.approx((1.9, 2.1))
    everything = A.pattern_curves(curves, trials, full_budget_only=False)
    assert "AG" in set(everything["pattern"])


def test_copy_emergence_per_trial_and_per_pattern():
    curves, trials = _curve_frames()
    per_trial = A.copy_emergence(curves, trials).set_index(["pattern", "seed"])
    first = per_trial.loc[("A*2", 0)]
    assert first["emerged"] and first["step"] == 2 and first["tokens_seen"] == 200
    assert first["held"] and first["copy_gain"] == 2.0
    flicker = per_trial.loc[("A*2", 1)]
    assert flicker["step"] == 2 and not flicker["held"]
    never = per_trial.loc[("G*2", 0)]
    assert not never["emerged"] and math.isnan(never["step"]) and never["known"]
    assert not per_trial.loc[("GA", 0), "known"]
    patterns = A.emergence_by_pattern(A.copy_emergence(curves, trials)).set_index("pattern")
    assert patterns.loc["A*2", "verdict"] == "yes" and patterns.loc["A*2", "n_emerged"] == 2
    assert patterns.loc["A*2", "tokens_seen"] == 200 == patterns.loc["A*2", "earliest_tokens"]
    assert patterns.loc["G*2", "verdict"] == "not yet"
    assert patterns.loc["GA", "verdict"] == "unknown"
    # one seed of two: the pattern has not emerged yet, and says how far it got
    later = curves.copy()
    later.loc[later["trial_id"] == trials.loc[1, "trial_id"], "copy_emerged"] = 0.0
    partial = A.emergence_by_pattern(A.copy_emergence(later, trials)).set_index("pattern")
    assert partial.loc["A*2", "verdict"] == "1 of 2 seeds"
    assert math.isnan(partial.loc["A*2", "tokens_seen"])
    assert partial.loc["A*2", "earliest_tokens"] == 200
    # the latest first emergence over seeds is the pattern's
    shifted = curves.copy()
    seed1 = (shifted["trial_id"] == trials.loc[1, "trial_id"]) & (shifted["step"] < 4)
    shifted.loc[seed1, "copy_emerged"] = 0.0
    latest = A.emergence_by_pattern(A.copy_emergence(shifted, trials)).set_index("pattern")
    assert latest.loc["A*2", "step"] == 4 and latest.loc["A*2", "earliest_tokens"] == 200


def test_copy_columns_are_metrics_by_run_and_position():
    names = ["copy_gain", "copy_gain_4_7", "copy_gain_16_plus", "copy_loss_pos_1",
             "copy_gain_pos_2", "copy_gain_pos_8_plus", "copy_emerged", "copy_gain_lo"]
    assert A.columns.metric_columns(names) == names[:6]  # the verdict is not averaged
    assert A.columns.copy_buckets(names, "copy_gain") == [("copy_gain_4_7", 4, "4-7"),
                                                          ("copy_gain_16_plus", 16, "16+")]
    assert A.columns.copy_positions(names) == [("copy_gain_pos_2", 2, "2"),
                                               ("copy_gain_pos_8_plus", 8, "8+")]
    assert A.columns.copy_positions(names, "copy_loss") == [("copy_loss_pos_1", 1, "1")]
