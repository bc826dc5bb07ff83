"""Problems found in input files, collected so that a user sees all of them at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and how to fix it.

    `row` counts records from 1 (the header of a CSV is not a record); None means the whole file.
    """

    file: str
    row: int | None
    field: str | None
    message: str


class InputError(Exception):
    """Raised when input files cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0] if problems else None
        summary = f"{len(problems)} problem(s) in input"
        if first is not None:
            where = f"{first.file}" + (f", row {first.row}" if first.row else "")
            summary += f"; first: {where}: {first.message}"
        super().__init__(summary)
