"""Search-space files: validation with file:line:field errors, sampling, conditional fields, grid."""

import dataclasses
from pathlib import Path

import pytest

from archsearch.errors import ArchsearchError, PatternError, SpaceError
from archsearch.space import SearchSpace
from archsearch.space.distributions import Choice, IntRange, Uniform

SPACES = sorted(Path(__file__).resolve().parents[1].glob("search_spaces/*.yaml"))

CONDITIONAL = """\
name: conditional
model:
  depth: 4
  d_model: {choices: [32, 64]}
symbols:
  G: {kind: gdn, head_dim_k: {choices: [8, 16]}}
  S: {kind: attention, window: {choices: [16, 32]}}
patterns:
  candidates: ["A*4", "G*4", "GGGA", "SGSG"]
training:
  lr: {loguniform: [1.0e-4, 1.0e-2]}
  batch_size: {int: [2, 8], step: 2}
objectives:
  - {metric: semantic_loss}
search: {algorithm: tpe, samples: 4}
"""


def load(text: str) -> SearchSpace:
    return SearchSpace.from_text(text, "space.yaml")


def error_of(text: str) -> str:
    with pytest.raises(ArchsearchError) as info:
        load(text)
    return str(info.value)


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.name)
def test_shipped_spaces_validate_and_sample(path):
    space = SearchSpace.load(path)
    for config in space.sample(3, seed=0):
        assert config.pattern in space.pattern_choices
        for section in (config.model, config.data, config.training, config.evaluation,
                        *config.symbols.values()):
            for f in dataclasses.fields(section):
                assert not isinstance(getattr(section, f.name), Choice | IntRange | Uniform)


def test_quickstart_has_the_required_patterns():
    space = SearchSpace.load(Path(__file__).resolve().parents[1] / "search_spaces/quickstart.yaml")
    patterns = space.pattern_choices
    assert len(patterns) >= 8
    assert {"A*8", "G*8", "GGGAGGGA"} <= set(patterns)


def test_sampling_is_seeded_and_fully_resolved():
    space = load(CONDITIONAL)
    first = [c.params for c in space.sample(6, seed=3)]
    assert first == [c.params for c in space.sample(6, seed=3)]
    for config in space.sample(20, seed=1):
        assert isinstance(config.model.d_model, int)
        assert 1e-4 <= config.training.lr <= 1e-2
        assert config.training.batch_size in (2, 4, 6, 8)


def test_symbol_fields_appear_only_when_the_pattern_uses_the_symbol():
    space = load(CONDITIONAL)
    seen = set()
    for config in space.sample(40, seed=0):
        layers = set(config.layers)
        assert ("symbols.G.head_dim_k" in config.params) == ("G" in layers)
        assert ("symbols.S.window" in config.params) == ("S" in layers)
        assert set(config.symbols) == layers
        seen.add(config.pattern)
    assert len(seen) == 4


def test_grid_enumerates_each_point_exactly_once():
    text = CONDITIONAL.replace("{loguniform: [1.0e-4, 1.0e-2]}", "{choices: [0.001, 0.01]}")
    space = load(text.replace("algorithm: tpe", "algorithm: grid"))
    points = space.grid()
    keys = [tuple(sorted(p.items())) for p in points]
    assert len(keys) == len(set(keys))
    # per pattern: d_model 2 x lr 2 x batch 4, times 2 for G's or S's own field
    per_pattern = {"A*4": 16, "G*4": 32, "GGGA": 32, "SGSG": 64}
    assert len(points) == sum(per_pattern.values())
    assert [c.params for c in space.sample(len(points), seed=0)] == points


def test_grid_refuses_continuous_ranges():
    assert "grid search needs finite values" in error_of(CONDITIONAL.replace("algorithm: tpe", "algorithm: grid"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nmodle: {d_model: 4}\n", "space.yaml:2: modle: unknown key 'modle'; did you mean 'model'?"),
        ("name: x\ntraining:\n  lr: fast\n", "space.yaml:3: training.lr: expected a number"),
        ("name: x\ntraining:\n  batchsize: 3\n", "did you mean 'batch_size'?"),
        ("name: x\nsearch: {algorithm: tpee}\n", "search.algorithm: must be one of tpe, nsga2, gp, random, grid, got 'tpee'; did you mean 'tpe'?"),
        ("name: x\nobjectives: [{metric: semantc_loss}]\n", "objectives[0].metric: unknown metric 'semantc_loss'; did you mean 'semantic_loss'?"),
        ("name: x\nsymbols: {G: {kind: gdm}}\n", "symbols.G.kind: unknown layer kind 'gdm'; did you mean 'gdn'?"),
        ("name: x\nsymbols: {G: {kind: gdn, window: 4}}\n", "symbols.G.window: unknown key 'window'"),
        ("name: x\ntraining: {lr: {loguniform: [0, 1]}}\n", "training.lr: 'loguniform' needs positive bounds"),
        ("name: x\nmodel: {d_model: {choices: [32, wide]}}\n", "model.d_model: expected an integer, got 'wide'"),
        ("name: x\npatterns: {generate: {ratios: ['3:1'], placements: [evn_end]}}\nmodel: {depth: 8}\n", "did you mean 'even_end'?"),
        ("name: x\n  bad: [\n", "space.yaml:2: malformed YAML"),
        ("- just\n- a list\n", "a search space is a YAML mapping"),
        ("description: no name\n", "missing required field 'name'"),
        ("name: x\nsearch: {samples: 0}\n", "search.samples: must be at least 1"),
    ],
)
def test_errors_name_file_line_and_field(text, expected):
    if text.startswith("name") and "candidates" not in text and "generate" not in text:
        text += "patterns: {candidates: ['GA']}\n"
    message = error_of(text)
    assert expected in message
    assert "\n" not in message


def test_pattern_errors_carry_file_line_field_and_caret():
    text = "name: x\nmodel: {depth: 4}\npatterns:\n  candidates: [GGGA, GGXA]\n"
    with pytest.raises(PatternError) as info:
        load(text)
    first, pattern, caret = str(info.value).splitlines()
    assert first.startswith("space.yaml:4: patterns.candidates[1]: unknown layer symbol 'X'")
    assert pattern.strip() == "GGXA" and caret.index("^") == pattern.index("X")


def test_depth_mismatch_is_a_pattern_error():
    with pytest.raises(PatternError, match="has 5 layers but model.depth is 4"):
        load("name: x\nmodel: {depth: 4}\npatterns: {candidates: [GGGGA]}\n")


def test_duplicate_spellings_collapse():
    space = load("name: x\nmodel: {depth: 8}\npatterns:\n  candidates: [GGGAGGGA, (GGGA)*2]\n"
                 "  generate: {ratios: ['3:1'], placements: [even_end]}\n")
    assert len(space.candidates) == 1
    assert space.candidates[0].origins == ("list", "3:1 even_end")


def test_missing_file_is_one_line():
    with pytest.raises(SpaceError, match="nope.yaml: no such file"):
        SearchSpace.load("nope.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\nmodel: {d_model: 0}\n", "model.d_model: must be positive, got 0"),
        ("name: x\nmodel: {d_model: {choices: [64, -1]}}\n", "model.d_model: must be positive, got -1"),
        ("name: x\ndata: {probe_fraction: 1.5}\n", "data.probe_fraction: must be in [0, 1)"),
        ("name: x\nsymbols: {G: {kind: gdn, head_dim_k: 0}}\n", "symbols.G.head_dim_k: must be positive"),
        ("name: x\nresources: {gpus: 1.5}\n", "resources.gpus: a fraction of one GPU or whole GPUs"),
    ],
)
def test_out_of_range_values(text, expected):
    assert expected in error_of(text + "patterns: {candidates: ['GA']}\n")


def test_an_error_on_a_field_left_to_its_default_points_at_its_nearest_written_ancestor():
    from archsearch.space.loader import nearest_line

    lines = {("model",): 3, ("model", "d_model"): 4, ("ladder", "rungs", 0): 9}
    assert nearest_line(lines, ("model", "d_model")) == 4
    assert nearest_line(lines, ("model", "n_heads")) == 3  # not written: its section's line
    assert nearest_line(lines, ("ladder", "rungs", 0, "depth")) == 9
    assert nearest_line(lines, ("training", "lr")) is None and nearest_line(lines, ()) is None
