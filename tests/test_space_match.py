"""model.match: candidates resized to the reference's size, checked against built models."""

import dataclasses
from pathlib import Path

import pytest
import torch

from archsearch.cli import main
from archsearch.errors import ArchsearchError, PatternError, SpaceError
from archsearch.model import HybridLM
from archsearch.model.cost import size_measure
from archsearch.pattern import canonical, parse
from archsearch.space import SearchSpace
from archsearch.space.build import hybrid_config
from archsearch.space.match import resized, step_of, trial_size
from archsearch.summary import base_config
from archsearch.sweep.results import metrics_of

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted(ROOT.glob("search_spaces/*.yaml"))
MATCHED_SPACES = ("quickstart.yaml", "ratio_placement.yaml", "calibration.yaml",
                  "gpu_sweep.yaml", "gpu_flashqla.yaml", "placement_grid.yaml",
                  "supernet_quickstart.yaml")

# Six 4-layer stacks whose sizes differ by up to ~40%; MATCH is filled in per test.
TINY = """\
name: tiny_match
model:
  depth: 4
  d_model: 48
  n_heads: 4
  mlp_ratio: 2.75
  match: {MATCH}
symbols:
  G: {{kind: gdn, head_dim_k: 12, expand_v: 2.0}}
patterns:
  candidates: ["A*4", "G*4", "GGGA", "GAGA", "AAAG", "SGSG"]
data: {{vocab_size: 300, seq_len: 32}}
objectives: [{{metric: semantic_loss}}]
search: {{algorithm: grid}}
"""
MLP = '{reference: "GGGA", resize: mlp}'


def load(match: str, text: str = TINY) -> SearchSpace:
    return SearchSpace.from_text(text.format(MATCH=match), "space.yaml")


def error_of(match: str, text: str = TINY) -> str:
    with pytest.raises(ArchsearchError) as info:
        load(match, text)
    return str(info.value)


def built_counts(trial) -> tuple[int, int]:
    """(all, non-embedding) parameters of the model itself, built on the meta device."""
    with torch.device("meta"):
        model = HybridLM(hybrid_config(trial))
    total = sum(p.numel() for p in model.parameters())
    return total, total - model.embed_tokens.weight.numel()


def unmatched(space: SearchSpace) -> SearchSpace:
    """The same space without model.match (for the sizes before resizing)."""
    spec = dataclasses.replace(space.spec, model=dataclasses.replace(space.spec.model, match=None))
    return SearchSpace(spec, space.file, {})


def reference_pattern(space: SearchSpace) -> str:
    return canonical(parse(space.spec.model.match.reference, space.symbols))


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_every_shipped_candidate_lands_within_the_tolerance_of_its_reference(path):
    space = SearchSpace.load(path)
    rule = space.spec.model.match
    if path.name not in MATCHED_SPACES:
        assert rule is None  # olmo_hybrid_7b stays exact; the ladder redraws sizes itself
        return
    assert rule.measure == "non_embedding_params"
    before = base_config(unmatched(space), reference_pattern(space))
    _, target = built_counts(before)  # the reference as the file describes it, unresized
    for point in space.grid():
        trial = space.resolve(point)
        _, non_embedding = built_counts(trial)
        assert trial.match.target == target
        assert trial.match.size == non_embedding  # the cost model's figure is the model's
        assert abs(non_embedding - target) / target <= rule.tolerance
    sizes = {c.pattern: built_counts(base_config(unmatched(space), c.pattern))[1]
             for c in space.candidates}
    # matching mattered: unmatched sizes spread over 5% (7% for gpu_flashqla, more elsewhere)
    assert (max(sizes.values()) - min(sizes.values())) / target > 0.05


@pytest.mark.parametrize("match, field, check", [
    (MLP, "mlp_hidden", lambda config, v: config.mlp_hidden == v),
    ('{reference: "GGGA", resize: d_model, measure: params, tolerance: 0.05}', "d_model",
     lambda config, v: config.d_model == v and all(
         spec.head_dim == v // 4 for spec in config.layers if spec.kind == "attention")),
    ('{reference: "GAGA", resize: gdn_head, multiple_of: 2, tolerance: 0.05}', "gdn_head_dim_k",
     lambda config, v: all(spec.head_dim_k == v and spec.head_dim_v == 2 * v
                           for spec in config.layers if spec.kind == "gdn")),
])
def test_the_built_model_has_the_resized_field_and_the_predicted_size(match, field, check):
    text = TINY
    if "gdn_head" in match:  # every stack needs a GDN layer to resize
        text = TINY.replace('"A*4", ', "").replace('"AAAG", ', "")
    if "d_model" in match:  # wide enough for steps of 8 to land within 5%
        text = TINY.replace("d_model: 48", "d_model: 192")
    space = load(match, text)
    measure = space.spec.model.match.measure
    for candidate in space.candidates:
        trial = base_config(space, candidate.pattern)
        result = trial.match
        assert result.field == field
        assert check(hybrid_config(trial), result.value)
        total, non_embedding = built_counts(trial)
        assert result.size == (total if measure == "params" else non_embedding)
        assert metrics_of(trial.match_columns())[f"match.{field}"] == result.value


@pytest.mark.parametrize("match", [
    MLP,
    '{reference: "GGGA", resize: d_model, tolerance: 0.5}',
    '{reference: "GAGA", resize: mlp, measure: train_flops_per_token}',
    '{reference: "GAGA", resize: mlp, measure: params, multiple_of: 32, tolerance: 0.1}',
])
def test_the_chosen_size_is_the_closest_allowed_one(match):
    """Bisection against brute force over every allowed value (and the unresized one)."""
    space = load(match)
    rule = space.spec.model.match
    for candidate in space.candidates:
        trial = base_config(space, candidate.pattern)
        result = trial.match
        plain = base_config(unmatched(space), candidate.pattern)
        unit = step_of(plain, rule)
        allowed = [result.natural, *range(unit, 40 * unit, unit)]
        gaps = {v: abs(trial_size(resized(plain, rule.resize, v), rule.measure) - result.target)
                for v in allowed}
        assert abs(result.size - result.target) == min(gaps.values())
        assert result.value % unit == 0 or result.value == result.natural


def test_the_reference_keeps_its_own_size_and_the_others_move_toward_it():
    space = load(MLP)
    reference = base_config(space, "GGGA").match
    assert reference.value == reference.natural and reference.deviation == 0
    assert base_config(space, "A*4").match.value > reference.natural  # attention is smaller
    assert base_config(space, "G*4").match.value < reference.natural


def test_a_number_as_the_reference():
    space = load("{reference: 1.6e+5, resize: mlp}")
    for candidate in space.candidates:
        result = base_config(space, candidate.pattern).match
        assert result.target == 160_000 and result.reference == "160,000"
        assert result.reference_model is None
        _, non_embedding = built_counts(base_config(space, candidate.pattern))
        assert abs(non_embedding - 160_000) <= 0.02 * 160_000
    as_string = load('{reference: "1.6e5", resize: mlp}')  # YAML 1.1 reads 1.6e5 as a string
    assert base_config(as_string, "A*4").match == base_config(space, "A*4").match


def test_tuned_sizes_are_matched_per_trial_and_checked_at_every_choice():
    text = TINY.replace("d_model: 48", "d_model: {{choices: [48, 96]}}")
    space = load(MLP, text)
    targets = set()
    for point in space.grid():
        trial = space.resolve(point)
        _, non_embedding = built_counts(trial)
        targets.add(trial.match.target)
        assert abs(non_embedding - trial.match.target) <= 0.02 * trial.match.target
    assert len(targets) == 2  # the reference is rebuilt at each d_model
    # 1.2% holds at d_model 16 but not at 48 (AAAG lands 1.35% below): the error names 48
    message = error_of('{reference: "GGGA", resize: mlp, tolerance: 0.012}',
                       TINY.replace("d_model: 48", "d_model: {{choices: [16, 48]}}"))
    assert "model.match: AAAG (with model.d_model=48) lands at best at" in message
    assert "(mlp_hidden 168), -1.35% from the target" in message


def test_a_too_tight_tolerance_is_one_line_naming_pattern_best_and_tolerance():
    message = error_of('{reference: "GGGA", resize: mlp, tolerance: 0.0001}')
    assert message.startswith("space.yaml:7: model.match: ")
    assert "\n" not in message
    # hand count at d_model 48 and vocabulary 300: attention 4*48*48 + 96 (QK-norm), SwiGLU
    # 3*48*mlp, 2 norms of 48 per layer; final norm 48 and LM head 300*48; GGGA's GDN layer
    # 48*(2*48 + 2*96 + 2*4) + 96*48 + conv 192*4 + 8 + 24 and SwiGLU at 136 (2.75*48 up to 8)
    assert "A*4 lands at best at 162,672 non-embedding parameters (mlp_hidden 192)" in message
    assert "+0.83% from the target 161,328 of GGGA; tolerance 0.01%" in message
    message = error_of('{reference: "GGGA", resize: gdn_head}')
    assert "A*4 has nothing to resize: it has 130,416 non-embedding parameters" in message
    assert "tolerance 2.00%" in message


@pytest.mark.parametrize(("match", "expected"), [
    ('{reference: GGGA, resize: mpl}',
     ("space.yaml:7: model.match.resize: must be one of d_model, mlp, gdn_head, got 'mpl'; "
      "did you mean 'mlp'?")),
    ('{reference: GGGA, resize: mlp, tolerence: 0.1}',
     "model.match.tolerence: unknown key 'tolerence'; did you mean 'tolerance'?"),
    ('{reference: GGGA}', "model.match: missing required field 'resize'"),
    ('{reference: GGGA, resize: mlp, measure: flops}',
     "model.match.measure: must be one of non_embedding_params, params, train_flops_per_token"),
    ('{reference: GGGA, resize: mlp, tolerance: 2}',
     "model.match.tolerance: a fraction in (0, 1) such as 0.02, got 2.0"),
    ('{reference: GGGA, resize: mlp, tolerance: {choices: [0.1, 0.2]}}',
     "model.match.tolerance: expected a number"),
    ('{reference: -3, resize: mlp}', "model.match.reference: a size must be a positive number"),
    ('{reference: GGGA, resize: mlp, multiple_of: 0}', "model.match.multiple_of: must be positive"),
    ('{reference: GGGA, resize: d_model, multiple_of: 4}',
     "model.match.multiple_of: multiple_of 4 is not a multiple of 8, which the heads of A*4 need"),
    ('[GGGA, mlp]', "model.match: expected a mapping of MatchSection fields"),
])
def test_yaml_errors_name_the_field(match, expected):
    message = error_of(match)
    assert expected in message
    assert "\n" not in message


def test_a_bad_reference_pattern_points_at_the_field():
    with pytest.raises(PatternError) as info:
        load('{reference: "GGXA", resize: mlp}')
    assert str(info.value).startswith("space.yaml:7: model.match.reference: unknown layer symbol")


def test_resizing_a_tuned_field_or_using_a_ladder_is_refused():
    tuned = TINY.replace("d_model: 48", "d_model: {{choices: [48, 64]}}")
    assert ("model.match.resize: d_model resizes model.d_model, which is tuned"
            in error_of('{reference: GGGA, resize: d_model}', tuned))
    tuned = TINY.replace("head_dim_k: 12", "head_dim_k: {{choices: [8, 12]}}")
    assert ("gdn_head resizes symbols.G.head_dim_k, which is tuned"
            in error_of('{reference: GGGA, resize: gdn_head}', tuned))
    ladder = TINY + "ladder: {{rungs: [{{d_model: 32, depth: 4}}]}}\n"
    with pytest.raises(SpaceError, match="model.match: cannot be used with a ladder section"):
        load(MLP, ladder)


def test_patterns_and_validate_show_the_match(capsys):
    quickstart = str(ROOT / "search_spaces/quickstart.yaml")
    assert main(["patterns", quickstart]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert "mlp_hidden" in header and "vs target" in header
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert "264->368" in rows["A*8"] and "+0.44%" in rows["A*8"]
    assert "264->232" in rows["G*8"]
    assert " 264 " in rows["GGGAGGGA"] and "+0.00%" in rows["GGGAGGGA"]
    assert rows["GGGAGGGA"].endswith("3:1 even_end, reference")
    assert "matched on non-embedding parameters: target 1,238,832 (GGGAGGGA at its own size)" in out
    assert main(["validate", quickstart]) == 0
    out = capsys.readouterr().out
    assert ("match: non-embedding parameters of 1,238,832 (the size of GGGAGGGA), resizing the "
            "MLP hidden width, mlp_hidden 232..368; every candidate within 0.44%") in out


def test_the_trainer_reports_the_matched_size(tmp_path):
    from archsearch.trainer import train_proxy

    text = TINY.replace("data: {{", "training: {{tokens: 128, batch_size: 2}}\n"
                                     "evaluation: {{every: 2, validation_tokens: 256, "
                                     "probe_examples: 2, bootstrap: 5, probe_steps: 2, probe_len: 32}}\n"
                                     "data: {{builtin_documents: 30, ")
    space = load(MLP, text)
    trial = base_config(space, "A*4")
    reports = []
    train_proxy(trial, lambda metrics, _: reports.append(metrics), tmp_path / "work",
                tmp_path / "cache")
    final = reports[-1]
    assert final["match.mlp_hidden"] == trial.match.value == 192
    # restated at the tokenizer's vocabulary, which the reported params use as well
    target, deviation = final["match.target"], final["match.deviation"]
    assert final["non_embedding_params"] == pytest.approx(target * (1 + deviation), rel=1e-12)
    assert abs(deviation) <= 0.02
    vocab = final["params"] - final["non_embedding_params"]  # the input embedding
    reference = hybrid_config(base_config(unmatched(space), "GGGA"), vocab // 48)
    assert target == size_measure(reference, "non_embedding_params", 32)
