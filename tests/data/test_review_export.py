"""Reviewed items written back as evidence: consented only, whole files, the same bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import yaml

from prescore.data.review_export import ReviewedItem, write_reviews
from tests.conftest import RUBRIC


def reviewed(
    n: int,
    consent: bool = True,
    educator: str | None = "",
    decided_at: datetime | None = datetime(2024, 5, 6, tzinfo=UTC),
    text: str = "",
) -> ReviewedItem:
    return ReviewedItem(
        entry_id=n,
        submission_id=f"s{n}",
        educator_id=f"e{n}" if educator == "" else educator,
        credential_id="wait-time",
        criterion_id="planning",
        evidence_type="reflection",
        text=text or f"Evidence {n}: I waited after each question.",
        consent_to_train=consent,
        decided_level="Proficient",
        decided_by="ana",
        decided_at=decided_at,
        model_version="3",
        suggested_level="Developing",
    )


def test_export_writes_consented_decisions_as_evidence(tmp_path: Path) -> None:
    reviews = [reviewed(0), reviewed(1, consent=False)]
    written, withheld = write_reviews(reviews, tmp_path / "out" / "reviews.jsonl")
    assert (written, withheld) == (1, 1)
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "reviews.jsonl").open()]
    assert record["final_level"] == "Proficient" and record["consent_to_train"] is True
    assert record["scores"] == [{"rater_id": "ana", "rater_kind": "expert", "level": "Proficient"}]
    assert record["educator_id"] == "e0" and record["text"].startswith("Evidence 0")
    assert not list((tmp_path / "out").glob("*.partial"))
    # and it is evidence `prescore train` reads: it passes the same checks as any export
    from prescore.data.load import DataSource, load_evidence

    (tmp_path / "rubrics").mkdir()
    (tmp_path / "rubrics" / "wait-time.yaml").write_text(yaml.safe_dump(RUBRIC))
    source = DataSource(path=tmp_path / "out" / "reviews.jsonl", rubrics=tmp_path / "rubrics")
    loaded = load_evidence(source)
    assert sum(len(split) for split in loaded.splits.values()) == 1


def test_the_export_bytes_are_those_earlier_exports_wrote(tmp_path: Path) -> None:
    """Byte for byte what serving's export wrote before it moved here: key order, ASCII
    escapes, a missing educator and decision time, one newline per record."""
    reviews = [
        reviewed(
            7,
            decided_at=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
            text="Wait time: \u201cfive seconds\u201d \u2014 done.\nNext line",
        ),
        reviewed(8, consent=False),
        reviewed(9, educator=None, decided_at=None, text="no educator"),
    ]
    out = tmp_path / "reviews.jsonl"
    assert write_reviews(reviews, out) == (2, 1)
    assert out.read_bytes() == (
        b'{"id": "review-7", "submission_id": "s7", "educator_id": "e7", "credential_id": '
        b'"wait-time", "criterion_id": "planning", "evidence_type": "reflection", "text": '
        b'"Wait time: \\u201cfive seconds\\u201d \\u2014 done.\\nNext line", "consent_to_train": '
        b'true, "final_level": "Proficient", "scores": [{"rater_id": "ana", "rater_kind": '
        b'"expert", "level": "Proficient"}], "reviewed_at": "2024-05-06T07:08:09.123456+00:00", '
        b'"model_version": "3", "suggested_level": "Developing"}\n'
        b'{"id": "review-9", "submission_id": "s9", "educator_id": "submission-s9", '
        b'"credential_id": "wait-time", "criterion_id": "planning", "evidence_type": '
        b'"reflection", "text": "no educator", "consent_to_train": true, "final_level": '
        b'"Proficient", "scores": [{"rater_id": "ana", "rater_kind": "expert", "level": '
        b'"Proficient"}], "reviewed_at": null, "model_version": "3", "suggested_level": '
        b'"Developing"}\n'
    )


def test_an_empty_export_replaces_the_file_whole(tmp_path: Path) -> None:
    out = tmp_path / "reviews.jsonl"
    out.write_text("stale\n")
    assert write_reviews([reviewed(1, consent=False)], out) == (0, 1)
    assert out.read_bytes() == b""
    assert not list(tmp_path.glob("*.partial"))
