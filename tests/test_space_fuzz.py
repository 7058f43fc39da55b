"""Fuzzing: malformed YAML and patterns only ever give the project's one-line errors."""

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsearch.errors import ArchsearchError
from archsearch.pattern import parse
from archsearch.space import SearchSpace
from archsearch.space.build import hybrid_config

QUICKSTART = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "search_spaces/quickstart.yaml").read_text()
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _paths(value, (*prefix, i))


PATHS = [p for p in _paths(QUICKSTART) if p]


def _mutated(path, value):
    tree = yaml.safe_load(yaml.safe_dump(QUICKSTART))
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


def _check(text: str) -> None:
    try:
        space = SearchSpace.from_text(text, "fuzz.yaml")
    except ArchsearchError as err:
        assert str(err).startswith("fuzz.yaml"), str(err)
        return
    for config in space.sample(2, seed=0):  # whatever validates must also sample...
        hybrid_config(config)  # ...and build its models (tests/test_fuzz_bad_input.py runs them)


@given(st.sampled_from(PATHS), values)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_quickstart_fails_cleanly_or_works(path, value):
    _check(yaml.safe_dump(_mutated(path, value)))


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_arbitrary_text_fails_cleanly(text):
    _check(text)


@given(st.text(alphabet="AGSX()*0123456789 -+", max_size=30))
@settings(max_examples=500, deadline=None)
def test_arbitrary_patterns_fail_cleanly(text):
    try:
        assert parse(text, "AGS")
    except ArchsearchError as err:
        assert "^" in str(err)
