"""The platform hears back: every decision recorded and answerable by pull, and delivered by
signed webhooks from an outbox written in the decision's transaction, at least once, to a real
HTTP receiver started here (not a mock of the sender), on SQLite and on Postgres."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from typer.testing import CliRunner

from prescore.cli import app
from prescore.eval.routing import Route
from prescore.review.mount import ReviewSystem
from prescore.review.platform import auto_decisions
from prescore.review.queue import ReviewQueue
from prescore.review.tables import DEAD, DELIVERED, DUE, DecisionRecord, WebhookDelivery
from prescore.review.webhooks import DeliveryPolicy, add_endpoint, deliver_once
from prescore.serving.human_review import Receipt
from prescore.serving.launch import free_port
from tests.review.card_decisions import decide_submissions
from tests.review.test_queue import PLANNING, REFLECTION, VERDICT, card, scored_item

FAST = DeliveryPolicy(
    backoff_seconds=0.05, backoff_cap_seconds=0.2, timeout_seconds=2, lease_seconds=1
)


class Receiver:
    """A real HTTP server on a loopback port: it keeps every request (headers, body) and
    answers each with `status` (200 unless told), or holds it while `hold` is set (and
    counts it as never heard: status 0)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        self.status = 200
        self.hold = threading.Event()
        self.arrived = threading.Event()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.arrived.set()
                held = receiver.hold.is_set()
                while receiver.hold.is_set():
                    time.sleep(0.02)
                status = 0 if held else receiver.status  # a held one's sender is gone
                receiver.received.append((dict(self.headers.items()), body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def taken(self) -> list[tuple[dict[str, str], bytes]]:
        """The requests answered 2xx."""
        return [(h, b) for h, b, status in self.received if 200 <= status < 300]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.hold.clear()
    receiver.stop()


@pytest.fixture
def queue(review_db: str) -> Iterator[ReviewQueue]:
    queue = ReviewQueue(review_db)
    yield queue
    queue.engine.dispose()


def score(
    system: ReviewSystem, n: int, route: Route, receipt: Receipt | None = None, audit: bool = False
) -> None:
    """What /score hands the review system for one scored submission of two criteria."""
    pairs = [
        scored_item(n, PLANNING, text=f"SECRET-EVIDENCE {n} planning"),
        scored_item(n, REFLECTION, text=f"SECRET-EVIDENCE {n} reflection"),
    ]
    items, scores = [p[0] for p in pairs], [p[1] for p in pairs]
    (decision,) = decide_submissions(items, scores, card())
    decision = decision.model_copy(update={"route": route})
    system.draw = (lambda: 0.0) if audit else (lambda: 1.0)
    system.take(items, scores, [decision], card(), receipt, datetime.now(UTC) - timedelta(days=1))


def system_of(queue: ReviewQueue) -> ReviewSystem:
    return ReviewSystem(queue, alarms=None, audit_rate=0.05)  # type: ignore[arg-type]


def entry_of(queue: ReviewQueue, n: int) -> int:
    (entry,) = [e for e in queue.pending(["wait-time"], limit=1000) if e.submission_id == f"s{n}"]
    return entry.id


def deliver_until(
    queue: ReviewQueue, done: Callable[[], bool], seconds: float = 15, policy: DeliveryPolicy = FAST
) -> None:
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=policy.timeout_seconds) as client:
        while not done():
            assert time.monotonic() < deadline, "not delivered in time"
            if not deliver_once(queue, policy, client):
                time.sleep(0.05)


def states(queue: ReviewQueue) -> list[str]:
    with queue.sessions() as session:
        return list(session.scalars(select(WebhookDelivery.state).order_by(WebhookDelivery.id)))


def verified(secret: str, taken: list[tuple[dict[str, str], bytes]]) -> list[dict[str, Any]]:
    """Each body, once the standardwebhooks verifier accepted its signature."""
    return [Webhook(secret).verify(body, headers) for headers, body in taken]


def test_every_scored_submission_is_answerable_with_its_history(queue: ReviewQueue) -> None:
    system = system_of(queue)
    score(system, 1, Route.auto)  # the model decides; not queued
    score(system, 2, Route.human)
    score(system, 3, Route.auto, audit=True)

    auto = system.submission("s1", "wait-time")
    assert auto is not None and (auto.status, auto.decided_by) == ("decided", "model")
    assert auto.decision == auto.suggestion and auto.model_version == "3"
    assert [(lv.criterion_id, lv.title, lv.level) for lv in auto.levels] == [
        ("planning", "Plans pauses after questions", "Developing"),
        ("reflection", "Reflects on the effect", "2"),
    ]
    pending = system.submission("s2", "wait-time")
    assert pending is not None and (pending.status, pending.decision) == ("pending", None)
    assert pending.suggestion in ("earned", "not_yet") and pending.route == "human"
    assert system.submission("s2", "another-credential") is None
    assert system.submission("nobody", "wait-time") is None

    queue.decide(entry_of(queue, 2), VERDICT, "ada", ["wait-time"], seen_version=1)
    human = system.submission("s2", "wait-time")
    assert human is not None and (human.status, human.decided_by) == ("decided", "expert")
    assert (human.decision, human.feedback) == ("not_yet", "Say why you paused.")
    assert [lv.level for lv in human.levels] == ["Proficient", "1"]

    # the audit overturns the model: a revision added, the model's decision kept
    queue.decide(entry_of(queue, 3), VERDICT, "ada", ["wait-time"], seen_version=1)
    audited = system.submission("s3", "wait-time")
    assert audited is not None and audited.earlier_decisions == 1
    assert (audited.decided_by, audited.decision) == ("expert", "not_yet")
    with queue.sessions() as session:
        history = session.scalars(
            select(DecisionRecord.decided_by).where(DecisionRecord.submission_id == "s3")
        ).all()
    assert history == ["model", "expert"]


def test_a_forgotten_submission_answers_its_decision_and_says_it_was_erased(
    queue: ReviewQueue,
) -> None:
    add_endpoint(queue, "https://platform.example/hooks")
    system = system_of(queue)
    score(system, 4, Route.human)
    queue.decide(entry_of(queue, 4), VERDICT, "ada", ["wait-time"], seen_version=1)
    (due,) = queue_deliveries(queue)
    assert "Say why you paused." in due.payload
    queue.forget_educator("e4")
    answer = system.submission("s4", "wait-time")
    assert answer is not None and answer.erased and answer.feedback is None
    (scrubbed,) = queue_deliveries(queue)  # still due, sent without the feedback
    assert json.loads(scrubbed.payload)["data"]["erased"] is True
    assert "Say why you paused." not in scrubbed.payload
    assert answer.decision == "not_yet" and [lv.level for lv in answer.levels] == [
        "Proficient",
        "1",
    ]


def test_a_pending_submission_forgotten_answers_withdrawn_and_erased(queue: ReviewQueue) -> None:
    """No decision was made, so none remains to answer; the pull says what became of it
    instead of a 404 the platform could take for a typo, and no reviewer sees it again."""
    system = system_of(queue)
    score(system, 7, Route.human)
    entry = entry_of(queue, 7)
    queue.forget_educator("e7")
    answer = system.submission("s7", "wait-time")
    assert answer is not None, "a forgotten pending submission must not read as unknown"
    assert (answer.status, answer.erased, answer.decision, answer.feedback) == (
        "withdrawn",
        True,
        None,
        None,
    )
    assert queue.get(entry, ["wait-time"]) is None
    assert all(e.submission_id != "s7" for e in queue.pending(["wait-time"], limit=100))
    with pytest.raises(LookupError):
        queue.decide(entry, VERDICT, "ada", ["wait-time"], seen_version=1)
    again = queue.educator_entries("e7")
    assert (again.pending, again.decided) == ([], [])


def test_a_failed_request_writes_neither_a_record_nor_an_event(
    queue: ReviewQueue, receiver: Receiver
) -> None:
    add_endpoint(queue, receiver.url)
    system = system_of(queue)
    score(system, 5, Route.auto, Receipt("key-1", "digest", "{}"))
    with pytest.raises(IntegrityError):  # the receipt's key was stored meanwhile: all or none
        score(system, 6, Route.auto, Receipt("key-1", "digest", "{}"))
    assert system.submission("s6", "wait-time") is None
    assert states(queue) == [DUE]  # s5's event only


def test_a_decision_is_delivered_signed_and_without_evidence_text(
    queue: ReviewQueue, receiver: Receiver
) -> None:
    _, secret = add_endpoint(queue, receiver.url)
    system = system_of(queue)
    score(system, 7, Route.auto)
    score(system, 8, Route.human)
    queue.decide(entry_of(queue, 8), VERDICT, "ada", ["wait-time"], seen_version=1)
    deliver_until(queue, lambda: len(receiver.taken()) == 2)

    first, second = verified(secret, receiver.taken())
    assert (first["type"], first["data"]["decided_by"]) == ("submission.decided", "model")
    assert (second["type"], second["data"]["decided_by"]) == ("submission.decided", "expert")
    assert second["data"]["feedback"] == "Say why you paused."
    assert second["data"]["levels"][0] == {
        "criterion_id": "planning",
        "title": "Plans pauses after questions",
        "level": "Proficient",
    }
    assert all(b"SECRET-EVIDENCE" not in body for _, body in receiver.taken())
    assert states(queue) == [DELIVERED, DELIVERED]
    headers, body = receiver.taken()[0]
    with pytest.raises(WebhookVerificationError):  # another endpoint's secret
        Webhook(add_endpoint(queue, receiver.url)[1]).verify(body, headers)


def test_an_audit_that_overturns_the_model_is_a_revised_event(
    queue: ReviewQueue, receiver: Receiver
) -> None:
    _, secret = add_endpoint(queue, receiver.url)
    system = system_of(queue)
    score(system, 9, Route.auto, audit=True)
    queue.decide(entry_of(queue, 9), VERDICT, "ada", ["wait-time"], seen_version=1)
    deliver_until(queue, lambda: len(receiver.taken()) == 2)
    decided, revised = verified(secret, receiver.taken())
    assert decided["type"] == "submission.decided" and decided["data"]["earlier_decisions"] == 0
    assert revised["type"] == "submission.revised" and revised["data"]["earlier_decisions"] == 1


def test_a_receiver_down_for_a_while_gets_every_event_once_back_with_the_same_ids(
    queue: ReviewQueue,
) -> None:
    down = Receiver()  # its port chosen, nothing listening on it yet
    _, secret = add_endpoint(queue, down.url)
    system = system_of(queue)
    for n in range(10, 13):
        score(system, n, Route.auto)
    with queue.sessions() as session:
        ids = sorted(session.scalars(select(WebhookDelivery.message_id)))
    deliver_until(queue, lambda: min(d.tries for d in queue_deliveries(queue)) >= 2)
    assert {d.last_error for d in queue_deliveries(queue)} == {"ConnectError"}
    assert states(queue) == [DUE] * 3

    back = Receiver(down.port).start()
    try:
        deliver_until(queue, lambda: len(back.taken()) == 3)
        assert sorted(h["webhook-id"] for h, _ in back.taken()) == ids  # each once, same id
        assert len(verified(secret, back.taken())) == 3
        assert states(queue) == [DELIVERED] * 3
    finally:
        back.stop()


def queue_deliveries(queue: ReviewQueue) -> list[WebhookDelivery]:
    with queue.sessions() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_a_receiver_failing_forever_ends_dead_and_retry_delivers_it_once_fixed(
    queue: ReviewQueue, receiver: Receiver, review_db: str
) -> None:
    _, secret = add_endpoint(queue, receiver.url)
    receiver.status = 500
    score(system_of(queue), 13, Route.auto)
    policy = DeliveryPolicy(backoff_seconds=0.01, backoff_cap_seconds=0.02, max_tries=3)
    deliver_until(queue, lambda: states(queue) == [DEAD], policy=policy)
    (dead,) = queue_deliveries(queue)
    assert (dead.tries, dead.last_error) == (3, "HTTP 500") and len(receiver.received) == 3

    listed = CliRunner().invoke(app, ["webhooks", "deliveries", "--db", review_db])
    assert listed.exit_code == 0 and "dead" in listed.output and "HTTP 500" in listed.output
    receiver.status = 200
    again = CliRunner().invoke(app, ["webhooks", "retry", str(dead.id), "--db", review_db])
    assert again.exit_code == 0, again.output
    deliver_until(queue, lambda: states(queue) == [DELIVERED], policy=policy)
    ((headers, _),) = receiver.taken()
    assert headers["webhook-id"] == dead.message_id
    assert len(verified(secret, receiver.taken())) == 1


def test_webhooks_add_prints_the_secret_once_and_list_never(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'review.db'}"
    added = CliRunner().invoke(
        app, ["webhooks", "add", "https://platform.example/hooks", "--db", db]
    )
    assert added.exit_code == 0, added.output
    secret = added.output.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and Webhook(secret)
    listed = CliRunner().invoke(app, ["webhooks", "list", "--db", db])
    assert "platform.example" in listed.output and secret not in listed.output
    assert oct((tmp_path / "review.db").stat().st_mode & 0o777) == "0o600"
    bad = CliRunner().invoke(app, ["webhooks", "add", "ftp://x", "--db", db])
    assert bad.exit_code != 0


def test_a_removed_endpoint_takes_its_undelivered_events_with_it(
    queue: ReviewQueue, tmp_path: Path
) -> None:
    kept, _ = add_endpoint(queue, "https://kept.example/hooks")
    gone, _ = add_endpoint(queue, "https://gone.example/hooks")
    score(system_of(queue), 21, Route.auto)
    assert sorted(d.endpoint_id for d in queue_deliveries(queue)) == [kept, gone]
    url = queue.engine.url.render_as_string(hide_password=False)
    removed = CliRunner().invoke(app, ["webhooks", "remove", str(gone), "--db", url])
    assert removed.exit_code == 0 and "1 undelivered event" in removed.output, removed.output
    assert [d.endpoint_id for d in queue_deliveries(queue)] == [kept]
    listed = CliRunner().invoke(app, ["webhooks", "list", "--db", url])
    assert "kept.example" in listed.output and "gone.example" not in listed.output
    again = CliRunner().invoke(app, ["webhooks", "remove", str(gone), "--db", url])
    assert again.exit_code != 0 and f"no webhook endpoint {gone}" in again.output


@pytest.mark.slow
def test_a_worker_killed_mid_delivery_leaves_it_to_the_next_with_the_same_id(
    tmp_path: Path, receiver: Receiver
) -> None:
    """SIGKILL after the decision was committed and the send began, before it was recorded:
    the next worker sends it once its lease runs out."""
    db = f"sqlite:///{tmp_path / 'review.db'}"
    queue = ReviewQueue(db)
    _, secret = add_endpoint(queue, receiver.url)
    score(system_of(queue), 14, Route.auto)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(sys.path),
        "PRESCORE_WEBHOOK_LEASE_SECONDS": "2",
        "PRESCORE_WEBHOOK_POLL_SECONDS": "0.1",
    }
    command = [sys.executable, "-m", "prescore.cli", "webhooks", "deliver", "--db", db]
    receiver.hold.set()  # the first send hangs in the receiver
    first = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)
    try:
        assert receiver.arrived.wait(30), "the first worker never sent"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    receiver.hold.clear()
    assert states(queue) == [DUE]  # claimed, never recorded
    second = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while states(queue) != [DELIVERED]:
            assert time.monotonic() < deadline, "the restarted worker did not deliver it"
            time.sleep(0.1)
    finally:
        second.terminate()
        second.wait()
    ((headers, body),) = receiver.taken()
    (payload,) = verified(secret, receiver.taken())
    (sent,) = queue_deliveries(queue)
    assert headers["webhook-id"] == sent.message_id and payload["data"]["submission_id"] == "s14"
    assert b"SECRET-EVIDENCE" not in body
    queue.engine.dispose()
    assert json.loads(body)["type"] == "submission.decided"


def test_auto_decisions_hold_no_text() -> None:
    pair = scored_item(99, PLANNING, text="SECRET-EVIDENCE 99")
    other = scored_item(99, REFLECTION, text="SECRET-EVIDENCE 99")
    items, scores = [pair[0], other[0]], [pair[1], other[1]]
    (decision,) = decide_submissions(items, scores, card())
    decision = decision.model_copy(update={"route": Route.auto})
    (record,) = auto_decisions(items, scores, [decision], card(), datetime.now(UTC))
    assert "SECRET-EVIDENCE" not in json.dumps(record.row, default=str)


def test_the_review_page_shows_every_decision_oldest_first(queue: ReviewQueue) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from prescore.review.pages import app as review_app
    from prescore.review.reviewers import set_reviewer

    set_reviewer(queue, "ana", "correct horse", ["wait-time"])
    score(system_of(queue), 15, Route.auto, audit=True)
    entry = entry_of(queue, 15)
    queue.decide(entry, VERDICT, "ana", ["wait-time"], seen_version=1)
    page = review_app.create_review_app()
    review_app.connect(page, queue, "test-session-secret")
    site = FastAPI()
    site.mount(review_app.ROOT, page)
    client = TestClient(site)
    from tests.review.test_review_form import sign_in

    assert sign_in(client, "ana", "correct horse").status_code == 200
    shown = client.get(f"/review/submission/{entry}").text
    model = system_of(queue).submission("s15", "wait-time")
    assert model is not None and model.suggestion is not None
    first = {"earned": "Earned", "not_yet": "Not yet"}[model.suggestion]
    assert f'id="history">Decisions, oldest first: {first} by model; Not yet by expert.' in shown


def test_decisions_made_before_the_upgrade_can_be_pulled(tmp_path: Path) -> None:
    import shutil

    from tests.review.test_migrations import FROM_BEFORE

    path = tmp_path / "review.db"
    shutil.copy(FROM_BEFORE, path)
    queue = ReviewQueue(f"sqlite:///{path}")  # upgraded to the head as it opens
    try:
        (decided,) = queue.decided()
        answer = queue.submission_outcome(decided.submission_id, decided.credential_id)
        assert answer is not None and (answer.status, answer.decided_by) == ("decided", "expert")
        assert answer.decision == "not_yet" and answer.earlier_decisions == 0
        assert [lv.level for lv in answer.levels] == [i.decided_level for i in decided.items]
        (pending,) = queue.pending(["wait-time"])
        waiting = queue.submission_outcome(pending.submission_id, pending.credential_id)
        assert waiting is not None and waiting.status == "pending"
    finally:
        queue.engine.dispose()
