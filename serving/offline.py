"""Score a file of evidence offline with a registered model: `prescore predict`.

The same scoring core as POST /score (`ScoringModel.score_submissions`, eval/scoring.py), so
a file scored here gets the answers the service would give, item for item. The evidence text
is read and written back, never printed or logged.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from prescore.data.problems import InputError, Problem
from prescore.data.readers import read_records
from prescore.eval.scoring import as_text, score_rows
from prescore.serving.schemas import EvidenceToScore, ScoredEvidence, SubmissionDecision
from prescore.serving.scoring import ScoringModel, submission_problems

NEEDED_COLUMNS = ("submission_id", "credential_id", "criterion_id", "evidence_type", "text")
BATCH_ITEMS = 64

OUTPUT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")


@dataclass(frozen=True)
class Scored:
    items: int
    auto: int
    submissions: int
    auto_decisions: int


def read_items(path: Path) -> tuple[list[dict[str, Any]], list[EvidenceToScore]]:
    """The file's records and the items to score; every problem at once as an InputError."""
    records, problems = read_records(path)
    rows: list[dict[str, Any]] = []
    items: list[EvidenceToScore] = []
    row_of: list[int] = []
    for number, record in enumerate(records, start=1):
        if record is None:
            continue
        missing = [c for c in NEEDED_COLUMNS if record.get(c) is None]
        for column in missing:
            problems.append(Problem(str(path), number, column, "missing: predict needs it"))
        if missing:
            continue
        fields = {c: str(record[c]) for c in NEEDED_COLUMNS}
        try:
            items.append(EvidenceToScore(**fields))
        except ValidationError as error:
            for failure in error.errors():
                field = ".".join(str(part) for part in failure["loc"])
                problems.append(Problem(str(path), number, field, failure["msg"]))
            continue
        rows.append(record)
        row_of.append(number)
    for detail in submission_problems(items):
        index, field = detail.field.split(".")[1:]
        problems.append(Problem(str(path), row_of[int(index)], field, detail.message))
    if problems:
        raise InputError(problems)
    return rows, items


def unknown_criteria(path: Path, items: list[EvidenceToScore], model: ScoringModel) -> None:
    """Refuse what the model does not score, as the service does, naming each row."""
    problems = [
        Problem(
            str(path),
            number + 1,
            "criterion_id",
            f"{key}: {model.name} version {model.version} does not score it",
        )
        for number, key in model.unknown_criteria(items)
    ]
    if problems:
        raise InputError(problems)


def score_file(
    model: ScoringModel,
    items: list[EvidenceToScore],
    batch_items: int = BATCH_ITEMS,
    advance: Callable[[int], None] | None = None,
) -> tuple[list[ScoredEvidence], list[SubmissionDecision]]:
    """Every item in batches, then one decision per submission from all its items."""
    scores: list[ScoredEvidence] = []
    for start in range(0, len(items), batch_items):
        batch = items[start : start + batch_items]
        scores += model.score(batch)
        if advance is not None:
            advance(len(batch))
    return scores, model.decide(scores)


def scored_rows(
    rows: list[dict[str, Any]],
    scores: list[ScoredEvidence],
    decisions: list[SubmissionDecision],
) -> list[dict[str, Any]]:
    """Each input row with its score and its submission's decision beside it."""
    return [
        {**row, **scored} for row, scored in zip(rows, score_rows(scores, decisions), strict=True)
    ]


def check_output(path: Path) -> None:
    """Refuse an output format, or a folder in the output's place, before anything is scored."""
    suffix = path.suffix.lower()
    if path.is_dir():
        example = path / f"scores{suffix if suffix in OUTPUT_SUFFIXES else '.csv'}"
        message = f"{path} is a folder: name the file to write, e.g. {example}"
        raise InputError([Problem(str(path), None, None, message)])
    if suffix not in OUTPUT_SUFFIXES:
        message = f"unsupported output type {suffix!r}: use one of {', '.join(OUTPUT_SUFFIXES)}"
        raise InputError([Problem(str(path), None, None, message)])


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """In the format the output's suffix names, written to a temporary file beside it and
    renamed into place, so a reader never sees half a file."""
    check_output(path)
    suffix = path.suffix.lower()
    frame = pd.DataFrame(rows)
    if suffix not in (".jsonl", ".ndjson"):
        frame = frame.map(as_text)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        if suffix in (".csv", ".tsv"):
            frame.to_csv(temporary, index=False, sep="\t" if suffix == ".tsv" else ",")
        elif suffix == ".parquet":
            frame.to_parquet(temporary, index=False)
        else:  # json.dumps keeps every digit; pandas' to_json rounds to 10
            with open(temporary, "w", encoding="utf-8") as sink:
                for row in rows:
                    sink.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def summary(scores: list[ScoredEvidence], decisions: list[SubmissionDecision]) -> Scored:
    return Scored(
        items=len(scores),
        auto=sum(s.route.value == "auto" for s in scores),
        submissions=len(decisions),
        auto_decisions=sum(d.route.value == "auto" for d in decisions),
    )
