"""Webhooks to the platform, by the Standard Webhooks spec: the endpoints, and the worker
that delivers the outbox (review/platform.py writes it, in each decision's transaction).

At least once: a delivery is claimed with a lease (a conditional UPDATE, so two workers or
replicas never both hold it; on Postgres the candidates are read with SKIP LOCKED so they do
not wait on each other), sent with a short timeout, then marked delivered, or due again after
an exponential backoff with full jitter, or dead after the configured number of tries. A
worker killed mid-send leaves its lease to expire and the next one sends it again, with the
same `webhook-id`. The secret signs with the `standardwebhooks` package; neither the secret
nor the body is ever logged, and an error keeps only its kind or the HTTP status.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import delete, or_, select, update
from standardwebhooks import Webhook

from prescore.review.database import Database
from prescore.review.tables import DEAD, DELIVERED, DUE, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger("prescore.review")

SECRET_BYTES = 24


@dataclass(frozen=True)
class DeliveryPolicy:
    """How the worker delivers: PRESCORE_WEBHOOK_* (docs/operations.md)."""

    max_tries: int = 12  # then dead: `prescore webhooks retry ID` sends it again
    backoff_seconds: float = 10.0  # the first retry waits up to this; each doubles it
    backoff_cap_seconds: float = 3600.0
    timeout_seconds: float = 10.0  # per send; the receiver must answer 2xx within it
    lease_seconds: float = 60.0  # a claimed delivery waits this long for its worker
    poll_seconds: float = 1.0  # between looks at an empty outbox
    batch: int = 20  # deliveries claimed at once

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None) -> DeliveryPolicy:
        env = dict(os.environ) if env is None else env
        given: dict[str, float] = {}
        for field, kind in (
            ("max_tries", int),
            ("backoff_seconds", float),
            ("backoff_cap_seconds", float),
            ("timeout_seconds", float),
            ("lease_seconds", float),
            ("poll_seconds", float),
        ):
            name = f"PRESCORE_WEBHOOK_{field.upper()}"
            if name in env:
                try:
                    given[field] = kind(env[name])
                except ValueError:
                    raise ValueError(f"{name}={env[name]!r} is not a number") from None
                if given[field] <= 0:
                    raise ValueError(f"{name} must be above 0")
        return cls(**given)  # type: ignore[arg-type]

    def backoff(self, tries: int, draw: float) -> timedelta:
        """Full jitter: anywhere from now to the capped exponential step."""
        step = min(self.backoff_cap_seconds, self.backoff_seconds * 2 ** max(tries - 1, 0))
        return timedelta(seconds=draw * step)


def new_secret() -> str:
    """`whsec_` and the base64 of random bytes, as the spec writes a secret."""
    secret = "whsec_" + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")
    Webhook(secret)  # the verifier reads it back: the format it accepts
    return secret


def add_endpoint(queue: Database, url: str) -> tuple[int, str]:
    """A new endpoint and its secret (shown once by the caller, stored here)."""
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{url!r} is not an http(s) URL")
    secret = new_secret()
    with queue.writing() as session:
        endpoint = WebhookEndpoint(url=url, secret=secret, created_at=datetime.now(UTC))
        session.add(endpoint)
        session.flush()
        return endpoint.id, secret


def remove_endpoint(queue: Database, endpoint_id: int) -> int | None:
    """Remove an endpoint and every delivery still owed to it or dead (their payloads hold
    the educator's feedback, and nobody will take them now); delivered ones stay as the
    record of what was sent. None where there is no such endpoint; else how many went."""
    with queue.writing() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None:
            return None
        owed = session.execute(
            delete(WebhookDelivery).where(
                WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state != DELIVERED
            )
        )
        session.delete(endpoint)
    return int(getattr(owed, "rowcount", 0))


def endpoints(queue: Database) -> list[WebhookEndpoint]:
    with queue.sessions() as session:
        return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def deliveries(
    queue: Database, state: str | None = None, limit: int = 100
) -> list[WebhookDelivery]:
    """The newest deliveries first, of one state or all."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    with queue.sessions() as session:
        return list(session.scalars(query))


def retry(queue: Database, delivery_id: int) -> bool:
    """Send a dead (or still due) delivery again now, with a fresh count of tries and the
    same webhook-id. False where there is no such delivery, or it was delivered."""
    with queue.writing() as session:
        changed = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state != DELIVERED)
            .values(state=DUE, tries=0, next_try_at=datetime.now(UTC), lease_until=None)
        )
    return bool(getattr(changed, "rowcount", 0))


def claim(queue: Database, policy: DeliveryPolicy, now: datetime) -> list[int]:
    """Due deliveries this worker now holds for `lease_seconds`; none that another holds."""
    free = or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now)
    due = (WebhookDelivery.state == DUE, WebhookDelivery.next_try_at <= now, free)
    query = select(WebhookDelivery.id).where(*due).order_by(WebhookDelivery.next_try_at)
    query = query.limit(policy.batch)
    if queue.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    until = now + timedelta(seconds=policy.lease_seconds)
    held = []
    with queue.writing() as session:
        for delivery_id in session.scalars(query).all():
            # conditional: it is ours only if still free when written (SQLite has no row locks)
            claimed = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, *due)
                .values(lease_until=until)
            )
            if getattr(claimed, "rowcount", 0) == 1:
                held.append(delivery_id)
    return held


def send(client: httpx.Client, delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> str | None:
    """Sign and post one delivery; None where the receiver took it (2xx), else why not:
    the HTTP status or the kind of failure, never a body."""
    now = datetime.now(UTC)
    signature = Webhook(endpoint.secret).sign(delivery.message_id, now, delivery.payload)
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    try:
        response = client.post(endpoint.url, content=delivery.payload.encode(), headers=headers)
    except httpx.HTTPError as failure:
        return type(failure).__name__
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


def deliver_once(
    queue: Database, policy: DeliveryPolicy, client: httpx.Client, draw: float | None = None
) -> int:
    """Claim what is due, send it and record each outcome. Returns how many were tried."""
    held = claim(queue, policy, datetime.now(UTC))
    for delivery_id in held:
        with queue.sessions() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            assert delivery is not None  # claimed rows are never deleted
            endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        problem = "endpoint removed" if endpoint is None else send(client, delivery, endpoint)
        tries, now = delivery.tries + 1, datetime.now(UTC)
        if problem is None:
            values = {"state": DELIVERED, "delivered_at": now, "last_error": None}
        elif tries >= policy.max_tries or endpoint is None:
            values = {"state": DEAD, "last_error": problem}
            logger.warning(
                "webhook delivery %d (%s) is dead after %d tries: %s",
                delivery_id,
                delivery.event,
                tries,
                problem,
            )
        else:
            wait = policy.backoff(tries, random.random() if draw is None else draw)
            values = {"next_try_at": now + wait, "last_error": problem}
        with queue.writing() as session:
            session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id)
                .values(tries=tries, lease_until=None, **values)
            )
    return len(held)


class DeliveryWorker:
    """The outbox's delivery loop, in a thread of its own beside the API: it never holds a
    request of /score or of the review pages, and a database write it makes is one short
    UPDATE. Stopped by `stop()`, or by its process ending."""

    def __init__(self, queue: Database, policy: DeliveryPolicy) -> None:
        self.queue, self.policy = queue, policy
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="prescore-webhooks", daemon=True)

    def start(self) -> DeliveryWorker:
        self.thread.start()
        return self

    def run(self) -> None:
        with httpx.Client(timeout=self.policy.timeout_seconds, follow_redirects=False) as client:
            while not self.stopping.is_set():
                try:
                    tried = deliver_once(self.queue, self.policy, client)
                except Exception as failure:  # the database away for a moment: try again
                    logger.warning("webhook delivery paused: %s", type(failure).__name__)
                    tried = 0
                if not tried:
                    self.stopping.wait(self.policy.poll_seconds)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.thread.join(timeout)
