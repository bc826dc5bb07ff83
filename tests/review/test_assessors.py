"""Experts and peers in the queue, without a browser: who decides what, two agreeing peers,
disagreeing peers escalated, kinds in the export; training and blind calibration items, the
figures and the bar; bad input refused with nothing half-created; an existing database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import inspect, select
from typer.testing import CliRunner

from prescore.cli import app
from prescore.eval.agreement import quadratic_weighted_kappa
from prescore.eval.decisions import cohen_kappa
from prescore.review.agreement import Pair, agreement, assessor_of, benchmarks, figures
from prescore.review.assessors import (
    Plan,
    adjudicated,
    mix_in_blind,
    open_blind_items,
    plan_of,
    record_calibration,
    set_plan,
    training_of,
)
from prescore.review.queue import ReviewQueue
from prescore.review.reviewers import set_reviewer
from prescore.review.tables import BLIND, DECIDED, PENDING, TRAINING, Review, Reviewer, ReviewerRole
from prescore.review.verdicts import AlreadyDecided, NotAssigned, Verdict
from tests.review.test_forget import owned_by
from tests.review.test_queue import EVERY_CRITERION_MET, VERDICT, review
from tests.review.test_review_form import sign_in
from tests.serving.conftest import MODEL, Registry

EARNED = Verdict(EVERY_CRITERION_MET, "earned", "Well done.")
OTHER = Verdict({"planning": "Developing", "reflection": "1"}, "not_yet", "Plan your pauses.")


@pytest.fixture
def queue(tmp_path: Path) -> ReviewQueue:
    queue = ReviewQueue.at(tmp_path / "review.db")
    set_reviewer(queue, "eve", "expert password", ["wait-time"], kind="expert", admin=True)
    set_reviewer(queue, "pia", "peer password 1", ["wait-time"], kind="peer")
    set_reviewer(queue, "pat", "peer password 2", ["wait-time"], kind="peer")
    return queue


def live(queue: ReviewQueue, entry_id: int, verdict: Verdict, name: str) -> str:
    """Record a live verdict as the page does; the entry's status after it."""
    who = assessor_of(queue, name)
    entry = queue.decide(entry_id, verdict, name, who.credentials, 1, who)
    return entry.status


def waiting_for(queue: ReviewQueue, name: str) -> list[int]:
    who = assessor_of(queue, name)
    return [e.id for e in queue.pending(who.credentials, assessor=who)]


def test_two_agreeing_peers_decide_a_low_stakes_submission_and_the_export_says_peer(
    queue: ReviewQueue,
) -> None:
    (entry_id,) = queue.enqueue([review(0)])
    assert live(queue, entry_id, VERDICT, "pia") == PENDING
    assert waiting_for(queue, "pia") == []  # one review each
    assert waiting_for(queue, "pat") == [entry_id]
    with pytest.raises(AlreadyDecided, match="reviewed submission .* already"):
        live(queue, entry_id, VERDICT, "pia")
    assert live(queue, entry_id, VERDICT, "pat") == DECIDED
    (item, _) = queue.reviewed_items()
    assert [(s.rater_id, s.rater_kind, s.level) for s in item.scores] == [
        ("pia", "peer", "Proficient"),
        ("pat", "peer", "Proficient"),
    ]
    (decided,) = queue.decided()
    assert decided.feedback == "Say why you paused."  # the same words once


def test_disagreeing_peers_send_it_to_an_expert_whose_levels_are_final(
    queue: ReviewQueue,
) -> None:
    first, other = queue.enqueue([review(0), review(1)])
    live(queue, first, VERDICT, "pia")
    assert live(queue, first, OTHER, "pat") == PENDING
    set_reviewer(queue, "pip", "peer password 3", ["wait-time"], kind="peer")
    assert first not in waiting_for(queue, "pip")  # peers are done with it
    with pytest.raises(AlreadyDecided, match="waits for an expert"):
        live(queue, first, VERDICT, "pip")
    assert waiting_for(queue, "eve")[0] == first  # escalated ones come first for experts
    assert live(queue, first, EARNED, "eve") == DECIDED
    items = [i for i in queue.reviewed_items() if i.criterion_id == "planning"]
    assert [(s.rater_kind, s.level) for s in items[0].scores] == [
        ("peer", "Proficient"),
        ("peer", "Developing"),
        ("expert", "Proficient"),
    ]
    assert items[0].decided_level == "Proficient" and items[0].decision == "earned"
    (pairs,) = benchmarks(queue)
    assert (pairs.human_pairs.submissions, pairs.human_pairs.exact) == (1, 0.5)  # one level apart
    assert other in waiting_for(queue, "pia")


def test_high_stakes_submissions_never_reach_a_peer(queue: ReviewQueue) -> None:
    (high,) = queue.enqueue([review(0, stakes="high")])
    (low,) = queue.enqueue([review(1)])
    assert waiting_for(queue, "pia") == [low]
    assert queue.count_pending(["wait-time"], assessor=assessor_of(queue, "pia")) == 1
    with pytest.raises(NotAssigned, match="high stakes"):
        live(queue, high, VERDICT, "pia")
    assert waiting_for(queue, "eve") == [high, low]
    assert live(queue, high, VERDICT, "eve") == DECIDED  # one expert decides it


def test_bad_reviewer_input_is_refused_and_nothing_is_created(queue: ReviewQueue) -> None:
    with pytest.raises(ValueError, match="unknown reviewer kind 'guru'"):
        set_reviewer(queue, "gus", "a good password", ["wait-time"], kind="guru")
    queue.enqueue([review(0, credential="feedback", stakes="high")])
    with pytest.raises(ValueError, match="feedback is high stakes, decided by experts only"):
        set_reviewer(queue, "gus", "a good password", ["wait-time", "feedback"], kind="peer")
    with pytest.raises(ValueError, match="high stakes"):  # an existing peer keeps their kind
        set_reviewer(queue, "pia", None, ["feedback"])
    with queue.sessions() as session:
        assert session.get(Reviewer, "gus") is None and session.get(ReviewerRole, "gus") is None
        pia = session.get(Reviewer, "pia")
        assert pia is not None and pia.credentials == ["wait-time"]
    set_reviewer(queue, "gus", "a good password", ["feedback"], kind="expert")


def adjudicate(queue: ReviewQueue, count: int, start: int = 100) -> list[int]:
    """`count` submissions decided by the expert: adjudicated, for training and calibration."""
    ids = queue.enqueue([review(start + n) for n in range(count)])
    for n, entry_id in enumerate(ids):
        live(queue, entry_id, EARNED if n % 2 else VERDICT, "eve")
    return ids


def test_a_calibration_plan_needs_enough_adjudicated_submissions(queue: ReviewQueue) -> None:
    adjudicate(queue, 2)
    queue.enqueue([review(9, consent=False)])  # decided without consent: not adjudicated
    live(queue, 3, EARNED, "eve")
    assert len(adjudicated(queue, "wait-time")) == 2
    with pytest.raises(ValueError, match="has 2 adjudicated submission.*too few for 3"):
        set_plan(queue, Plan("wait-time", training_items=3))
    with pytest.raises(ValueError, match="--blind-rate is a share"):
        set_plan(queue, Plan("wait-time", training_items=1, blind_rate=1.5))
    assert plan_of(queue, "wait-time") == Plan("wait-time")  # nothing stored
    assert set_plan(queue, Plan("wait-time", training_items=2)).training_items == 2


def test_a_new_reviewer_scores_training_items_before_live_work(queue: ReviewQueue) -> None:
    adjudicated_ids = adjudicate(queue, 2)
    set_plan(queue, Plan("wait-time", training_items=2))
    (live_id,) = queue.enqueue([review(0)])
    set_reviewer(queue, "new", "a new password", ["wait-time"], kind="peer")
    assert assessor_of(queue, "new").credentials == []
    assert waiting_for(queue, "new") == []
    for step in range(2):
        training = training_of(queue, "new", "wait-time")
        assert (training.done, training.complete) == (step, False)
        assert training.next_item is not None and training.next_item.id == adjudicated_ids[step]
        record_calibration(queue, assessor_of(queue, "new"), training.next_item, OTHER, TRAINING)
    assert training_of(queue, "new", "wait-time").complete
    assert waiting_for(queue, "new") == [live_id]
    # the expert who decided them is trained by their own decisions? no: theirs are left out
    assert training_of(queue, "eve", "wait-time").next_item is None


def test_a_blind_item_updates_the_figures_and_a_reviewer_under_the_bar_loses_high_stakes(
    queue: ReviewQueue,
) -> None:
    set_reviewer(queue, "ed", "expert password 2", ["wait-time"], kind="expert")
    adjudicate(queue, 3)
    set_plan(queue, Plan("wait-time", training_items=1, blind_rate=1.0, min_qwk=0.7))
    first = training_of(queue, "ed", "wait-time").next_item
    assert first is not None and first.decided_decision == "not_yet"
    record_calibration(queue, assessor_of(queue, "ed"), first, VERDICT, TRAINING)  # agrees
    (before,) = figures(queue, "ed")
    assert (before.calibration.submissions, before.calibration.exact, before.flagged) == (
        1,
        1.0,
        False,
    )
    (high,) = queue.enqueue([review(0, stakes="high")])
    assert "wait-time" in assessor_of(queue, "ed").high_stakes

    chosen = mix_in_blind(queue, "ed", "wait-time", draw=lambda: 0.0)
    assert chosen is not None and chosen.status == DECIDED
    assert [e.id for e in open_blind_items(queue, "ed")] == [chosen.id]
    assert mix_in_blind(queue, "ed", "wait-time", draw=lambda: 0.0) is None  # one at a time
    wrong = Verdict({"planning": "Not yet", "reflection": "0"}, "not_yet", "No.")
    record_calibration(queue, assessor_of(queue, "ed"), chosen, wrong, BLIND)
    assert open_blind_items(queue, "ed") == []
    (after,) = figures(queue, "ed")
    assert (after.calibration.submissions, after.blind_items) == (2, 1)
    assert after.flagged and any("QWK" in why for why in after.why)
    ed = assessor_of(queue, "ed")
    assert "wait-time" in ed.credentials and "wait-time" not in ed.high_stakes
    assert high not in waiting_for(queue, "ed")
    with pytest.raises(NotAssigned, match="high stakes"):
        live(queue, high, VERDICT, "ed")


def test_the_figures_count_volume_time_and_agreement_with_the_model(queue: ReviewQueue) -> None:
    first, second = queue.enqueue([review(0), review(1)])
    eve = assessor_of(queue, "eve")
    as_suggested = Verdict({"planning": "Developing", "reflection": "2"}, "not_yet", "Plan.")
    assert queue.get(first, ["wait-time"]).decision == "not_yet"  # type: ignore[union-attr]
    queue.decide(first, as_suggested, "eve", ["wait-time"], 1, eve, seconds=30.0)
    queue.decide(second, VERDICT, "eve", ["wait-time"], 1, eve, seconds=10.0)
    (mine,) = [f for f in figures(queue) if f.reviewer == "eve"]
    assert (mine.live_reviews, mine.median_seconds) == (2, 20.0)
    assert (mine.with_model.submissions, mine.with_model.exact) == (2, 0.5)
    assert mine.with_model.decision_agreement == 1.0
    assert mine.calibration.submissions == 0 and not mine.flagged


def test_agreement_is_the_evaluation_s_numbers() -> None:
    scales = {"a": ["0", "1", "2"], "b": ["x", "y"]}
    pairs = [
        Pair({"a": "0", "b": "x"}, "not_yet", {"a": "0", "b": "y"}, "earned", scales),
        Pair({"a": "2", "b": "y"}, "earned", {"a": "1", "b": "y"}, "earned", scales),
        Pair({"a": "1", "b": "x"}, "not_yet", {"a": "1", "b": "x"}, "not_yet", scales),
    ]
    result = agreement(pairs)
    qwk_a = quadratic_weighted_kappa([0, 2, 1], [0, 1, 1], 3)
    qwk_b = quadratic_weighted_kappa([0, 1, 0], [1, 1, 0], 2)
    assert result.qwk == pytest.approx((qwk_a + qwk_b) / 2)
    assert (result.items, result.exact, result.adjacent) == (6, pytest.approx(4 / 6), 1.0)
    assert result.decision_agreement == pytest.approx(2 / 3)
    assert result.decision_kappa == pytest.approx(
        cohen_kappa([False, True, False], [True, True, False])
    )
    assert agreement([]).submissions == 0


def test_the_cli_adds_kinds_sets_plans_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")  # empty
    database = f"sqlite:///{tmp_path / 'review.db'}"
    queue = ReviewQueue(database)
    queue.enqueue([review(0, credential="feedback", stakes="high")])

    def run(*args: str, password: str = "a fine password\n") -> tuple[int, str]:
        result = CliRunner().invoke(
            app, [*args, "--review-db", database], input=password, terminal_width=200
        )
        return result.exit_code, " ".join(result.output.split())

    add = ("reviewers", "add")
    assert run(*add, "kim", "--credentials", "wait-time", "--password-stdin")[1].startswith(
        "Say what kind of reviewer kim is"
    )
    code, output = run(
        *add, "kim", "--kind", "guru", "--credentials", "wait-time", "--password-stdin"
    )
    assert code == 1 and "unknown reviewer kind 'guru'" in output
    code, output = run(
        *add, "kim", "--kind", "peer", "--credentials", "feedback", "--password-stdin"
    )
    assert code == 1 and "feedback is high stakes" in output and "Nothing changed" in output
    with queue.sessions() as session:
        assert session.get(Reviewer, "kim") is None
    code, output = run(
        *add, "eve", "--kind", "expert", "--admin", "--credentials", "wait-time", "--password-stdin"
    )
    assert code == 0 and "Reviewer eve (expert, administrator) may score: wait-time" in output
    code, output = run(*add, "eve", "--credentials", "wait-time,feedback", "--keep-password")
    assert code == 0 and "(expert, administrator)" in output

    code, output = run("reviewers", "calibrate", "wait-time", "--training-items", "2")
    assert code == 1 and "has 0 adjudicated submission(s)" in output
    adjudicate(queue, 2)
    code, output = run("reviewers", "calibrate", "wait-time", "--training-items", "2")
    assert code == 0 and "2 training item(s) before live work" in output

    code, output = run("reviewers", "report")
    assert code == 0 and "eve (expert, admin) on wait-time: training 0/2" in output
    assert "Compared with" in output and "the model against decided levels, 2 submission" in output
    assert "held out: not available (prescore-test version 3:" in output


def test_the_report_shows_the_held_out_agreement_the_model_was_qualified_against(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    database = f"sqlite:///{tmp_path / 'review.db'}"
    queue = ReviewQueue(database)
    set_reviewer(queue, "eve", "expert password", ["wait-time"], kind="expert")
    (entry_id,) = queue.enqueue([review(0, model_name=MODEL, model_version="1")])
    live(queue, entry_id, VERDICT, "eve")
    result = CliRunner().invoke(app, ["reviewers", "report", "--review-db", database])
    output = " ".join(result.output.split())
    assert result.exit_code == 0, output
    metrics = (
        MlflowClient().get_run(MlflowClient().get_model_version(MODEL, "1").run_id).data.metrics
    )
    model_qwk = metrics["test_qwk.wait-time.planning"]
    assert (
        f"the bar {MODEL} version 1 was qualified against: planning model QWK {model_qwk:.2f}, "
        "human-human QWK 1.00" in output  # the fixture's two raters always agree
    )


def test_an_existing_database_gains_the_new_tables_and_its_reviewers_are_experts(
    tmp_path: Path,
) -> None:
    from prescore.review.tables import (
        BlindItem,
        CalibrationSetting,
        DecisionRecord,
        Review,
        WebhookDelivery,
        WebhookEndpoint,
    )

    path = tmp_path / "review.db"
    old = ReviewQueue.at(path)
    (decided, pending) = old.enqueue([review(0), review(1)])
    set_reviewer(old, "ana", "correct horse", ["wait-time"])
    old.decide(decided, VERDICT, "ana", ["wait-time"], 1)
    for table in (ReviewerRole, Review, CalibrationSetting, BlindItem):  # as before this change
        table.__table__.drop(old.engine)  # type: ignore[attr-defined]
    for newer in (DecisionRecord, WebhookEndpoint, WebhookDelivery):  # and before 0002
        newer.__table__.drop(old.engine)  # type: ignore[attr-defined]
    with old.engine.begin() as connection:  # and before migrations
        connection.exec_driver_sql("DROP TABLE alembic_version")
    old.engine.dispose()

    reopened = ReviewQueue.at(path)
    assert {"reviewer_roles", "reviews", "blind_items"} <= set(
        inspect(reopened.engine).get_table_names()
    )
    assert assessor_of(reopened, "ana").kind == "expert"
    (item, _) = reopened.reviewed_items()
    assert [(s.rater_id, s.rater_kind) for s in item.scores] == [("ana", "expert")]
    assert live(reopened, pending, EARNED, "ana") == DECIDED
    record = json.loads(json.dumps([s.__dict__ for s in item.scores]))
    assert record == [{"rater_id": "ana", "rater_kind": "expert", "level": "Proficient"}]


def test_a_decided_submission_shows_its_decision_only_to_those_who_took_part(
    queue: ReviewQueue,
) -> None:
    """It may be someone's training or blind item: its answer is not for browsing."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from prescore.review.pages import app as review_app

    (entry_id,) = adjudicate(queue, 1)
    page = review_app.create_review_app()
    review_app.connect(page, queue, "test-session-secret")
    site = FastAPI()
    site.mount(review_app.ROOT, page)
    shown = {}
    for name, password in (("pat", "peer password 2"), ("eve", "expert password")):
        client = TestClient(site)
        sign_in(client, name, password)
        shown[name] = client.get(f"/review/submission/{entry_id}").text
    assert 'id="decided">Already decided.</p>' in shown["pat"]
    assert "decided by eve" not in shown["pat"]
    assert 'id="decided">Already decided by eve: Not yet.</p>' in shown["eve"]


def test_export_reviews_carries_each_reviewer_s_kind(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    database = f"sqlite:///{tmp_path / 'review.db'}"
    queue = ReviewQueue(database)
    set_reviewer(queue, "eve", "expert password", ["wait-time"], kind="expert")
    for name in ("pia", "pat"):
        set_reviewer(queue, name, "peer password", ["wait-time"], kind="peer")
    agreed, escalated = queue.enqueue(
        [review(n, model_name=MODEL, model_version="1") for n in (0, 1)]
    )
    for name in ("pia", "pat"):
        live(queue, agreed, VERDICT, name)
    live(queue, escalated, VERDICT, "pia")
    live(queue, escalated, OTHER, "pat")
    live(queue, escalated, EARNED, "eve")
    out = tmp_path / "export" / "reviews.jsonl"
    result = CliRunner().invoke(app, ["export-reviews", "--out", str(out), "--review-db", database])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = {
        (r["submission_id"], r["criterion_id"]): [s["rater_kind"] for s in r["scores"]]
        for r in records
    }
    assert kinds[("s0", "planning")] == ["peer", "peer"]
    assert kinds[("s1", "planning")] == ["peer", "peer", "expert"]
    final = {(r["submission_id"], r["criterion_id"]): r["final_level"] for r in records}
    assert final[("s1", "planning")] == "Proficient" and final[("s1", "reflection")] == "3"


def reviews_of(queue: ReviewQueue, entry_id: int) -> list[Review]:
    with queue.sessions() as session:
        return list(session.scalars(select(Review).where(Review.entry_id == entry_id)))


def test_forgetting_an_educator_reaches_reviewers_verdicts_and_blind_items(
    queue: ReviewQueue,
) -> None:
    decided, waiting = queue.enqueue([owned_by("ana", review(100)), owned_by("ana", review(101))])
    live(queue, decided, VERDICT, "eve")  # adjudicated: a training and calibration item
    live(queue, waiting, EARNED, "pia")  # one peer so far: still pending
    set_plan(queue, Plan("wait-time", blind_rate=1.0))
    blind = mix_in_blind(queue, "pat", "wait-time", draw=lambda: 0.0)
    assert blind is not None and blind.id == decided

    queue.forget_educator("ana")

    assert reviews_of(queue, waiting) == []  # the submission is gone, so is the verdict on it
    (kept,) = reviews_of(queue, decided)
    assert (kept.levels, kept.feedback) == (VERDICT.levels, "")  # levels stay, words about it go
    assert open_blind_items(queue, "pat") == []  # nothing left to score blind
    assert adjudicated(queue, "wait-time") == []


def test_evidence_past_retention_is_no_longer_a_calibration_item(queue: ReviewQueue) -> None:
    (decided,) = adjudicate(queue, 1)
    set_plan(queue, Plan("wait-time", blind_rate=1.0))
    assert mix_in_blind(queue, "pat", "wait-time", draw=lambda: 0.0) is not None

    assert queue.erase_decided_text(datetime.now(UTC) + timedelta(days=1)) == 2

    assert open_blind_items(queue, "pat") == [] and adjudicated(queue, "wait-time") == []
    assert [r.levels for r in reviews_of(queue, decided)] == [VERDICT.levels]


def test_a_peer_is_never_trained_or_calibrated_on_a_high_stakes_submission(
    queue: ReviewQueue,
) -> None:
    (high,) = queue.enqueue([review(100, stakes="high")])  # pia was assigned before it came
    live(queue, high, VERDICT, "eve")  # decided by the expert: adjudicated
    set_plan(queue, Plan("wait-time", training_items=1, blind_rate=1.0))

    assert [e.id for e in adjudicated(queue, "wait-time")] == [high]
    assert training_of(queue, "pia", "wait-time").next_item is None
    assert mix_in_blind(queue, "pia", "wait-time", draw=lambda: 0.0) is None
    set_reviewer(queue, "ed", "expert password 2", ["wait-time"], kind="expert")
    expert_item = training_of(queue, "ed", "wait-time").next_item
    assert expert_item is not None and expert_item.id == high  # experts train on it
