"""Read a search-space YAML file into the typed schema, checking every key, type and value.

Every problem becomes one ``SpaceError`` naming the file, the line and the dotted field, with a
"did you mean" for misspelt keys. Only ``yaml.SafeLoader`` is used: a space file cannot run code.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from archsearch.errors import SpaceError, did_you_mean
from archsearch.space.distributions import (
    DISTRIBUTION_KEYS,
    Choice,
    IntRange,
    Uniform,
    parse_distribution,
)
from archsearch.space.rules import rule_of
from archsearch.space.schema import SYMBOL_KINDS, SpaceFile

Path_ = tuple[str | int, ...]


def read_space_file(path: str | Path) -> tuple[SpaceFile, dict[Path_, int]]:
    """Parse and type-check a space file; returns it with the line of each field (1-based)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError(file, None, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpaceError(file, None, "", f"cannot read: {err}") from None
    return parse_space_text(text, file)


def parse_space_text(text: str, file: str = "<string>") -> tuple[SpaceFile, dict[Path_, int]]:
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # reads the first characters already: inside the try
        node = loader.get_single_node()
        lines: dict[Path_, int] = {}
        if node is not None:
            _LineRecorder(file, lines).walk(node, (), 0)
        raw = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpaceError(file, line, "", f"malformed YAML: {problem}") from None
    except RecursionError:  # PyYAML's composer recurses once per level of nesting
        raise SpaceError(file, None, "", f"nested far deeper than a search space goes (at most "
                                         f"{MAX_NESTING} levels)") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(raw, dict):
        raise SpaceError(file, 1, "", "a search space is a YAML mapping (key: value lines)")
    converter = _Converter(file, lines)
    return converter.dataclass(SpaceFile, raw, (), tunable=False), lines


MAX_NESTING = 16  # levels of mappings and lists; the schema itself needs 5
MAX_VALUES = 100_000  # YAML values once aliases are expanded; real spaces hold a few hundred


class _LineRecorder:
    """Records the line of every field while checking what PyYAML lets through: duplicate keys
    (the later one would silently win), nesting deeper than ``MAX_NESTING`` and aliases that
    expand past ``MAX_VALUES`` values (an "alias bomb": a few lines that expand to billions)."""

    def __init__(self, file: str, lines: dict[Path_, int]) -> None:
        self.file, self.lines, self.count = file, lines, 0

    def walk(self, node: yaml.Node, path: Path_, depth: int) -> None:
        self.count += 1
        if self.count > MAX_VALUES:
            raise SpaceError(self.file, node.start_mark.line + 1, dotted(path), f"the file expands "
                             f"to more than {MAX_VALUES} values (YAML aliases?)")
        if depth > MAX_NESTING:
            raise SpaceError(self.file, node.start_mark.line + 1, dotted(path),
                             f"nested more than {MAX_NESTING} levels deep")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
                line = key.start_mark.line + 1
                if name in seen and key.tag != "tag:yaml.org,2002:merge":
                    raise SpaceError(self.file, line, dotted((*path, name)),
                                     f"key given twice (also on line {seen[name]})")
                seen[name] = line
                self.walk(value, (*path, name), depth + 1)
                self.lines[(*path, name)] = line  # a field's line is its key's
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index), depth + 1)


def possible_values(value: Any) -> list[Any]:
    """The values a field may take: itself, each choice, or a range's two ends (every rule is
    an interval or a property of a whole value, so the ends stand for the range)."""
    if isinstance(value, Choice):
        return list(value.values)
    if isinstance(value, IntRange | Uniform):
        return [value.low, value.high]
    return [value]


def nearest_line(lines: Mapping[Path_, int], path: Path_) -> int | None:
    """The line of ``path`` in the file, else of its nearest ancestor written there: a field left
    to its default has no line, but the section it belongs to may."""
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path)


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Converter:
    """Walks the schema's type hints alongside the raw YAML data."""

    def __init__(self, file: str, lines: dict[Path_, int]) -> None:
        self.file, self.lines = file, lines

    def fail(self, path: Path_, message: str) -> SpaceError:
        return SpaceError(self.file, nearest_line(self.lines, path), dotted(path) or "(top level)",
                          message)

    def dataclass(self, cls: type, raw: Any, path: Path_, tunable: bool) -> Any:
        if not isinstance(raw, dict):
            raise self.fail(path, f"expected a mapping of {cls.__name__} fields, got {_show(raw)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        # a section says whether its fields may be distributions; one that does not say
        # inherits it from the section it sits in
        tunable = getattr(cls, "TUNABLE", tunable)
        values = {}
        for key, value in raw.items():
            if not isinstance(key, str) or key not in fields:
                raise self.fail((*path, str(key)), _unknown(key, fields))
            values[key] = self.value(hints[key], value, (*path, key), tunable)
            self._check_rule(fields[key], values[key], (*path, key))
        missing = [
            name for name, f in fields.items()
            if name not in values and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise self.fail(path, f"missing required field '{missing[0]}'")
        try:
            return cls(**values)
        except (TypeError, ValueError) as err:
            raise self.fail(path, str(err)) from None

    def _check_rule(self, field: dataclasses.Field, value: Any, path: Path_) -> None:
        """The field's rule (schema.py), for every value it may take; None means "the default"."""
        rule = rule_of(field)
        if rule is None:
            return
        for option in possible_values(value):
            problem = rule(option) if option is not None else None
            if problem:
                raise self.fail(path, problem)

    def value(self, hint: Any, raw: Any, path: Path_, tunable: bool) -> Any:
        if tunable and isinstance(raw, dict) and _is_scalar_hint(hint):
            if not set(raw) & set(DISTRIBUTION_KEYS):
                raise self.fail(path, f"expected a value or a distribution "
                                      f"({', '.join(DISTRIBUTION_KEYS)}), got {_show(raw)}")
            try:
                dist = parse_distribution(raw)
            except ValueError as err:
                raise self.fail(path, str(err)) from None
            for option in getattr(dist, "values", ()):  # each choice must fit the field
                self.value(hint, option, path, tunable=False)
            return dist
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (Union, types.UnionType):
            return self._union(args, raw, path, tunable)
        if origin is Literal:
            if raw not in args:
                hint_text = did_you_mean(raw, args)
                raise self.fail(path, f"must be one of {', '.join(map(str, args))}, "
                                      f"got {_show(raw)}{hint_text}")
            return raw
        if origin is list:
            if not isinstance(raw, list):
                raise self.fail(path, f"expected a list, got {_show(raw)}")
            return [self.value(args[0], item, (*path, i), tunable) for i, item in enumerate(raw)]
        if origin is dict:
            if not isinstance(raw, dict):
                raise self.fail(path, f"expected a mapping, got {_show(raw)}")
            return {str(k): self.value(args[1], v, (*path, str(k)), tunable) for k, v in raw.items()}
        if dataclasses.is_dataclass(hint):
            return self.dataclass(hint, raw, path, tunable)
        return self._scalar(hint, raw, path)

    def _union(self, args: tuple, raw: Any, path: Path_, tunable: bool) -> Any:
        if raw is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if set(options) == set(SYMBOL_KINDS.values()):
            return self._symbol(raw, path)
        errors = []
        for option in options:
            try:
                return self.value(option, raw, path, tunable)
            except SpaceError as err:
                errors.append(err)
        raise errors[-1]

    def _symbol(self, raw: Any, path: Path_) -> Any:
        if not isinstance(raw, dict) or "kind" not in raw:
            raise self.fail(path, f"a layer symbol needs 'kind' ({', '.join(SYMBOL_KINDS)})")
        kind = raw["kind"]
        if not isinstance(kind, str) or kind not in SYMBOL_KINDS:
            hint = did_you_mean(kind, SYMBOL_KINDS)
            raise self.fail((*path, "kind"), f"unknown layer kind {_show(kind)}{hint}")
        return self.dataclass(SYMBOL_KINDS[kind], raw, path, tunable=True)

    def _scalar(self, hint: Any, raw: Any, path: Path_) -> Any:
        if hint is Any:
            return raw
        if hint is bool:
            if not isinstance(raw, bool):
                raise self.fail(path, f"expected true or false, got {_show(raw)}")
            return raw
        if hint is int:
            if isinstance(raw, float) and raw.is_integer() and abs(raw) < 2**53:
                raw = int(raw)  # 2e5 in YAML is a float
            if not isinstance(raw, int) or isinstance(raw, bool):
                raise self.fail(path, f"expected an integer, got {_show(raw)}")
            return raw
        if hint is float:
            number = raw
            if isinstance(raw, str):  # YAML 1.1 reads 3e-3 as a string
                try:
                    number = float(raw)
                except ValueError:
                    pass
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise self.fail(path, f"expected a number, got {_show(raw)}")
            if not math.isfinite(number):
                raise self.fail(path, f"expected a finite number, got {_show(raw)}")
            return float(number)
        if hint is str:
            if not isinstance(raw, str):
                raise self.fail(path, f"expected a string, got {_show(raw)}")
            return raw
        raise TypeError(f"schema type {hint!r} at {dotted(path)} is not supported")


def _is_scalar_hint(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return all(_is_scalar_hint(a) for a in typing.get_args(hint) if a is not type(None))
    return origin is Literal or hint in (int, float, str, bool)


def _unknown(key: Any, fields: dict[str, Any]) -> str:
    hint = did_you_mean(key, fields).removeprefix("; ") or f"known: {', '.join(fields)}"
    return f"unknown key '{key}'; {hint}"


def _show(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."
