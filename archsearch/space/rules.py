"""The value rules of the search-space schema, each attached to its field in ``schema.py``.

A rule is a function from a field's value to the problem with it (``None`` when the value is
fine). A schema field names its rule beside its default with ``checked(default, rule)``; the
loader checks it once, at load time, for every value the field may take (a fixed value, each
choice, a range's two ends), and reports a problem as a one-line ``SpaceError`` naming the file,
the line and the field. Nothing downstream checks these values again: a file that
``archsearch validate`` accepts does not fail later for a reason a rule could have seen.

Rules that involve two fields (a BPE's smallest vocabulary, attention heads against the width)
are checked by ``SearchSpace`` after loading, as are the sizes of every candidate's model.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from archsearch.pattern.grammar import MAX_LAYERS

Rule = Callable[[Any], "str | None"]
"""The problem with a value, as the end of a sentence ("must be positive, got 0"), or None."""

RULE_KEY = "archsearch.rule"  # the dataclass field metadata key a rule is stored under

MIN_SEQ_LEN = 16  # the shortest data.seq_len: every probe and a copy run fit in a training row
MIN_BPE_VOCAB = 260  # a byte-level BPE: 256 bytes, the end-of-text token and a few merges
# ids the probes reserve above the text vocabulary; data/probes/base.py lays them out
# (BLOCK_SIZE, which a test holds equal to this)
PROBE_BLOCK = 152
MAX_NAME_LENGTH = 100


def checked(default: Any = dataclasses.MISSING, rule: Rule | None = None, *,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a default (or factory) and the rule its values must follow."""
    metadata = {RULE_KEY: rule} if rule is not None else {}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def rule_of(field: dataclasses.Field) -> Rule | None:
    """The rule attached to a schema field, if any."""
    return field.metadata.get(RULE_KEY)


# ---------------------------------------------------------------- numbers


def positive(x: Any) -> str | None:
    return None if x > 0 else f"must be positive, got {x!r}"


def non_negative(x: Any) -> str | None:
    return None if x >= 0 else f"must not be negative, got {x!r}"


def at_least(low: float, unit: str = "") -> Rule:
    after = f" {unit}" if unit else ""

    def rule(x: Any) -> str | None:
        return None if x >= low else f"must be at least {low}{after}, got {x!r}"
    return rule


def layer_count(x: Any) -> str | None:
    """A stack's depth: the grammar's limit holds for generated stacks too."""
    return None if 1 <= x <= MAX_LAYERS else f"must be in 1 .. {MAX_LAYERS} layers, got {x!r}"


def layer_counts(items: Any) -> str | None:
    return next((layer_count(x) for x in items if layer_count(x)), None)


def fraction(x: Any) -> str | None:
    """A share that may be 0 but not all: [0, 1)."""
    return None if 0 <= x < 1 else f"must be in [0, 1), got {x!r}"


def open_fraction(x: Any) -> str | None:
    """A share that must hold something on both sides: (0, 1)."""
    return None if 0 < x < 1 else f"must be in (0, 1) (both sides need documents), got {x!r}"


def tolerance_fraction(x: Any) -> str | None:
    return None if 0 < x < 1 else f"a fraction in (0, 1) such as 0.02, got {x!r}"


def greater_than(low: float) -> Rule:
    def rule(x: Any) -> str | None:
        return None if x > low else f"must be greater than {low}, got {x!r}"
    return rule


def closed_fraction(x: Any) -> str | None:
    return None if 0 <= x <= 1 else f"must be in [0, 1], got {x!r}"


def seed_value(x: Any) -> str | None:
    # seeds feed numpy's and Optuna's generators, which take 0 .. 2**32 - 1
    return None if 0 <= x < 2**32 else f"must be in [0, 2**32), got {x!r}"


def gpu_share(x: Any) -> str | None:
    if x < 0 or (x > 1 and not float(x).is_integer()):
        return f"a fraction of one GPU or whole GPUs, got {x!r}"
    return None


# ---------------------------------------------------------------- names and lists


def one_of_each(known: Sequence[str], what: str) -> Rule:
    """A list of names, each one of ``known``, none twice."""

    def rule(items: Any) -> str | None:
        for item in items:
            if item not in known:
                close = difflib.get_close_matches(str(item), list(known), n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
                return f"unknown {what} {item!r}; {hint}"
        twice = sorted({item for item in items if items.count(item) > 1})
        return f"{what} {twice[0]!r} is listed twice" if twice else None
    return rule


def increasing_positive(items: Any) -> str | None:
    """Bucket edges: positive integers in increasing order (each names a bucket from it up to
    the next edge, so an unsorted or repeated edge would describe a different bucket)."""
    if any(b < 1 for b in items) or any(a >= b for a, b in itertools.pairwise(items)):
        return f"must be positive run lengths in increasing order, got {list(items)}"
    return None


def increasing_steps(steps: Any) -> str | None:
    """``resources.gpus_by_params``: each step covers sizes up to its own, after the one before."""
    sizes = [step.up_to_params for step in steps]
    if any(a >= b for a, b in itertools.pairwise(sizes)):
        return f"list the steps by increasing up_to_params, each size once, got {sizes}"
    return None


def non_empty(items: Any) -> str | None:
    return None if len(items) else "give at least one"


def non_empty_text(text: Any) -> str | None:
    return None if text.strip() else "must not be empty"


def folder_name(name: Any) -> str | None:
    """A name that becomes one folder under the storage folder: no path, nothing hidden."""
    if not name.strip():
        return "must not be empty (it names the sweep folder)"
    if len(name) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters, got {len(name)}"
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        return (f"must be a plain folder name (no '/', '\\' or leading '.'): it becomes "
                f"<storage>/<name>, got {name!r}")
    if any(ord(c) < 32 for c in name):
        return f"must not hold control characters, got {name!r}"
    return None
