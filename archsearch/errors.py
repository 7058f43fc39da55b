"""The project's user-facing errors.

Everything a user can cause (a malformed YAML, an unknown layer symbol, a corrupt corpus) raises
an ``ArchsearchError``; the CLI prints ``str(error)`` and exits non-zero, never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ArchsearchError(Exception):
    """An error caused by user input; its message is complete and fit to print as is."""


class PatternError(ArchsearchError):
    """A layer pattern that cannot be parsed or does not fit, with the position of the fault.

    ``str()`` renders the message, then the pattern with a caret under the offending character.
    """

    def __init__(self, message: str, pattern: str, position: int, context: str = "") -> None:
        self.message = message
        self.pattern = pattern
        self.position = max(0, min(position, len(pattern)))
        self.context = context
        super().__init__(str(self))

    def with_context(self, context: str) -> PatternError:
        """The same error, prefixed with where the pattern came from (file, line, field)."""
        return PatternError(self.message, self.pattern, self.position, context)

    def __str__(self) -> str:
        head = f"{self.context}: " if self.context else ""
        return f"{head}{self.message}\n    {self.pattern}\n    {' ' * self.position}^"


class SpaceError(ArchsearchError):
    """An invalid search-space file: names the file, the line and the field in one line."""

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class CheckpointUnreadable(ArchsearchError):
    """A checkpoint to resume from is missing files, torn or not in the expected format; the
    sweep then restarts that trial from step 0 (the message says which checkpoint and why)."""


def did_you_mean(value: object, known: Iterable[object]) -> str:
    """``"; did you mean 'x'?"`` naming the closest of ``known`` to ``value``, or ``""``: the hint
    every "unknown ..." error ends with."""
    close = difflib.get_close_matches(str(value), [str(k) for k in known], n=1)
    return f"; did you mean '{close[0]}'?" if close else ""
