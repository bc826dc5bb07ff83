"""Reviewers' decisions written back as evidence records, so `prescore train` learns from them.

The review queue lives in serving, but what a reviewed item becomes on disk is the evidence
schema's business: the queue hands over plain `ReviewedItem`s and this module writes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class ReviewedItem:
    """One decided queue entry: the evidence, who scored it, and what the model had suggested."""

    entry_id: int
    submission_id: str
    educator_id: str | None
    credential_id: str
    criterion_id: str
    evidence_type: str
    text: str
    consent_to_train: bool
    decided_level: str | None
    decided_by: str | None
    decided_at: datetime | None
    model_version: str
    suggested_level: str


def evidence_record(item: ReviewedItem) -> dict[str, object]:
    """The reviewer's level as one adjudicated expert score; the key order is the file's."""
    return {
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
            {"rater_id": item.decided_by, "rater_kind": "expert", "level": item.decided_level}
        ],
        "reviewed_at": item.decided_at.isoformat() if item.decided_at else None,
        "model_version": item.model_version,
        "suggested_level": item.suggested_level,
    }


def write_reviews(items: Iterable[ReviewedItem], out: Path) -> tuple[int, int]:
    """Reviewed items as evidence records (JSON lines); returns (written, withheld).

    Only evidence whose owner consented to training is written. The file is written whole to
    a temporary name and then renamed: a reader never sees half a file.
    """
    lines, withheld = [], 0
    for item in items:
        if not item.consent_to_train:
            withheld += 1
            continue
        lines.append(json.dumps(evidence_record(item)))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    partial.replace(out)
    return len(lines), withheld
