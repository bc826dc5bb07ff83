"""Training and calibration of reviewers against adjudicated submissions, and the figures
that judge them: the same agreement numbers the model is judged by (eval/agreement.py).

An adjudicated submission is a decided entry of the queue whose owner consented to training:
by the queue's rules it was decided by an expert, or by two peers who agreed on every level.
Per credential an administrator sets (`prescore reviewers calibrate`):
- `training_items`: before scoring live submissions, a reviewer scores this many adjudicated
  ones and sees the adjudicated levels after each;
- `blind_rate`: after each live verdict, the chance that an adjudicated submission is mixed
  into their queue, looking like any other;
- the bar, `min_qwk` and `min_decision_agreement`: judged once a reviewer has scored at least
  `training_items` (and at least one) adjudicated submissions; under it they are flagged on
  the report and the administrators' page, and stop receiving live high-stakes work.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from prescore import defaults
from prescore.review.database import Database
from prescore.review.privacy import erased_entries
from prescore.review.tables import (
    BLIND,
    DECIDED,
    EXPERT,
    LIVE,
    PEER,
    TRAINING,
    BlindItem,
    CalibrationSetting,
    Review,
    ReviewerRole,
    SubmissionEntry,
)
from prescore.review.verdicts import Assessor, Verdict, check_verdict, review_of

# humans are held to the QWK bar the model is qualified by (QualificationGates.min_qwk)
DEFAULT_MIN_QWK = defaults.REVIEWER_MIN_QWK
DEFAULT_MIN_DECISION_AGREEMENT = defaults.REVIEWER_MIN_DECISION_AGREEMENT


@dataclass(frozen=True)
class Plan:
    """How one credential's reviewers are trained and calibrated."""

    credential_id: str
    training_items: int = 0
    blind_rate: float = 0.0
    min_qwk: float = DEFAULT_MIN_QWK
    min_decision_agreement: float = DEFAULT_MIN_DECISION_AGREEMENT

    @property
    def judged_after(self) -> int:
        """Adjudicated submissions a reviewer scores before the bar applies to them."""
        return max(self.training_items, 1)


def plan_of(queue: Database, credential_id: str) -> Plan:
    with queue.sessions() as session:
        stored = session.get(CalibrationSetting, credential_id)
    if stored is None:
        return Plan(credential_id)
    return Plan(
        credential_id,
        stored.training_items,
        stored.blind_rate,
        stored.min_qwk,
        stored.min_decision_agreement,
    )


def set_plan(queue: Database, plan: Plan) -> Plan:
    """Store a credential's plan; a bad value, or more training items than the credential has
    adjudicated submissions, raises ValueError and changes nothing."""
    problems = []
    if plan.training_items < 0:
        problems.append("--training-items must be 0 or more")
    if not 0 <= plan.blind_rate <= 1:
        problems.append("--blind-rate is a share between 0 and 1")
    if not -1 <= plan.min_qwk <= 1:
        problems.append("--min-qwk is a kappa between -1 and 1")
    if not 0 <= plan.min_decision_agreement <= 1:
        problems.append("--min-decision-agreement is a share between 0 and 1")
    available = len(adjudicated(queue, plan.credential_id))
    if plan.training_items > available:
        problems.append(
            f"{plan.credential_id} has {available} adjudicated submission(s) (decided, with "
            f"training consent), too few for {plan.training_items} training items: have experts "
            "decide more of its submissions first, or ask for fewer"
        )
    if plan.blind_rate > 0 and available == 0:
        problems.append(
            f"{plan.credential_id} has no adjudicated submission to mix in blind yet: have "
            "experts decide some of its submissions first, or keep --blind-rate 0"
        )
    if problems:
        raise ValueError("; ".join(problems))
    with queue.writing() as session:
        stored = session.get(CalibrationSetting, plan.credential_id) or CalibrationSetting(
            credential_id=plan.credential_id
        )
        stored.training_items = plan.training_items
        stored.blind_rate = plan.blind_rate
        stored.min_qwk = plan.min_qwk
        stored.min_decision_agreement = plan.min_decision_agreement
        session.add(stored)
    return plan


def adjudicated(
    queue: Database, credential_id: str, not_for: str | None = None
) -> list[SubmissionEntry]:
    """A credential's adjudicated submissions, oldest first; with `not_for`, those that
    reviewer had no part in deciding (they would be scoring their own verdict)."""
    query = (
        select(SubmissionEntry)
        .where(
            SubmissionEntry.status == DECIDED,
            SubmissionEntry.credential_id == credential_id,
            SubmissionEntry.consent_to_train.is_(True),
            SubmissionEntry.id.not_in(erased_entries()),  # its text is gone: nothing to score
        )
        .order_by(SubmissionEntry.id)
    )
    if not_for is not None:
        theirs = select(Review.entry_id).where(Review.reviewer == not_for, Review.purpose == LIVE)
        query = query.where(
            SubmissionEntry.id.not_in(theirs),
            (SubmissionEntry.decided_by.is_(None)) | (SubmissionEntry.decided_by != not_for),
        )
        if kind_of(queue, not_for)[0] == PEER:  # a peer never sees a high-stakes submission
            query = query.where(SubmissionEntry.stakes != "high")
    with queue.sessions() as session:
        return list(session.scalars(query))


def kind_of(queue: Database, name: str) -> tuple[str, bool]:
    """(kind, administrator?) of a reviewer; one without a role row predates kinds: expert."""
    with queue.sessions() as session:
        role = session.get(ReviewerRole, name)
    return (role.kind, role.admin) if role else (EXPERT, False)


def calibration_reviews(
    queue: Database, reviewer: str | None = None, credential_id: str | None = None
) -> list[Review]:
    query = select(Review).where(Review.purpose.in_((TRAINING, BLIND))).order_by(Review.id)
    if reviewer is not None:
        query = query.where(Review.reviewer == reviewer)
    if credential_id is not None:
        query = query.where(Review.credential_id == credential_id)
    with queue.sessions() as session:
        return list(session.scalars(query))


def training_done(queue: Database, reviewer: str, credential_id: str) -> int:
    query = select(func.count(Review.id)).where(
        Review.reviewer == reviewer,
        Review.credential_id == credential_id,
        Review.purpose == TRAINING,
    )
    with queue.sessions() as session:
        return session.scalar(query) or 0


@dataclass(frozen=True)
class Training:
    """Where a reviewer stands in a credential's training."""

    credential_id: str
    done: int
    needed: int
    next_item: SubmissionEntry | None  # None: done, or none left to score

    @property
    def complete(self) -> bool:
        return self.done >= self.needed


def training_of(queue: Database, reviewer: str, credential_id: str) -> Training:
    needed = plan_of(queue, credential_id).training_items
    done = training_done(queue, reviewer, credential_id)
    next_item = None
    if done < needed:
        scored = {r.entry_id for r in calibration_reviews(queue, reviewer, credential_id)}
        candidates = adjudicated(queue, credential_id, not_for=reviewer)
        next_item = next((e for e in candidates if e.id not in scored), None)
    return Training(credential_id, done, needed, next_item)


def record_calibration(
    queue: Database,
    assessor: Assessor,
    entry: SubmissionEntry,
    verdict: Verdict,
    purpose: str,
    seconds: float | None = None,
) -> None:
    """Keep a training or blind verdict on an adjudicated submission (a bad form raises
    ValueError); a blind item is answered by it."""
    check_verdict(verdict, entry)
    with queue.writing() as session:
        session.add(review_of(entry, verdict, assessor, purpose, seconds))
        if purpose == BLIND:
            for item in session.scalars(
                select(BlindItem).where(
                    BlindItem.reviewer == assessor.name,
                    BlindItem.entry_id == entry.id,
                    BlindItem.answered_at.is_(None),
                )
            ):
                item.answered_at = datetime.now(UTC)


def open_blind_items(queue: Database, reviewer: str) -> list[SubmissionEntry]:
    """The adjudicated submissions waiting blind in a reviewer's queue."""
    query = (
        select(SubmissionEntry)
        .join(BlindItem, BlindItem.entry_id == SubmissionEntry.id)
        .where(BlindItem.reviewer == reviewer, BlindItem.answered_at.is_(None))
        .order_by(BlindItem.id)
    )
    with queue.sessions() as session:
        return list(session.scalars(query))


def mix_in_blind(
    queue: Database,
    reviewer: str,
    credential_id: str,
    draw: Callable[[], float] = random.random,
) -> SubmissionEntry | None:
    """After a live verdict: at the credential's blind rate, put an adjudicated submission
    the reviewer has not scored into their queue (one waits at a time)."""
    rate = plan_of(queue, credential_id).blind_rate
    if rate <= 0 or draw() >= rate or open_blind_items(queue, reviewer):
        return None
    scored = {r.entry_id for r in calibration_reviews(queue, reviewer, credential_id)}
    fresh = [e for e in adjudicated(queue, credential_id, not_for=reviewer) if e.id not in scored]
    if not fresh:
        return None
    chosen = fresh[int(draw() * len(fresh)) % len(fresh)]
    with queue.writing() as session:
        session.add(
            BlindItem(
                reviewer=reviewer,
                entry_id=chosen.id,
                credential_id=credential_id,
                created_at=datetime.now(UTC),
            )
        )
    return chosen
