"""The service's own delivery worker: a decision committed before the service was killed with
SIGKILL, mid-send, is delivered once it is started again, with the same webhook-id."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from prescore.review.queue import ReviewQueue
from prescore.review.tables import DELIVERED, DUE
from prescore.review.verdicts import Verdict
from prescore.review.webhooks import add_endpoint, deliveries
from prescore.serving.client import ScoringClient
from prescore.serving.launch import stop
from tests.conftest import evidence_row
from tests.review.test_webhooks import Receiver
from tests.serving.conftest import Registry, start_champion

pytestmark = pytest.mark.slow  # starts the service twice

KEY = "test-key-webhooks-51c0"
SECRET = "SECRET-EVIDENCE-3377 my student Sam said"


def states(queue: ReviewQueue) -> list[str]:
    return [delivery.state for delivery in deliveries(queue)]


def test_a_decision_outlives_a_sigkilled_service_and_is_delivered_after_restart(
    registry: Registry, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'review.db'}"
    queue = ReviewQueue(database)
    receiver = Receiver().start()
    _, secret = add_endpoint(queue, receiver.url)
    settings = {
        "PRESCORE_API_KEYS": KEY,
        "PRESCORE_REVIEW_DB": database,
        "PRESCORE_WEBHOOK_LEASE_SECONDS": "2",
        "PRESCORE_WEBHOOK_POLL_SECONDS": "0.1",
    }
    log = tmp_path / "service.log"
    first, url = start_champion(registry, tmp_path, settings, log, append=True)
    try:
        row = evidence_row(1)
        item = {
            "submission_id": "killed-1",
            "credential_id": "wait-time",
            "criterion_id": row["criterion_id"],
            "evidence_type": "reflection",
            "text": SECRET,
        }
        scored = ScoringClient(url, KEY).call("POST", "/score", {"items": [item]})
        assert scored.status == 200 and scored.body["submissions"][0]["route"] == "human"
        (entry,) = queue.pending(["wait-time"])
        levels = {i.criterion_id: i.levels[0] for i in entry.items}
        receiver.hold.set()  # the service's first send hangs in the receiver
        queue.decide(entry.id, Verdict(levels, "not_yet", "Pause longer."), "ada", ["wait-time"], 1)
        assert receiver.arrived.wait(30), "the service never sent the decision"
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        stop(first)
    receiver.hold.clear()
    assert states(queue) == [DUE]  # claimed by the killed worker, never recorded

    second, url = start_champion(registry, tmp_path, settings, log, append=True)
    try:
        deadline = time.monotonic() + 30
        while states(queue) != [DELIVERED]:
            assert time.monotonic() < deadline, "the restarted service did not deliver it"
            time.sleep(0.1)
        pulled = ScoringClient(url, KEY).call(
            "GET", "/submissions/killed-1?credential_id=wait-time"
        )
    finally:
        stop(second)
        receiver.stop()
    ((headers, body),) = receiver.taken()
    payload = Webhook(secret).verify(body, headers)
    (sent,) = deliveries(queue)
    assert headers["webhook-id"] == sent.message_id
    assert payload["data"] == pulled.body  # the webhook carries what the pull answers
    assert (payload["data"]["decided_by"], payload["data"]["feedback"]) == (
        "expert",
        "Pause longer.",
    )
    assert SECRET.encode() not in body and SECRET not in log.read_text()
    queue.engine.dispose()
