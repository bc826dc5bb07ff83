"""Reviewers' decisions written back as evidence records, so `prescore train` learns from them.

The review queue lives in serving, but what a reviewed item becomes on disk is the evidence
schema's business: the queue hands over plain `ReviewedItem`s and this module writes them,
with the rubric files they need in `rubrics/` beside them (where `data/load.py` looks).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from prescore.data.private import write_private
from prescore.data.problems import InputError
from prescore.data.rubrics import read_rubric, write_rubric
from prescore.data.schema import Credential


@dataclass(frozen=True)
class RaterScore:
    """One reviewer's level for a reviewed item, with their kind (expert / peer)."""

    rater_id: str
    rater_kind: str
    level: str


@dataclass(frozen=True)
class ReviewedItem:
    """One decided criterion item: the evidence, who scored it, what the model had suggested,
    and, for a reviewed submission, the reviewer's decision and feedback to the educator."""

    entry_id: int
    submission_id: str
    educator_id: str | None
    credential_id: str
    criterion_id: str
    evidence_type: str
    text: str = field(repr=False)  # never in reprs, so never in logs
    consent_to_train: bool
    decided_level: str | None
    decided_by: str | None
    decided_at: datetime | None
    model_version: str
    suggested_level: str
    model_name: str = ""  # which registered model scored it: whose rubric the export uses
    decision: str | None = None  # earned / not_yet, the submission's
    feedback: str | None = None
    # every reviewer's level, in the order they recorded them: two agreeing peers, or peers
    # and the expert who decided after them; empty: the decider alone, as an expert
    scores: tuple[RaterScore, ...] = ()


def evidence_record(item: ReviewedItem) -> dict[str, object]:
    """The final level with each reviewer's score and kind, so training can tell an expert's
    level from peers' (`data.final_level_kinds`); the key order is the file's."""
    scores = item.scores or (RaterScore(item.decided_by or "", "expert", item.decided_level or ""),)
    record: dict[str, object] = {
        "id": f"review-{item.entry_id}",
        "submission_id": item.submission_id,
        # the evidence schema needs an educator for the split; one per submission keeps it apart
        "educator_id": item.educator_id or f"submission-{item.submission_id}",
        "credential_id": item.credential_id,
        "criterion_id": item.criterion_id,
        "evidence_type": item.evidence_type,
        "text": item.text,
        "consent_to_train": True,
        "final_level": item.decided_level,
        "scores": [
            {"rater_id": s.rater_id, "rater_kind": s.rater_kind, "level": s.level} for s in scores
        ],
        "reviewed_at": item.decided_at.isoformat() if item.decided_at else None,
        "model_version": item.model_version,
        "suggested_level": item.suggested_level,
    }
    if item.decision is not None:  # a reviewed submission: extra fields, which loading ignores
        record["reviewer_decision"] = item.decision
        record["reviewer_feedback"] = item.feedback or ""
    return record


def exportable(item: ReviewedItem) -> bool:
    """Its owner consented to training and its text is still held (not forgotten, not past
    retention)."""
    return item.consent_to_train and bool(item.text)


def write_reviews(items: Iterable[ReviewedItem], out: Path) -> tuple[int, int]:
    """Reviewed items as evidence records (JSON lines); returns (written, withheld).

    Only evidence whose owner consented to training, and whose text is still held, is written.
    """
    lines, withheld = [], 0
    for item in items:
        if not exportable(item):
            withheld += 1
            continue
        lines.append(json.dumps(evidence_record(item)))
    write_whole(out, lines)
    return len(lines), withheld


def write_whole(out: Path, lines: list[str]) -> None:
    """JSON lines, owner-only and whole (data/private.py): a reader never sees half a file,
    and a write that fails leaves no copy behind, where `prescore forget` would never look."""
    write_private(out, "".join(line + "\n" for line in lines))


def _is_educators(line: str, educator_id: str) -> bool:
    record = json_record(line)  # a line that is not a record is left as it is
    return record is not None and record.get("educator_id") == educator_id


class NotAnExport(ValueError):
    """A file given as an export that is not JSON lines of records: searching it would say
    "none of theirs" about a file nobody read."""


def educator_records(path: Path, educator_id: str) -> int:
    """How many records of a JSON-lines export hold this educator's evidence."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise NotAnExport("not UTF-8 text, so not a JSON-lines export") from None
    records = [json_record(line) for line in lines if line.strip()]
    if lines and not any(record is not None for record in records):
        raise NotAnExport("no line of it is a JSON record, so it is not a JSON-lines export")
    return sum(r.get("educator_id") == educator_id for r in records if r is not None)


def json_record(line: str) -> dict[str, object] | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def remove_educator(path: Path, educator_id: str) -> int:
    """Rewrite an export without this educator's records, whole or not at all; returns how
    many went. Other lines stay as they were."""
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if not _is_educators(line, educator_id)]
    if len(kept) < len(lines):
        write_whole(path, kept)
    return len(lines) - len(kept)


def scored_by(items: Iterable[ReviewedItem]) -> dict[str, tuple[str, str]]:
    """Per credential with consented items: the newest (model name, version) that scored one,
    whose rubric the export writes."""
    return newest_models(
        (item.credential_id, item.model_name, item.model_version)
        for item in items
        if exportable(item)
    )


def newest_models(scored: Iterable[tuple[str, str, str]]) -> dict[str, tuple[str, str]]:
    """Per credential, the newest (model name, version) among (credential, name, version)."""
    newest: dict[str, tuple[str, str]] = {}
    for credential_id, name, version in scored:
        known = newest.get(credential_id)
        if known is None or _version_order((name, version)) > _version_order(known):
            newest[credential_id] = (name, version)
    return newest


def _version_order(model: tuple[str, str]) -> tuple[int, str, str]:
    name, version = model
    return (int(version) if version.isdigit() else -1, version, name)


def rubrics_path(out: Path) -> Path:
    """Where the export's rubrics go: `rubrics/` beside the evidence file, load's default."""
    return out.parent / "rubrics"


def differs_from(existing: Path, rubric: Credential) -> list[str]:
    """Why a rubric file already there stops the export, if it does: it differs from the one
    the model was trained on, or is no rubric at all."""
    move = "export to another folder, or move that file away"
    try:
        same = read_rubric(existing) == rubric
    except InputError as error:
        why = "; ".join(problem.message for problem in error.problems)
        return [f"{existing} exists and is not a valid rubric ({why}); {move}"]
    return (
        []
        if same
        else [f"{existing} exists and differs from the rubric the model was trained on; {move}"]
    )


def write_export(
    items: list[ReviewedItem], rubrics: dict[str, Credential], out: Path
) -> tuple[int, int, list[Path]]:
    """The consented reviewed items and the rubrics they need; returns (written, withheld,
    rubric files). Every item is checked against the rubrics first, so a mismatch writes
    nothing; then each rubric and the evidence file are written whole."""
    if out.is_dir():
        raise ValueError(f"{out} is a folder: name the file to write, e.g. {out / 'reviews.jsonl'}")
    problems = []
    needed = sorted({item.credential_id for item in items if exportable(item)})
    for item in (item for item in items if exportable(item)):
        credential = rubrics.get(item.credential_id)
        criterion = credential.criterion(item.criterion_id) if credential else None
        if criterion is None:
            key = f"{item.credential_id}/{item.criterion_id}"
            problems.append(f"review-{item.entry_id}: no rubric for {key}")
        elif criterion.level_index(item.decided_level, "label") is None:
            problems.append(
                f"review-{item.entry_id}: level {item.decided_level!r} is not on the rubric of "
                f"{item.credential_id}/{item.criterion_id} ({criterion.labels})"
            )
    for credential_id in needed:  # never overwrite someone's rubric with a rebuilt copy
        existing = rubrics_path(out) / f"{credential_id}.yaml"
        if existing.exists():
            problems += differs_from(existing, rubrics[credential_id])
    if problems:
        raise ValueError("the reviews do not fit the rubrics: " + "; ".join(problems))
    files = [write_rubric(rubrics[credential_id], rubrics_path(out)) for credential_id in needed]
    written, withheld = write_reviews(items, out)
    return written, withheld, files
