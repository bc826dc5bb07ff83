"""Read evidence records from CSV/TSV, JSON Lines or Parquet without trusting the file.

Bytes that are not UTF-8 are kept as surrogate escapes so the validator can name the row and
field they sit in, instead of the whole read failing on the first bad byte.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from prescore.data.problems import InputError, Problem

EVIDENCE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
Record = dict[str, Any]
# A record that could not be read at all is None: its problem is already reported, and the
# list keeps its place so row numbers stay true.
Records = list[Record | None]


def read_records(path: Path) -> tuple[Records, list[Problem]]:
    """Records in file order, and the problems that stopped some of them from being read."""
    if not path.is_file():
        hint = "a folder: pass the evidence file inside it" if path.is_dir() else "no such file"
        raise InputError([Problem(str(path), None, None, hint)])
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return _read_delimited(path, delimiter="\t" if suffix == ".tsv" else ",")
    if suffix in (".jsonl", ".ndjson"):
        return _read_json_lines(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    message = f"unsupported file type {suffix!r}: use one of {', '.join(EVIDENCE_SUFFIXES)}"
    raise InputError([Problem(str(path), None, None, message)])


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):  # Excel's UTF-8 byte order mark
        raw = raw[3:]
    return raw.decode("utf-8", errors="surrogateescape")


def _read_delimited(path: Path, delimiter: str) -> tuple[Records, list[Problem]]:
    """Strict CSV: a quote left open would otherwise swallow the records after it into one
    text, silently (four records in, three scored); strict parsing stops there and says so."""
    csv.field_size_limit(sys.maxsize)  # size is a rule the validator reports, not a crash
    text = io.StringIO(_decode(path), newline="")
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    problems: list[Problem] = []
    try:
        header = next(reader)
    except StopIteration:
        raise InputError([Problem(str(path), None, None, "the file is empty")]) from None
    except csv.Error as error:
        problem = Problem(str(path), None, None, f"cannot parse the header: {error}")
        raise InputError([problem]) from None
    header = [name.strip() for name in header]
    records: Records = []
    number = 0
    while True:
        starts_on = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append(Problem(str(path), number + 1, None, unparsable(starts_on, error)))
            break
        number += 1
        if not any(cell.strip() for cell in cells):
            continue  # trailing blank lines are not records
        if len(cells) != len(header):
            message = (
                f"has {len(cells)} fields but the header has {len(header)}; "
                "check for an unquoted delimiter or a missing quote"
            )
            problems.append(Problem(str(path), number, None, message))
            records.append(None)
            continue
        records.append(dict(zip(header, cells, strict=True)))
    return records, problems


def unparsable(starts_on: int, error: csv.Error) -> str:
    return (
        f"the record that starts on line {starts_on} cannot be parsed ({error}): a quote is "
        "missing, or one stands inside an unquoted text (double it, or quote the whole "
        "field); neither it nor any record after it was read"
    )


def _read_json_lines(path: Path) -> tuple[Records, list[Problem]]:
    records: Records = []
    problems: list[Problem] = []
    lines = [line for line in _decode(path).splitlines() if line.strip()]
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(Problem(str(path), number, None, f"not valid JSON: {error.msg}"))
            records.append(None)
            continue
        if not isinstance(record, dict):
            problems.append(Problem(str(path), number, None, "each line must be a JSON object"))
            records.append(None)
            continue
        records.append(record)
    return records, problems


def _read_parquet(path: Path) -> tuple[Records, list[Problem]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as error:  # pyarrow raises several unrelated types for a bad file
        raise InputError(
            [Problem(str(path), None, None, f"not a readable Parquet file: {error}")]
        ) from None
    rows: Records = list(table.to_pylist())
    return rows, []
