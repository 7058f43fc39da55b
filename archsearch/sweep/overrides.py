"""``--set key=value``: change any field of a search-space YAML from the command line.

An override is applied to the raw YAML mapping (before any checking), then the merged document
is validated exactly like a file, so ``--set training.tokens=abc`` fails the same way
``tokens: abc`` in the file would, with the override named in the message. Values are parsed as
YAML: ``search.samples=3`` is an integer, ``model.d_model={choices: [32, 64]}`` a distribution.
Keys are dotted paths; a number selects a list item (``objectives.0.metric=copy_loss``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from archsearch.errors import ArchsearchError, SpaceError
from archsearch.space import SearchSpace

_KEY_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$|^\d+$")


class OverrideError(ArchsearchError):
    """A ``--set`` argument that cannot be applied or makes the space invalid."""


@dataclass(frozen=True)
class Override:
    text: str  # as typed, for messages
    path: tuple[str | int, ...]
    value: Any


def parse_override(text: str) -> Override:
    """``"training.lr=1e-3"`` -> Override(("training", "lr"), "1e-3" parsed as YAML)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OverrideError(f"--set {text}: expected key=value, e.g. training.tokens=1000")
    parts = key.replace("[", ".").replace("]", "").split(".")
    if not all(_KEY_PART.match(p) for p in parts):
        raise OverrideError(f"--set {text}: '{key}' is not a dotted field path "
                            f"(e.g. search.samples or objectives.0.metric)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise OverrideError(f"--set {text}: the value is not valid YAML: {problem}") from None
    path = tuple(int(p) if p.isdigit() else p for p in parts)
    return Override(text, path, value)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A copy of the raw YAML mapping with each override set, creating missing mappings."""
    merged = copy.deepcopy(raw)
    for override in overrides:
        node: Any = merged
        for depth, part in enumerate(override.path):
            last = depth == len(override.path) - 1
            where = ".".join(map(str, override.path[:depth])) or "the top level"
            if isinstance(part, int):
                if not isinstance(node, list):
                    raise OverrideError(f"--set {override.text}: {where} is not a list")
                if not -len(node) <= part < len(node) + (1 if last else 0):
                    raise OverrideError(f"--set {override.text}: {where} has {len(node)} items")
                if last:
                    node[part:part + 1] = [override.value]
                else:
                    node = node[part]
                continue
            if not isinstance(node, dict):
                raise OverrideError(f"--set {override.text}: {where} is not a mapping")
            if last:
                node[part] = override.value
            else:
                node = node.setdefault(part, {})
                if node is None:  # "asha:" left empty in the file
                    node = {}
    return merged


def load_with_overrides(path: str | Path, overrides: Sequence[str]) -> tuple[SearchSpace, str]:
    """The validated space of ``path`` with ``overrides`` applied, and its effective YAML text.

    The text is what a sweep stores beside its results, so a resume needs nothing else.
    """
    if not overrides:
        space = SearchSpace.load(path)
        return space, Path(path).read_text(encoding="utf-8")
    parsed = [parse_override(o) for o in overrides]
    original = read_raw(path)
    merged = apply_overrides(original, parsed)
    text = yaml.safe_dump(merged, sort_keys=False)
    label = f"{path} (with --set)"
    try:
        return SearchSpace.from_text(text, label), text
    except SpaceError as err:
        culprit = _blamed(err.field, parsed)
        if culprit is not None:
            raise OverrideError(f"--set {culprit.text}: {err.field}: {err.message}") from None
        # Not caused by an override: report it against the file itself, with its line number.
        SearchSpace.load(path)
        raise


def read_raw(path: str | Path) -> dict[str, Any]:
    """The file's raw YAML mapping; file errors come from the normal loader."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        SearchSpace.load(path)  # raises the loader's precise one-line error
        raise
    if not isinstance(raw, dict):
        SearchSpace.load(path)
        raise SpaceError(str(path), 1, "", "a search space is a YAML mapping")
    return raw


def _blamed(field: str, overrides: Sequence[Override]) -> Override | None:
    """The override whose path is, contains, or lies inside the faulty field (the last one set)."""
    if not field:
        return None
    faulty = field.replace("[", ".").replace("]", "").split(".")
    for override in reversed(overrides):
        mine = [str(p) for p in override.path]
        shared = min(len(mine), len(faulty))
        if mine[:shared] == faulty[:shared]:
            return override
    return None
