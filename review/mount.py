"""The review system inside the scoring service: its pages mounted under /review, and the
`HumanReview` (serving/human_review.py) the API hands every scored request to.

`mount_review()` is called once, where the service is declared (BentoML mounts an ASGI app on
the class); `ReviewMount.open` connects the pages to the review database when the service
starts: it upgrades the database to the newest schema, as any opening does.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import FastAPI

from prescore.review.audits import AuditAlarms
from prescore.review.intake import submissions_to_review
from prescore.review.pages.app import ROOT, connect, create_review_app
from prescore.review.platform import auto_decisions
from prescore.review.queue import ReviewQueue
from prescore.review.webhooks import DeliveryPolicy, DeliveryWorker
from prescore.serving.human_review import HumanReview, Receipt
from prescore.serving.schemas import (
    AuditAlarm,
    EvidenceToScore,
    ModelCard,
    ScoredEvidence,
    SubmissionDecision,
    SubmissionOutcome,
)
from prescore.serving.settings import ServiceSettings


@dataclass
class ReviewSystem:
    """The review queue as the scoring API sees it (`HumanReview`)."""

    queue: ReviewQueue
    alarms: AuditAlarms
    audit_rate: float  # the share of auto decisions queued for audit
    draw: Callable[[], float] = field(default=random.random)

    def take(
        self,
        items: list[EvidenceToScore],
        scores: list[ScoredEvidence],
        submissions: list[SubmissionDecision],
        card: ModelCard,
        receipt: Receipt | None,
        expired_before: datetime,
    ) -> None:
        batch = submissions_to_review(items, scores, submissions, card, self.audit_rate, self.draw)
        auto = auto_decisions(items, scores, submissions, card, datetime.now(UTC))
        self.queue.enqueue(batch, receipt, expired_before, auto)

    def receipt(self, key: str, expired_before: datetime) -> Receipt | None:
        return self.queue.receipt(key, expired_before)

    def submission(self, submission_id: str, credential_id: str) -> SubmissionOutcome | None:
        return self.queue.submission_outcome(submission_id, credential_id)

    async def stopped(self, model_version: str) -> dict[str, AuditAlarm]:
        return await self.alarms.stopped(model_version)


@dataclass(frozen=True)
class ReviewMount:
    """The reviewers' pages, to mount at `path`, and how to connect them when serving."""

    app: FastAPI
    path: str = ROOT

    def open(self, settings: ServiceSettings) -> HumanReview:
        """Open the review database the settings name (upgraded to the newest schema), give
        the pages it and their session key, and return what the API needs of it."""
        queue = ReviewQueue(settings.review_db)
        connect(
            self.app,
            queue,
            settings.session_secret,
            settings.secure_cookies,
            settings.trusted_proxies,
            settings.session_idle_minutes,
        )
        alarms = AuditAlarms(queue, settings.audit_alarm_refresh_seconds)
        # the webhooks' delivery loop, in a thread beside the API (review/webhooks.py)
        DeliveryWorker(queue, DeliveryPolicy.from_environment()).start()
        return ReviewSystem(queue, alarms, settings.audit_rate)


def mount_review() -> ReviewMount:
    """The pages, to mount where the service is declared (before BentoML starts uvicorn)."""
    # uvicorn believes X-Forwarded-For from loopback unless told otherwise, so any client on
    # the host (or a proxy that passes the header on as sent) could pick the address the
    # sign-in throttle counts by; the pages read it themselves, from the proxies
    # PRESCORE_TRUSTED_PROXIES names (review/pages/sign_in.py `client_address`)
    os.environ["FORWARDED_ALLOW_IPS"] = ""
    return ReviewMount(create_review_app())
