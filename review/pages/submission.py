"""One submission: its evidence and rubric in one form (a level per criterion, the decision,
feedback to the educator), and what recording it does: an expert's verdict decides, a peer's
waits for a second peer, a blind calibration item is recorded like live work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from prescore.review.agreement import assessor_of
from prescore.review.assessors import kind_of, mix_in_blind, open_blind_items, record_calibration
from prescore.review.pages.queue import next_page
from prescore.review.pages.render import DECISION_LABELS, form_levels, problem_page, show_submission
from prescore.review.pages.session import CurrentReviewer, FormSender, opened, queue_of, seconds_on
from prescore.review.queue import ReviewQueue
from prescore.review.reviewers import assigned
from prescore.review.tables import BLIND, DECIDED, PEER, SubmissionEntry
from prescore.review.verdicts import AlreadyDecided, Assessor, NotAssigned, Verdict

router = APIRouter()

OUTCOMES = {
    "": ".",
    "first peer": "; a second peer reviews it too.",
    "peers agree": ": both peers agree, so it is decided.",
    "peers disagree": "; the peers disagree, so an expert decides it.",
}


def submission_page(
    request: Request, name: str, entry_id: int, status: int = 200, **context: Any
) -> Response:
    queue = queue_of(request)
    entry = queue.get(entry_id, assigned(queue, name))
    if entry is None:
        return problem_page(request, 404, "No such submission.")
    blind = any(e.id == entry_id for e in open_blind_items(queue, name))
    who = assessor_of(queue, name)
    refused = may_not_open(entry, who)
    if blind and not (entry.stakes == "high" and who.kind == PEER):
        refused = ""  # a blind item is decided, and theirs to score; never high to a peer
    if refused:
        return problem_page(request, 403, refused)
    opened(request, entry_id)
    # a decided submission may be someone's training or blind item: its decision is shown
    # to those who took part in it and to administrators only
    took_part = entry.decided_by == name or kind_of(queue, name)[1]
    if entry.status == DECIDED and not took_part:
        took_part = any(review.reviewer == name for review in queue.live_reviews(entry_id))
    # every decision on it, oldest first (an audit's revision beside the model's decision)
    history = queue.decision_history(entry.submission_id, entry.credential_id) if took_part else []
    return show_submission(
        request, entry, status, calibrating=blind, took_part=took_part, history=history, **context
    )


@router.get("/submission/{entry_id}", response_class=HTMLResponse)
def open_submission(request: Request, name: CurrentReviewer, entry_id: int) -> Response:
    try:
        return submission_page(request, name, entry_id, notice=request.session.pop("notice", ""))
    except NotAssigned:
        return problem_page(request, 403, "That submission is not in your credentials.")


@router.post("/submission/{entry_id}")
def decide(
    request: Request,
    name: FormSender,
    entry_id: int,
    version: int = Form(...),
    decision: str = Form(""),
    feedback: str = Form(""),
    levels: dict[str, str] = Depends(form_levels),
) -> Response:
    queue = queue_of(request)
    credentials = assigned(queue, name)
    who = assessor_of(queue, name)
    verdict = Verdict(levels, decision, feedback)
    seconds = seconds_on(request, entry_id)
    blind = next((e for e in open_blind_items(queue, name) if e.id == entry_id), None)
    try:
        if blind is not None:  # recorded like live work; the reviewer cannot tell
            record_calibration(queue, who, blind, verdict, BLIND, seconds)
            outcome = "first peer" if who.kind == PEER else ""
        else:
            current = queue.get(entry_id, credentials)
            refused = may_not_open(current, who) if current is not None else ""
            if refused:
                return problem_page(request, 403, refused)
            entry = queue.decide(entry_id, verdict, name, who.credentials, version, who, seconds)
            outcome = live_outcome(queue, entry, who)
            mix_in_blind(queue, name, entry.credential_id)
    except AlreadyDecided as conflict:
        return submission_page(request, name, entry_id, 409, problem=str(conflict))
    except NotAssigned:
        return problem_page(request, 403, "That submission is not in your credentials.")
    except LookupError as problem:
        return problem_page(request, 404, str(problem))
    except ValueError as problem:  # an incomplete form: show it again with what is missing
        if blind is not None:
            return show_submission(
                request, blind, 400, calibrating=True, problem=str(problem), verdict=verdict
            )
        return submission_page(request, name, entry_id, 400, problem=str(problem), verdict=verdict)
    request.session["notice"] = (
        f"Recorded {DECISION_LABELS[decision]} for submission #{entry_id}" + OUTCOMES[outcome]
    )
    return next_page(queue, name)


def live_outcome(queue: ReviewQueue, entry: SubmissionEntry, who: Assessor) -> str:
    """What a live verdict did, in OUTCOMES' words."""
    if who.kind != PEER:
        return ""
    if entry.status == DECIDED:
        return "peers agree"
    peers = [r for r in queue.live_reviews(entry.id) if r.kind == PEER]
    return "first peer" if len(peers) < 2 else "peers disagree"


def may_not_open(entry: SubmissionEntry, who: Assessor) -> str:
    """Why this reviewer may not open this submission now; empty where they may."""
    if entry.stakes == "high" and who.kind == PEER:
        return "High-stakes submissions are decided by experts only."
    if entry.status == DECIDED:
        return ""
    if entry.credential_id not in who.credentials:
        return f"Score the training items of {entry.credential_id} before its live submissions."
    if entry.stakes == "high" and entry.credential_id not in who.high_stakes:
        return "You may not decide high-stakes submissions until your calibration meets the bar."
    return ""
