"""Ladders: redrawing patterns at other depths, the token rule, and the ladder section's checks."""

from pathlib import Path

import pytest

from archsearch.errors import SpaceError
from archsearch.pattern import canonical
from archsearch.scaling.ladder import (
    check_ladder,
    load_ladder_space,
    plan_ladder,
    series_from_candidates,
)
from archsearch.scaling.rule import PatternRule, RuleError, from_space, infer, shortest_period
from archsearch.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "search_spaces/ladder_quickstart.yaml"

SPACE = """
name: tiny
model: {depth: 8, d_model: 32, n_heads: 4}
patterns:
  candidates: ["A*8", "GAGGGAGG"]
  generate: {ratios: ["15:1", "3:1"], placements: [even_end, front]}
data: {vocab_size: 300, seq_len: 32}
training: {batch_size: 2}
ladder:
  rungs: [{d_model: 16, depth: 8}, {d_model: 32, depth: 16, lr: 0.001},
          {d_model: 48, depth: 32, tokens: 1000}]
  seeds: [0, 1]
  tokens_per_param: 0.5
  min_tokens: 5000
  max_tokens: 20000
"""


def layers(text: str) -> tuple[str, ...]:
    return tuple(text)


def test_a_generated_pattern_keeps_its_ratio_and_placement():
    rule = PatternRule("generate", layers("GGGA"), "3:1", "even_end")
    assert canonical(rule.at_depth(32)) == "(GGGA)*8"
    assert "".join(rule.at_depth(8)) == "GGGA" * 2
    front = PatternRule("generate", layers("AAGGGGGG"), "3:1", "front")
    assert "".join(front.at_depth(16)) == "AAAA" + "G" * 12


def test_an_explicit_pattern_repeats_its_period_and_refuses_a_cut_period():
    rule = infer(layers("GAGGGAGG"))
    assert rule.kind == "repeat" and shortest_period(rule.source) == layers("GAGG")
    assert canonical(rule.at_depth(32)) == "(GAGG)*8"
    with pytest.raises(RuleError, match="not a multiple of 4"):
        rule.at_depth(30)


def test_a_bare_pattern_gets_its_own_ratio_and_the_first_fitting_placement():
    rule = infer(layers("GGGAGGGA"))
    assert (rule.kind, rule.ratio, rule.placement) == ("generate", "3:1", "even_end")
    assert infer(layers("AAAA")).describe() == "all attention (ratio 0:1)"
    assert canonical(infer(layers("G" * 4)).at_depth(32)) == "G*32"


def test_the_space_generator_decides_over_the_layer_counts():
    # at 8 layers 15:1 and 7:1 both give one attention layer; at 32 they differ
    space = SearchSpace.from_text(SPACE)
    candidate = next(c for c in space.candidates if "15:1 even_end" in c.origins)
    rule = from_space(space, candidate.layers)
    assert rule.ratio == "15:1"
    assert sum(s == "A" for s in rule.at_depth(32)) == 2


def test_the_plan_crosses_patterns_rungs_and_seeds_with_the_token_rule():
    ls = check_ladder(SearchSpace.from_text(SPACE))
    points = plan_ladder(ls, series_from_candidates(ls.space))
    assert len(points) == len(ls.space.candidates) * 3 * 2
    per_step = 2 * 32
    for point in points:
        trial = point.trial
        assert point.tokens % per_step == 0 and trial.training.tokens == point.tokens
        assert len(trial.layers) == ls.rungs[point.rung].depth
        assert trial.training.seed == point.seed
        assert trial.model.d_model == ls.rungs[point.rung].d_model
        assert trial.model.n_heads == trial.model.d_model // 8  # head width kept
        if point.rung == 2:
            assert point.tokens == 1024  # explicit rung tokens, rounded to whole batches
        else:
            raw = max(0.5 * point.planned_params, 5000)
            assert abs(point.tokens - min(raw, 20000)) <= per_step / 2
    assert {p.trial.training.lr for p in points if p.rung == 1} == {0.001}
    assert len({p.point for p in points}) == len(points)


def test_ladder_errors_name_the_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPACE.replace("{d_model: 16, depth: 8}", "{d_model: 20, depth: 8}"))
    with pytest.raises(SpaceError, match=r"bad.yaml:\d+: ladder.rungs\[0\]: .*head width 8"):
        load_ladder_space(bad)
    bad.write_text(SPACE.replace("lr: 0.001", "width: 3"))
    with pytest.raises(SpaceError, match=r"ladder.rungs\[1\].width: unknown rung key"):
        load_ladder_space(bad)
    bad.write_text(SPACE + "  metrics: [semantic_los]\n")
    with pytest.raises(SpaceError, match=r"ladder.metrics\[0\]: .*did you mean 'semantic_loss'"):
        load_ladder_space(bad)
    bad.write_text(SPACE.split("ladder:")[0])
    with pytest.raises(SpaceError, match="no 'ladder' section"):
        load_ladder_space(bad)


def test_a_rung_the_pattern_cannot_reach_is_refused_before_training():
    text = SPACE.replace("{d_model: 16, depth: 8}", "{d_model: 16, depth: 6}")
    ls = check_ladder(SearchSpace.from_text(text))
    with pytest.raises(SpaceError, match="GAGGGAGG at depth 6"):
        plan_ladder(ls, series_from_candidates(ls.space))


def test_the_quickstart_ladder_is_valid():
    ls = load_ladder_space(QUICKSTART)
    points = plan_ladder(ls, series_from_candidates(ls.space))
    assert {p.pattern for p in points if p.rung == 2} == {"A*12", "(GGGA)*3", "(GA)*6"}
