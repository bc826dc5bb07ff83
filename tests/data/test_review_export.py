"""Reviewed items written back as evidence: consented only, whole files, the same bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from prescore.data.review_export import (
    ReviewedItem,
    scored_by,
    write_export,
    write_reviews,
)
from prescore.data.schema import Credential
from tests.conftest import RUBRIC


def reviewed(
    n: int,
    consent: bool = True,
    educator: str | None = "",
    decided_at: datetime | None = datetime(2024, 5, 6, tzinfo=UTC),
    text: str = "",
    level: str = "Proficient",
    version: str = "3",
    decision: str | None = None,
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
        decided_level=level,
        decided_by="ana",
        decided_at=decided_at,
        model_version=version,
        suggested_level="Developing",
        model_name="prescore-test",
        decision=decision,
        feedback="Say why you paused." if decision else None,
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


def test_an_export_writes_the_rubrics_beside_it_for_consented_credentials_only(
    tmp_path: Path,
) -> None:
    rubric = Credential.model_validate(RUBRIC)
    other = rubric.model_copy(update={"id": "feedback"})
    hidden = ReviewedItem(**{**reviewed(2, consent=False).__dict__, "credential_id": "feedback"})
    out = tmp_path / "export" / "reviews.jsonl"
    items = [reviewed(0, decision="not_yet"), reviewed(1), hidden]
    written, withheld, files = write_export(items, {"wait-time": rubric, "feedback": other}, out)
    assert (written, withheld) == (2, 1)
    assert files == [tmp_path / "export" / "rubrics" / "wait-time.yaml"]  # feedback: no consent
    first, second = [json.loads(line) for line in out.open()]
    assert (first["reviewer_decision"], first["reviewer_feedback"]) == (
        "not_yet",
        "Say why you paused.",
    )
    assert "reviewer_decision" not in second  # an item reviewed alone, as before
    from prescore.data.load import DataSource, load_evidence

    loaded = load_evidence(DataSource(path=out))  # rubrics/ beside it, found by default
    assert loaded.credentials == {"wait-time": rubric}
    assert sum(len(split) for split in loaded.splits.values()) == 2


def test_an_export_that_does_not_fit_its_rubrics_writes_nothing(tmp_path: Path) -> None:
    rubric = Credential.model_validate(RUBRIC)
    out = tmp_path / "reviews.jsonl"
    out.write_text("earlier export\n")
    items = [reviewed(0), reviewed(1, level="Excellent")]
    with pytest.raises(ValueError, match="review-1: level 'Excellent' is not on the rubric"):
        write_export(items, {"wait-time": rubric}, out)
    with pytest.raises(ValueError, match="no rubric for wait-time/planning"):
        write_export(items[:1], {}, out)
    assert out.read_text() == "earlier export\n" and not (tmp_path / "rubrics").exists()


def test_the_newest_model_version_that_scored_a_credential_gives_its_rubric() -> None:
    items = [reviewed(0, version="9"), reviewed(1, version="12"), reviewed(2, version="3")]
    assert scored_by(items) == {"wait-time": ("prescore-test", "12")}
    assert scored_by([reviewed(0, version="20", consent=False), *items]) == {
        "wait-time": ("prescore-test", "12")
    }


def test_an_export_never_overwrites_a_different_rubric_beside_it(tmp_path: Path) -> None:
    from prescore.data.rubrics import write_rubric

    rubric = Credential.model_validate(RUBRIC)
    edited = rubric.model_copy(update={"title": "Wait time, as the issuer wrote it"})
    out = tmp_path / "reviews.jsonl"
    written_by_hand = write_rubric(edited, tmp_path / "rubrics")
    before = written_by_hand.read_text()
    with pytest.raises(ValueError, match="exists and differs"):
        write_export([reviewed(0)], {"wait-time": rubric}, out)
    assert written_by_hand.read_text() == before and not out.exists()
    write_rubric(rubric, tmp_path / "rubrics")  # the same rubric: the export goes ahead
    assert write_export([reviewed(0)], {"wait-time": rubric}, out)[0] == 1


def test_an_invalid_rubric_beside_the_export_is_named_not_a_traceback(tmp_path: Path) -> None:
    rubric = Credential.model_validate(RUBRIC)
    (tmp_path / "rubrics").mkdir()
    broken = tmp_path / "rubrics" / "wait-time.yaml"
    broken.write_text("id: wait-time\ncriteria: [unclosed\n")
    out = tmp_path / "reviews.jsonl"
    with pytest.raises(ValueError, match="wait-time.yaml exists and is not a valid rubric"):
        write_export([reviewed(0)], {"wait-time": rubric}, out)
    assert broken.read_text() == "id: wait-time\ncriteria: [unclosed\n" and not out.exists()


def test_an_export_is_owner_only_and_a_failed_one_leaves_no_evidence_behind(
    tmp_path: Path,
) -> None:
    rubric = {"wait-time": Credential.model_validate(RUBRIC)}
    out = tmp_path / "reviews.jsonl"
    write_export([reviewed(0)], rubric, out)
    assert oct(out.stat().st_mode & 0o777) == "0o600"  # it holds evidence text
    out.write_text("earlier\n")
    out.chmod(0o644)
    write_reviews([reviewed(1)], out)  # a rewrite, as forget does, is owner-only too
    assert oct(out.stat().st_mode & 0o777) == "0o600"

    folder = tmp_path / "taken"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a folder: name the file to write"):
        write_export([reviewed(2)], rubric, folder)
    # a write that fails midway (here: the rename onto a folder) leaves nothing either
    with pytest.raises(OSError):
        write_reviews([reviewed(3)], folder)
    left = [p.name for p in tmp_path.iterdir()]
    assert sorted(left) == ["reviews.jsonl", "rubrics", "taken"] and not list(folder.iterdir())
    assert not any(b"Evidence 3" in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
