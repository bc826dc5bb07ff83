"""Educators own their evidence: `prescore forget --educator` takes it out of the review queue
and the exports and names the model versions that learned from it; retention erases old text
and keeps the decisions."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from prescore.cli import app
from prescore.data.owners import EDUCATORS_ARTIFACT, educator_hash, educator_salt
from prescore.review.intake import ItemToReview, ToReview
from prescore.review.queue import ReviewQueue
from prescore.review.tables import SubmissionEntry
from prescore.review.verdicts import Verdict
from tests.review.test_queue import VERDICT, review
from tests.serving.conftest import MODEL, Registry

EARNED = Verdict({"planning": "Proficient", "reflection": "3"}, "earned", "Well paced.")


def owned_by(educator: str, to_review: ToReview) -> ToReview:
    items = [
        ItemToReview(m.item.model_copy(update={"educator_id": educator}), m.scored, m.criterion)
        for m in to_review.items
    ]
    return replace(to_review, items=items)


@pytest.fixture
def queue(review_db: str) -> Iterator[ReviewQueue]:
    queue = ReviewQueue(review_db)
    yield queue
    queue.engine.dispose()


def decided_at(queue: ReviewQueue, entry_id: int, moment: datetime) -> None:
    with queue.writing() as session:
        session.execute(
            update(SubmissionEntry).where(SubmissionEntry.id == entry_id).values(decided_at=moment)
        )


def test_forgetting_an_educator_deletes_pending_and_strips_decided_submissions(
    queue: ReviewQueue,
) -> None:
    waiting, decided, other = queue.enqueue(
        [owned_by("ana", review(0)), owned_by("ana", review(1)), owned_by("ben", review(2))]
    )
    queue.decide(decided, VERDICT, "rev", ["wait-time"], 1)
    queue.decide(other, VERDICT, "rev", ["wait-time"], 1)
    before = queue.reviewed_decisions()

    found = queue.educator_entries("ana")
    assert (found.pending, found.decided) == ([waiting], [decided])
    assert queue.forget_educator("ana") == found

    assert queue.get(waiting, ["wait-time"]) is None  # pending: gone whole
    kept = queue.get(decided, ["wait-time"])
    assert kept is not None
    assert (kept.decided_decision, kept.decided_by, kept.status) == ("not_yet", "rev", "decided")
    assert [i.decided_level for i in kept.items] == ["Proficient", "1"]  # the levels stay
    assert [i.text for i in kept.items] == ["", ""]
    assert (kept.feedback, kept.educator_id, kept.consent_to_train) == (None, None, False)
    assert queue.reviewed_decisions() == before  # drift and audit figures are unchanged
    theirs = queue.get(other, ["wait-time"])
    assert theirs is not None and theirs.items[0].text.startswith("Essay 2")
    assert theirs.educator_id == "ben" and theirs.feedback == VERDICT.feedback
    exportable = [i for i in queue.reviewed_items() if i.text]
    assert {i.educator_id for i in exportable} == {"ben"}
    again = queue.educator_entries("ana")
    assert (again.pending, again.decided) == ([], [])


def with_submission_id(to_review: ToReview, submission_id: str) -> ToReview:
    items = [
        ItemToReview(
            m.item.model_copy(update={"submission_id": submission_id}),
            m.scored.model_copy(update={"submission_id": submission_id}),
            m.criterion,
        )
        for m in to_review.items
    ]
    decision = to_review.decision.model_copy(update={"submission_id": submission_id})
    return replace(to_review, decision=decision, items=items)


def answer_for(*submissions: ToReview) -> str:
    """The /score answer a receipt keeps for a request of these submissions."""
    from prescore.serving.schemas import ScoreResponse

    return ScoreResponse(
        model_name="prescore-test",
        model_version="3",
        scores=[m.scored for s in submissions for m in s.items],
        submissions=[s.decision for s in submissions],
    ).model_dump_json()


def test_forget_deletes_the_receipts_whose_answer_names_the_educators_submissions(
    queue: ReviewQueue,
) -> None:
    """A receipt keeps a /score answer (levels, decisions; no text) for a day: forget deletes
    each one that names a forgotten submission, pending or decided, and keeps the rest."""
    from prescore.serving.human_review import Receipt

    odd = 'ana\'s "50%_done" — 1/2'  # LIKE wildcards, quotes, a backslash, non-ASCII
    pending, decided = (
        owned_by("ana", review(1)),
        owned_by("ana", with_submission_id(review(2), odd)),
    )
    bens, same_id_elsewhere = owned_by("ben", review(10)), review(1, credential="feedback")
    _, decided_id, _ = queue.enqueue([pending, decided, bens])
    queue.decide(decided_id, VERDICT, "rev", ["wait-time"], 1)
    receipts = {
        "ana-pending": answer_for(pending),
        "ana-decided-and-ben": answer_for(decided, bens),
        "ben": answer_for(bens),  # "s10" holds "s1"
        "another-credential": answer_for(same_id_elsewhere),  # s1, of another credential
        "not-an-answer": '{"first": true}',
    }
    for key, answer in receipts.items():
        queue.enqueue([], Receipt(key, "digest", answer))

    assert queue.educator_entries("ana").receipts == 2  # the dry run counts, deletes none
    assert queue.count_receipts() == 5
    assert queue.forget_educator("ana").receipts == 2
    kept = {key for key in receipts if queue.receipt(key) is not None}
    assert kept == {"ben", "another-credential", "not-an-answer"}
    assert queue.forget_educator("ana").receipts == 0  # nothing left to find


def test_retention_erases_old_decided_text_and_keeps_decisions_levels_feedback(
    queue: ReviewQueue,
) -> None:
    old, recent, waiting = queue.enqueue([review(0), review(1), review(2)])
    queue.decide(old, VERDICT, "rev", ["wait-time"], 1)
    queue.decide(recent, EARNED, "rev", ["wait-time"], 1)
    now = datetime.now(UTC)
    decided_at(queue, old, now - timedelta(days=100))
    cutoff = now - timedelta(days=90)

    assert queue.decided_with_text(cutoff) == 2  # the two items of the old submission
    assert queue.erase_decided_text(cutoff) == 2
    assert queue.decided_with_text(cutoff) == 0 and queue.erase_decided_text(cutoff) == 0
    erased = queue.get(old, ["wait-time"])
    assert erased is not None and [i.text for i in erased.items] == ["", ""]
    assert erased.decided_decision == "not_yet" and erased.feedback == VERDICT.feedback
    assert [i.decided_level for i in erased.items] == ["Proficient", "1"]
    for kept in (recent, waiting):  # decided lately, or not decided at all
        entry = queue.get(kept, ["wait-time"])
        assert entry is not None and all(i.text for i in entry.items)


def test_an_export_leaves_out_erased_text(queue: ReviewQueue, tmp_path: Path) -> None:
    from prescore.data.review_export import write_reviews

    first, second = queue.enqueue([review(0), review(1)])
    for entry_id in (first, second):
        queue.decide(entry_id, VERDICT, "rev", ["wait-time"], 1)
    decided_at(queue, first, datetime.now(UTC) - timedelta(days=10))
    queue.erase_decided_text(datetime.now(UTC) - timedelta(days=5))
    written, withheld = write_reviews(queue.reviewed_items(), tmp_path / "reviews.jsonl")
    assert (written, withheld) == (2, 2)


def test_training_records_educators_by_salted_hash_only(registry: Registry) -> None:
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
        mlflow.set_tracking_uri(registry.tracking_uri)
        version = mlflow.MlflowClient().get_model_version(MODEL, "1")
        record = mlflow.artifacts.load_dict(f"runs:/{version.run_id}/{EDUCATORS_ARTIFACT}")
    salt = educator_salt()
    assert salt is not None
    raw = json.dumps(record)
    assert not any(f'"e{n}"' in raw for n in range(100))  # no raw id anywhere
    assert "Evidence number" not in raw  # nor any text
    assert educator_hash("e3", salt) in record["educators"]
    assert len(record["educators"]) == 100  # the registry's evidence: educators e0..e99


def invoke(*arguments: str) -> str:
    result = CliRunner().invoke(app, ["forget", *arguments])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # rich wraps long lines


def records_of(path: Path, educator: str) -> int:
    return sum(json.loads(line)["educator_id"] == educator for line in path.open())


def test_prescore_forget_dry_run_then_yes(
    registry: Registry, review_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    queue = ReviewQueue(review_db)
    decided, other, pending = queue.enqueue(
        [
            review(3, model_name=MODEL, model_version="1"),  # educator e3's, decided below
            review(4, model_name=MODEL, model_version="1"),  # e4's
            owned_by("e3", review(5, model_name=MODEL, model_version="1")),  # e3's, pending
        ]
    )
    for entry_id in (decided, other):
        queue.decide(entry_id, VERDICT, "rev", ["wait-time"], 1)
    out = tmp_path / "export" / "reviews.jsonl"
    exported = CliRunner().invoke(
        app, ["export-reviews", "--out", str(out), "--review-db", review_db]
    )
    assert exported.exit_code == 0, exported.output
    copy = tmp_path / "elsewhere" / "nested" / "copy.jsonl"  # an export someone moved
    copy.parent.mkdir(parents=True)
    shutil.copy(out, copy)
    assert records_of(out, "e3") == records_of(copy, "e3") == 2
    untouched = out.read_text()
    base = ["--educator", "e3", "--review-db", review_db, "--exports", str(tmp_path / "elsewhere")]

    said = invoke(*base)
    assert "Dry run" in said and "1 pending submission(s) would be withdrawn" in said
    assert "1 decided submission(s) would be stripped" in said
    assert f"export {out.resolve()}: 2 record(s) would be removed" in said
    assert f"export {copy.resolve()}: 2 record(s) would be removed" in said
    assert f"{MODEL} version 1" in said and f"{MODEL} version 2" in said  # both used e3's
    assert out.read_text() == untouched and len(queue.educator_entries("e3").decided) == 1

    said = invoke(*base, "--yes")
    assert "Dry run" not in said and "1 pending submission(s) withdrawn" in said
    assert records_of(out, "e3") == records_of(copy, "e3") == 0
    assert records_of(out, "e4") == records_of(copy, "e4") == 2  # others stay
    entries = queue.educator_entries("e3")
    assert (entries.pending, entries.decided) == ([], [])
    stripped = queue.get(decided, ["wait-time"])
    assert stripped is not None and stripped.decided_decision == "not_yet"
    assert f"{MODEL} version 1" in said  # the versions are named, not changed

    out.unlink()
    said = invoke("--educator", "nobody", "--review-db", review_db)
    assert f"export {out.resolve()} is gone" in said
    assert "model versions trained on their evidence: none recorded" in said
    monkeypatch.setenv("PRESCORE_EDUCATOR_SALT", "another salt")
    said = invoke("--educator", "e3", "--review-db", review_db)
    assert "run(s) cannot tell" in said and "none recorded" in said
    queue.engine.dispose()


def test_prescore_forget_older_than_is_a_dry_run_without_yes(
    review_db: str, tmp_path: Path
) -> None:
    queue = ReviewQueue(review_db)
    (entry_id,) = queue.enqueue([review(0)])
    queue.decide(entry_id, VERDICT, "rev", ["wait-time"], 1)
    decided_at(queue, entry_id, datetime.now(UTC) - timedelta(days=40))

    said = invoke("--older-than", "30", "--review-db", review_db)
    assert "Dry run" in said and "2 item(s)" in said and "would have" in said
    assert queue.decided_with_text(datetime.now(UTC)) == 2
    said = invoke("--older-than", "60", "--review-db", review_db, "--yes")
    assert "0 item(s)" in said
    with pytest.MonkeyPatch.context() as patch:  # the standing setting, from a timer
        patch.setenv("PRESCORE_RETENTION_DAYS", "30")
        said = invoke("--review-db", review_db, "--yes")
    assert "Retention (30 days): 2 item(s)" in said and "had their evidence text erased" in said
    assert queue.decided_with_text(datetime.now(UTC)) == 0
    with pytest.MonkeyPatch.context() as patch:  # no MLflow store here: none is created
        store = tmp_path / "mlflow.db"
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
        said = invoke("--educator", "e0", "--review-db", review_db)
    assert f"no MLflow store at {store}" in said and not store.exists()
    refused = CliRunner().invoke(app, ["forget", "--review-db", review_db])
    assert refused.exit_code == 2 and "--educator" in refused.output
    queue.engine.dispose()


def test_forget_where_no_queue_is_refuses_rather_than_find_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "review.db"
    result = CliRunner().invoke(
        app, ["forget", "--educator", "e0", "--review-db", f"sqlite:///{missing}", "--yes"]
    )
    assert result.exit_code == 1
    assert "no review queue at" in " ".join(result.output.split()) and not missing.exists()


def test_a_version_from_a_run_without_a_record_is_listed_as_cannot_tell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from prescore.models.registry import configure_tracking, trained_on

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    configure_tracking()  # an earlier test may have pointed MLflow elsewhere
    with mlflow.start_run() as run:  # as a run made before runs recorded their educators
        mlflow.log_param("scorer", "tfidf")
    client = MlflowClient()
    client.create_registered_model("older")
    client.create_model_version("older", f"runs:/{run.info.run_id}/model", run.info.run_id)

    lineage = trained_on("e0", "a salt")

    assert lineage.trained_on == []
    assert [(r.run_id, r.versions) for r in lineage.unknown] == [
        (run.info.run_id, [("older", "1")])
    ]


def test_after_forget_no_file_of_the_sqlite_queue_holds_the_educators_words(
    tmp_path: Path,
) -> None:
    """Erasure is physical: neither the database nor its write-ahead log keeps the text, the
    feedback or the id, without waiting for later writes to overwrite them."""
    path = tmp_path / "review.db"
    queue = ReviewQueue.at(path)
    secret, feedback, educator = "ZEBRA-PAUSE-4471", "QUOKKA-FEEDBACK-9902", "educator-KIWI-3318"
    items = [
        ItemToReview(
            m.item.model_copy(update={"educator_id": educator, "text": f"{secret} {m.item.text}"}),
            m.scored,
            m.criterion,
        )
        for m in review(0).items
    ]
    (entry,) = queue.enqueue([replace(review(0), items=items)])
    queue.decide(entry, replace(VERDICT, feedback=feedback), "rev", ["wait-time"], 1)
    for n in range(1, 4):  # other submissions beside it, as in a live queue
        queue.enqueue([review(n)])
    files = [tmp_path / name for name in ("review.db", "review.db-wal", "review.db-shm")]
    held = b"".join(f.read_bytes() for f in files if f.exists())
    assert secret.encode() in held and educator.encode() in held  # there before forget

    queue.forget_educator(educator)
    held = b"".join(f.read_bytes() for f in files if f.exists())
    for words in (secret, feedback, educator):
        assert words.encode() not in held, words
    assert queue.get(entry, ["wait-time"]) is not None  # the decision stays
    queue.engine.dispose()


def test_forget_with_an_empty_or_unknown_id_says_so_and_fails(
    review_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in the id must not look like a done erasure: nothing found anywhere, with
    nothing left unsearched, exits 1 naming the id; an empty id is refused outright."""
    queue = ReviewQueue(review_db)
    queue.enqueue([owned_by("ana", review(0))])
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    from mlflow.tracking import MlflowClient

    from prescore.models.registry import configure_tracking

    configure_tracking()
    MlflowClient().search_experiments()  # an empty store: searched, and nobody's runs in it
    assert store.exists()
    for empty in ("", "   "):
        refused = CliRunner().invoke(app, ["forget", "--educator", empty, "--review-db", review_db])
        assert refused.exit_code == 2 and "educator id is empty" in refused.output
    for act in ([], ["--yes"]):
        typo = CliRunner().invoke(
            app, ["forget", "--educator", "Ana", "--review-db", review_db, *act]
        )
        said = " ".join(typo.output.split())
        assert typo.exit_code == 1, said
        assert "Nothing of educator 'Ana' was found" in said
    assert invoke("--educator", "ana", "--review-db", review_db)  # known: exit 0
    assert len(queue.educator_entries("ana").pending) == 1  # a dry run changed nothing
    queue.engine.dispose()


def test_forget_names_every_export_it_could_not_search(
    review_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CSV copy beside the exports was skipped in silence, and a binary file crashed the
    search: each is now named as not searched, and the educator is not reported clean."""
    ReviewQueue(review_db).engine.dispose()  # a queue, empty
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "kept.jsonl").write_text(json.dumps({"educator_id": "ana", "text": "x"}) + "\n")
    (exports / "copy.csv").write_text("educator_id,text\nbea,y\n")
    (exports / "blob.jsonl").write_bytes(bytes(range(256)))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for act in ([], ["--yes"]):
        run = CliRunner().invoke(
            app,
            ["forget", "--educator", "bea", "--review-db", review_db, "--exports", str(exports)]
            + act,
        )
        said = " ".join(run.output.split())
        assert run.exception is None or isinstance(run.exception, SystemExit), said
        assert "copy.csv was not searched: not a .jsonl file" in said
        assert "blob.jsonl was not searched: not UTF-8 text" in said
        assert "Nothing of educator 'bea' was found" not in said  # not searched is not clean
    assert "ana" in (exports / "kept.jsonl").read_text()
