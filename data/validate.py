"""Check raw evidence records against the schema and the rubrics, collecting every problem."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

from prescore import defaults
from prescore.data.problems import Problem
from prescore.data.readers import Record, Records
from prescore.data.schema import (
    SLUG_PATTERN,
    AmbiguousLevel,
    Credential,
    Criterion,
    EvidenceItem,
    LevelsAs,
    RaterKind,
    Score,
    Split,
)

REQUIRED_COLUMNS = (
    "id",
    "educator_id",
    "credential_id",
    "criterion_id",
    "evidence_type",
    "text",
    "consent_to_train",
)
OPTIONAL_COLUMNS = ("submission_id", "final_level", "split", "fold", "scores", "groups")
RATER_COLUMN = re.compile(r"^rater(\d+)_(id|kind|level)$")
GROUP_PREFIX = "group_"
_UNDECODABLE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class ValidationLimits:
    max_text_chars: int = defaults.MAX_TEXT_CHARS_CEILING
    require_final_level: bool = True
    levels_as: LevelsAs | None = None  # how level cells are written; None: either, if unambiguous


@dataclass
class ValidationResult:
    items: list[EvidenceItem]
    problems: list[Problem]
    ignored_columns: list[str] = field(default_factory=list)


def _blank_to_none(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and value != value:  # NaN from Parquet/pandas exports
        return None
    return value


def _as_text(value: Any) -> Any:
    # Ids exported as numbers (JSON, Parquet) are still ids.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


Text = Annotated[str, BeforeValidator(_as_text)]
OptionalText = Annotated[str | None, BeforeValidator(lambda v: _as_text(_blank_to_none(v)))]


class EvidenceRow(BaseModel):
    """The scalar fields of one record as a file gives them, before rubric checks."""

    model_config = ConfigDict(extra="ignore")

    id: Text
    educator_id: Text
    credential_id: Text
    criterion_id: Text
    evidence_type: Text
    text: str
    consent_to_train: Annotated[bool | None, BeforeValidator(_blank_to_none)]
    submission_id: OptionalText = None
    final_level: OptionalText = None
    split: Annotated[Split | None, BeforeValidator(_blank_to_none)] = None
    fold: Annotated[int | None, BeforeValidator(_blank_to_none)] = None

    @field_validator("id", "educator_id", "credential_id", "criterion_id", "evidence_type")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("credential_id", "criterion_id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not re.match(SLUG_PATTERN, value):
            raise ValueError("must be letters, digits and _ . : - (as in the rubric file)")
        return value

    @field_validator("text")
    @classmethod
    def _has_words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is empty or whitespace only; remove the row or add the evidence")
        return value


def validate_records(
    records: Records,
    credentials: dict[str, Credential],
    file: str,
    limits: ValidationLimits = ValidationLimits(),
) -> ValidationResult:
    """Turn raw records into evidence items; every problem is reported, none stops the check."""
    present = {key for record in records if record for key in record}
    problems = [
        Problem(file, None, column, f"missing column {column!r}; every evidence file needs it")
        for column in REQUIRED_COLUMNS
        if column not in present
    ]
    if limits.require_final_level and not _has_scores(present):
        message = "missing column 'final_level' (or rater scores); training data must be scored"
        problems.append(Problem(file, None, "final_level", message))
    missing = {problem.field for problem in problems}

    items: list[EvidenceItem] = []
    first_row_of_id: dict[str, int] = {}
    for row, record in enumerate(records, start=1):
        if record is None:
            continue  # unreadable: the reader already reported it
        row_problems: list[Problem] = []

        def report(
            field_name: str | None,
            message: str,
            row: int = row,
            found: list[Problem] = row_problems,
        ) -> None:
            found.append(Problem(file, row, field_name, message))

        item = _validate_record(record, credentials, limits, report, missing)
        # Checked on the raw id, so a copy of a row that has other problems is still caught.
        raw_id = _as_text(_blank_to_none(record.get("id")))
        if isinstance(raw_id, str) and raw_id.strip() in first_row_of_id:
            first = first_row_of_id[raw_id.strip()]
            report("id", f"duplicate id {raw_id.strip()!r} (first at row {first})")
        elif isinstance(raw_id, str):
            first_row_of_id[raw_id.strip()] = row
        problems.extend(row_problems)
        if item is not None and not row_problems:
            items.append(item)

    ignored = sorted(
        key
        for key in present
        if key not in REQUIRED_COLUMNS
        and key not in OPTIONAL_COLUMNS
        and not RATER_COLUMN.match(key)
        and not key.startswith(GROUP_PREFIX)
    )
    return ValidationResult(items=items, problems=problems, ignored_columns=ignored)


def _has_scores(columns: set[str]) -> bool:
    return (
        "final_level" in columns
        or "scores" in columns
        or any((match := RATER_COLUMN.match(c)) and match.group(2) == "level" for c in columns)
    )


def _validate_record(
    record: Record,
    credentials: dict[str, Credential],
    limits: ValidationLimits,
    report: Any,
    missing_columns: set[str | None],
) -> EvidenceItem | None:
    undecodable = False
    for name, value in _string_fields(record):
        match = _UNDECODABLE.search(value)
        if match:
            byte = ord(match.group()) - 0xDC00
            report(
                name,
                f"contains bytes that are not UTF-8 (0x{byte:02x} at character {match.start()}); "
                "re-save the file as UTF-8",
            )
            undecodable = True
    if undecodable:
        return None

    try:
        row = EvidenceRow.model_validate(record)
    except ValidationError as error:
        for e in error.errors():
            column = str(e["loc"][0]) if e["loc"] else None
            if column in missing_columns:
                continue  # already reported once for the whole file
            report(column, _plain(e))
        return None

    if len(row.text) > limits.max_text_chars:
        report(
            "text",
            f"is {len(row.text):,} characters; the limit is {limits.max_text_chars:,} "
            "(split the evidence, or raise --max-text-chars)",
        )
    credential = credentials.get(row.credential_id)
    if credential is None:
        known = ", ".join(sorted(credentials)) or "none"
        report("credential_id", f"unknown credential {row.credential_id!r} (rubrics: {known})")
        return None
    criterion = credential.criterion(row.criterion_id)
    if criterion is None:
        known = ", ".join(c.id for c in credential.criteria)
        report(
            "criterion_id",
            f"unknown criterion {row.criterion_id!r} for credential {credential.id!r} "
            f"(criteria: {known})",
        )
        return None

    def level_of(cell: Any, field_name: str) -> int | None:
        try:
            index = criterion.level_index(cell, limits.levels_as)
        except AmbiguousLevel as error:
            report(field_name, str(error))
            return None
        if index is None:
            report(
                field_name,
                f"level {cell!r} is not on the rubric of {criterion.id!r} "
                f"(levels: {_scale_text(criterion, limits.levels_as)})",
            )
        return index

    scores: list[Score] = []
    for position, raw_score in enumerate(_raw_scores(record), start=1):
        where = f"scores[{position}]"
        kind = str(raw_score.get("rater_kind") or "expert").strip().lower()
        if kind not in RaterKind.__members__:
            report(f"{where}.rater_kind", f"rater kind {kind!r} must be 'expert' or 'peer'")
            continue
        rater_id = _as_text(_blank_to_none(raw_score.get("rater_id"))) or f"rater{position}"
        level = level_of(raw_score.get("level"), f"{where}.level")
        if level is not None:
            scores.append(Score(rater_id=str(rater_id), rater_kind=RaterKind(kind), level=level))

    final_level = level_of(row.final_level, "final_level") if row.final_level else None
    if row.final_level is None and len(scores) == 1:
        final_level = scores[0].level  # a single rater's score is the final score
    unread_scores = len(scores) < len(_raw_scores(record))  # their problems already stand
    if (
        final_level is None
        and row.final_level is None
        and not unread_scores
        and limits.require_final_level
        and "final_level" not in missing_columns
    ):
        report("final_level", "no final level: add the adjudicated level for this item")

    return EvidenceItem(
        id=row.id,
        educator_id=row.educator_id,
        credential_id=row.credential_id,
        criterion_id=row.criterion_id,
        evidence_type=row.evidence_type.strip().lower(),
        text=row.text,
        consent_to_train=bool(row.consent_to_train),  # unrecorded consent is no consent
        submission_id=row.submission_id,
        final_level=final_level,
        scores=tuple(scores),
        groups=_groups(record),
        split=row.split,
        fold=row.fold,
    )


def _scale_text(criterion: Criterion, levels_as: LevelsAs | None) -> str:
    if levels_as == "value":
        return "values " + ", ".join(f"{value:g}" for value in criterion.values)
    return ", ".join(criterion.labels)


def _string_fields(record: Record) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for key, value in record.items():
        if isinstance(value, str):
            fields.append((key, value))
        elif isinstance(value, list | dict):
            for inner in value if isinstance(value, list) else [value]:
                if isinstance(inner, dict):
                    fields.extend((key, v) for v in inner.values() if isinstance(v, str))
    return fields


def _raw_scores(record: Record) -> list[dict[str, Any]]:
    """Scores from a nested `scores` list or from flat `rater1_level`, `rater1_id`... columns."""
    nested = record.get("scores")
    if isinstance(nested, list):
        return [s for s in nested if isinstance(s, dict) and _blank_to_none(s.get("level"))]
    flat: dict[int, dict[str, Any]] = {}
    for key, value in record.items():
        match = RATER_COLUMN.match(key)
        if match:
            flat.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [
        {f"rater_{k}" if k != "level" else k: v for k, v in flat[n].items()}
        for n in sorted(flat)
        if _blank_to_none(flat[n].get("level")) is not None
    ]


def _groups(record: Record) -> dict[str, str]:
    nested = record.get("groups")
    groups = dict(nested) if isinstance(nested, dict) else {}
    for key, value in record.items():
        if key.startswith(GROUP_PREFIX):
            groups[key.removeprefix(GROUP_PREFIX)] = value
    # As written: a grade 10 stored as 10.0 (a column with gaps, in Parquet or JSON) is "10".
    return {k: str(_as_text(v)) for k, v in groups.items() if _blank_to_none(v) is not None}


def _plain(error: Any) -> str:
    """Pydantic's message, phrased for someone editing a spreadsheet."""
    if error["type"] == "missing":
        return "is missing"
    if error["type"] == "bool_parsing":
        return f"{error['input']!r} is not yes/no (use true/false, yes/no or 1/0)"
    if error["type"] == "enum":
        return f"{error['input']!r} is not allowed: {error['msg'].removeprefix('Input should be ')}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message
