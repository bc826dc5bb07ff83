"""Reading the public sets' own files, each with its encoding quirks."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Literal

from prescore.data.problems import InputError, Problem
from prescore.data.schema import Credential, Criterion, Level, Stakes


def find_file(path: Path, name: str) -> Path:
    """`path` itself if it is a file, else `name` inside the folder `path`."""
    candidate = path if path.is_file() else path / name
    if not candidate.is_file():
        message = f"expected {name} here; point the adapter at the data set's folder or file"
        raise InputError([Problem(str(candidate), None, None, message)])
    return candidate


def read_table(
    path: Path,
    delimiter: str = ",",
    encoding: str = "utf-8",
    quoting: Literal[0, 1, 2, 3] = csv.QUOTE_MINIMAL,
) -> list[dict[str, str]]:
    csv.field_size_limit(sys.maxsize)
    text = path.read_bytes().decode(encoding, errors="replace")
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting))


def integer_levels(low: int, high: int) -> tuple[Level, ...]:
    return tuple(Level(value=v, label=str(v)) for v in range(low, high + 1))


def one_criterion_credential(
    credential_id: str, title: str, criterion_id: str, criterion_title: str, low: int, high: int
) -> Credential:
    """A public set's prompt as a low-stakes credential of one holistic criterion, met from the
    middle of its integer scale (at least half the points): each response is one submission."""
    levels = integer_levels(low, high)
    criterion = Criterion(
        id=criterion_id,
        title=criterion_title,
        levels=levels,
        met_level=levels[len(levels) // 2].label,
    )
    return Credential(id=credential_id, title=title, stakes=Stakes.low, criteria=(criterion,))


def score_cell(value: str | None) -> str | None:
    """A score cell as written, or None where the rater gave none ("", "NaN")."""
    if value is None or value.strip() in ("", "nan", "NaN"):
        return None
    return value.strip()


def require_columns(rows: list[dict[str, str]], path: Path, columns: list[str]) -> None:
    """Stop with one clear message if a file is not the layout this adapter reads."""
    found = set(rows[0]) if rows else set()
    missing = [c for c in columns if c not in found]
    if missing:
        message = f"missing column(s) {missing}; is this the right file for this adapter?"
        raise InputError([Problem(str(path), None, None, message)])
