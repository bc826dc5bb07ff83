"""The verdicts reviewers record on live submissions: an expert's decides; two agreeing peers
decide a low-stakes one, and peers who disagree send it to an expert. The verdict that settles
an audit may stop its credential's auto route (`trip_on_audits`, review/audits.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from prescore.eval.decisions import EARNED, NOT_YET
from prescore.review.audits import trip_on_audits
from prescore.review.database import Database
from prescore.review.platform import record_verdict
from prescore.review.tables import (
    BY_EXPERT,
    BY_PEERS,
    DECIDED,
    EXPERT,
    LIVE,
    PEER,
    PENDING,
    WITHDRAWN,
    Review,
    SubmissionEntry,
)
from prescore.serving.schemas import unstorable_character

DECISIONS = (EARNED, NOT_YET)
MAX_FEEDBACK_CHARS = 10_000
PEERS_NEEDED = 2  # agreeing peer reviews that decide a low-stakes submission


class AlreadyDecided(RuntimeError):
    """Someone decided this submission first; reload it and look again."""


class NotAssigned(PermissionError):
    """The reviewer is not assigned the entry's credential, or may not decide it (a peer and
    high stakes, a reviewer still in training, one flagged for calibration)."""


@dataclass(frozen=True)
class Assessor:
    """Who is reviewing, and what they may score live now (review/agreement.py works it
    out from their kind, training and calibration)."""

    name: str
    kind: str  # expert / peer
    credentials: list[str]  # where they may score live submissions
    high_stakes: list[str]  # of those, where they may decide high-stakes ones: experts only

    @classmethod
    def expert(cls, name: str, credentials: list[str]) -> Assessor:
        return cls(name, EXPERT, credentials, credentials)


@dataclass(frozen=True)
class Verdict:
    """What a reviewer records for one submission, in one form."""

    levels: dict[str, str]  # criterion id -> level label
    decision: str  # earned / not_yet
    feedback: str  # to the educator: what to strengthen before resubmitting


def check_verdict(verdict: Verdict, entry: SubmissionEntry) -> None:
    """A level on the rubric for every criterion, a decision, and feedback where not yet."""
    problems = []
    for item in entry.items:
        level = verdict.levels.get(item.criterion_id)
        if level is None:
            problems.append(f"pick a level for {item.criterion_id}")
        elif level not in item.levels:
            problems.append(f"{level!r} is not a level of {item.criterion_id}: {item.levels}")
    unknown = sorted(set(verdict.levels) - {item.criterion_id for item in entry.items})
    if unknown:
        problems.append(f"this submission has no criteria {unknown}")
    if verdict.decision not in DECISIONS:
        problems.append(f"the decision must be one of {list(DECISIONS)}")
    elif entry.required_met is not None and not problems:
        met = sum(
            item.met_index is not None
            and item.levels.index(verdict.levels[item.criterion_id]) >= item.met_index
            for item in entry.items
        )
        by_levels = EARNED if met >= entry.required_met else NOT_YET
        if verdict.decision != by_levels:
            problems.append(
                f"your levels meet {met} criteria and the award rule needs {entry.required_met}, "
                f"so the decision is {by_levels.replace('_', ' ')}: change a level or the decision"
            )
    if verdict.decision == NOT_YET and not verdict.feedback.strip():
        problems.append("write the educator what to strengthen before resubmitting")
    if len(verdict.feedback) > MAX_FEEDBACK_CHARS:
        problems.append(f"feedback may be at most {MAX_FEEDBACK_CHARS} characters")
    unstorable = unstorable_character(verdict.feedback)
    if unstorable:
        problems.append(f"feedback {unstorable}")
    if problems:
        raise ValueError("; ".join(problems))


def review_of(
    entry: SubmissionEntry,
    verdict: Verdict,
    assessor: Assessor,
    purpose: str,
    seconds: float | None,
) -> Review:
    return Review(
        entry_id=entry.id,
        credential_id=entry.credential_id,
        reviewer=assessor.name,
        kind=assessor.kind,
        purpose=purpose,
        levels=dict(verdict.levels),
        decision=verdict.decision,
        feedback=verdict.feedback.strip(),
        seconds=seconds,
        recorded_at=datetime.now(UTC),
    )


def settle(entry: SubmissionEntry, verdict: Verdict, reviewer: str) -> None:
    """The submission is decided: its levels, decision and feedback are final."""
    for item in entry.items:
        item.decided_level = verdict.levels[item.criterion_id]
    entry.status = DECIDED
    entry.decided_decision = verdict.decision
    entry.feedback = verdict.feedback.strip()
    entry.decided_by = reviewer
    entry.decided_at = datetime.now(UTC)


def agree(review: Review, verdict: Verdict) -> bool:
    """Two peers agree when they give the same decision and the same level on every criterion:
    only then is there one final level per criterion to train on without an expert."""
    return review.decision == verdict.decision and review.levels == verdict.levels


def both_feedbacks(first: str, second: str) -> str:
    """What two agreeing peers wrote the educator, each once."""
    texts = dict.fromkeys(text.strip() for text in (first, second) if text.strip())
    return "\n\n".join(texts)


def live_peer_reviews(session: Session, entry_id: int) -> list[Review]:
    query = (
        select(Review)
        .where(Review.entry_id == entry_id, Review.purpose == LIVE, Review.kind == PEER)
        .order_by(Review.id)
    )
    return list(session.scalars(query))


def decide(
    queue: Database,
    entry_id: int,
    verdict: Verdict,
    reviewer: str,
    credentials: list[str],
    seen_version: int,
    assessor: Assessor | None = None,
    seconds: float | None = None,
) -> SubmissionEntry:
    """Record the reviewer's levels, decision and feedback at once, in one transaction.

    An expert's verdict decides the submission. A peer's is kept as a review: the second
    peer's decides it where both agree on every level and the decision, and otherwise the
    submission waits for an expert. A decided submission raises AlreadyDecided, an
    incomplete verdict ValueError, one the reviewer may not score NotAssigned. Without
    `assessor` the reviewer is an expert on `credentials`. `seen_version`, the version the
    form showed, is kept for callers: a peer's review in between moves the version on but
    leaves the submission to decide, so the decided status is what refuses a second
    decision (and the version counter, two at once)."""
    assessor = assessor or Assessor.expert(reviewer, credentials)
    try:
        with queue.writing() as session:
            entry = session.get(SubmissionEntry, entry_id, with_for_update=True)
            if entry is None or entry.status == WITHDRAWN:
                raise LookupError(f"no queued submission {entry_id}")
            if entry.credential_id not in credentials:
                raise NotAssigned(f"submission {entry_id} is not in your credentials")
            if entry.status != PENDING:
                raise AlreadyDecided(f"submission {entry_id} was decided by {entry.decided_by}")
            if entry.stakes == "high" and entry.credential_id not in assessor.high_stakes:
                raise NotAssigned(
                    f"submission {entry_id} is high stakes: experts decide it, and only "
                    "those whose calibration meets the bar"
                )
            peers = live_peer_reviews(session, entry_id)
            if assessor.kind == PEER:
                if any(review.reviewer == assessor.name for review in peers):
                    raise AlreadyDecided(
                        f"you reviewed submission {entry_id} already; another peer reviews it next"
                    )
                if len(peers) >= PEERS_NEEDED:
                    raise AlreadyDecided(
                        f"submission {entry_id} waits for an expert: its peers disagreed"
                    )
            check_verdict(verdict, entry)
            session.add(review_of(entry, verdict, assessor, LIVE, seconds))
            if assessor.kind == EXPERT:
                settle(entry, verdict, reviewer)
                record_verdict(session, entry, BY_EXPERT)  # and its webhook, if any
            elif peers and agree(peers[0], verdict):
                feedback = both_feedbacks(peers[0].feedback, verdict.feedback)
                settle(entry, Verdict(verdict.levels, verdict.decision, feedback), reviewer)
                record_verdict(session, entry, BY_PEERS)
            else:  # a first peer review, or a second that disagrees: the version moves on
                flag_modified(entry, "priority")
            if entry.audit and entry.status == DECIDED:
                trip_on_audits(session, entry.credential_id, entry.model_version)
    except StaleDataError:
        raise AlreadyDecided(f"submission {entry_id} was decided while you looked") from None
    return entry


def live_reviews(queue: Database, entry_id: int) -> list[Review]:
    """The live verdicts recorded on one submission, oldest first."""
    with queue.sessions() as session:
        query = (
            select(Review)
            .where(Review.entry_id == entry_id, Review.purpose == LIVE)
            .order_by(Review.id)
        )
        return list(session.scalars(query))
