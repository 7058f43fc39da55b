"""Distributions a tunable YAML field may take instead of a fixed value.

In YAML a distribution is a mapping with exactly one of these keys:

    lr: {loguniform: [1.0e-4, 1.0e-2]}
    d_model: {choices: [64, 128]}
    depth: {int: [4, 12], step: 4}
    dropout: {uniform: [0.0, 0.2]}

Each turns into one Optuna ``suggest_*`` call under the field's dotted name, and finite ones
(``choices``, ``int``) enumerate their values for grid search.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

DISTRIBUTION_KEYS = ("choices", "int", "uniform", "loguniform")


class _Trial(Protocol):  # the part of optuna.Trial we use
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]

    def suggest(self, trial: _Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))

    def grid(self) -> list[Any]:
        return list(self.values)

    def __str__(self) -> str:
        return "{" + ", ".join(map(str, self.values)) + "}"


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, trial: _Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))

    def __str__(self) -> str:
        step = f" step {self.step}" if self.step != 1 else ""
        return f"int[{self.low}, {self.high}]{step}{' log' if self.log else ''}"


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float
    log: bool = False

    def suggest(self, trial: _Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def grid(self) -> list[float]:
        raise ValueError("a continuous range has no grid; use 'choices' for grid search")

    def __str__(self) -> str:
        return f"{'loguniform' if self.log else 'uniform'}[{self.low:g}, {self.high:g}]"


Distribution = Choice | IntRange | Uniform


def first_value(distribution: Distribution) -> Any:
    """A distribution's first value: its first choice, or the low end of a range (what
    ``archsearch patterns`` shows and what a field nobody sampled stands at)."""
    return distribution.values[0] if isinstance(distribution, Choice) else distribution.low


def parse_distribution(raw: dict[str, Any]) -> Distribution:
    """Build a distribution from its YAML mapping; raises ValueError with the reason."""
    kinds = [k for k in DISTRIBUTION_KEYS if k in raw]
    if len(kinds) != 1:
        raise ValueError(f"a distribution has exactly one of {', '.join(DISTRIBUTION_KEYS)}")
    kind = kinds[0]
    allowed = {kind} | ({"step", "log"} if kind == "int" else set())
    extra = set(raw) - allowed
    if extra:
        raise ValueError(f"unexpected key(s) {sorted(extra)} in a '{kind}' distribution")
    value = raw[kind]
    if kind == "choices":
        if not isinstance(value, list) or not value:
            raise ValueError("'choices' needs a non-empty list")
        if len({repr(v) for v in value}) != len(value):
            raise ValueError(f"'choices' lists a value twice: {value}")
        return Choice(tuple(value))
    low, high = _bounds(kind, value)
    if kind == "int":
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (low, high)):
            raise ValueError(f"'int' bounds must be integers, got {value}")
        step = raw.get("step", 1)
        if not isinstance(step, int) or isinstance(step, bool) or step < 1:
            raise ValueError(f"'step' must be a positive integer, got {step!r}")
        log = bool(raw.get("log", False))
        if log and (low < 1 or step != 1):
            raise ValueError("a log 'int' range needs low >= 1 and step 1")
        return IntRange(int(low), int(high), step, log)
    if kind == "loguniform" and low <= 0:
        raise ValueError(f"'loguniform' needs positive bounds, got {value}")
    return Uniform(float(low), float(high), log=kind == "loguniform")


def _bounds(kind: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"'{kind}' needs [low, high], got {value!r}")
    low, high = (_number(x, kind) for x in value)
    if not low <= high:
        raise ValueError(f"'{kind}' needs low <= high, got {value}")
    return low, high


def _number(x: Any, kind: str) -> float:
    if isinstance(x, bool):
        raise ValueError(f"'{kind}' bounds must be numbers, got {x!r}")
    if isinstance(x, int | float) and math.isfinite(x):
        return x
    if isinstance(x, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            number = float(x)
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                return number
    raise ValueError(f"'{kind}' bounds must be finite numbers, got {x!r}")
