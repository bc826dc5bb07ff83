"""A reviewer's queue: the submissions they may score now, a page at a time, with a blind
calibration item waiting at the top like any other, and the trainings still to do."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from prescore.review.agreement import assessor_of
from prescore.review.assessors import kind_of, open_blind_items, training_of
from prescore.review.pages.render import ROOT, page
from prescore.review.pages.session import CurrentReviewer, queue_of
from prescore.review.queue import REASONS, Filters, ReviewQueue
from prescore.review.reviewers import assigned

PAGE_SIZE = 100  # submissions on one page of the queue

router = APIRouter()


def queue_link(filters: Filters, offset: int) -> str:
    """The queue page at `offset`, keeping the reviewer's filters."""
    query = {"credential": filters.credential_id, "reason": filters.reason, "offset": offset}
    kept = urlencode({key: value for key, value in query.items() if value})
    return f"{ROOT}/?{kept}" if kept else f"{ROOT}/"


@router.get("/", response_class=HTMLResponse)
def queue_page(
    request: Request, name: CurrentReviewer, credential: str = "", reason: str = "", offset: int = 0
) -> Response:
    queue = queue_of(request)
    credentials = assigned(queue, name)
    who = assessor_of(queue, name)
    filters = Filters(credential or None, reason or None)
    offset = max(offset, 0)  # a hand-edited link shows the first page, not an error
    # an adjudicated submission mixed in blind waits at the top, like any other
    blind = [
        e
        for e in open_blind_items(queue, name)
        if not filters.credential_id or e.credential_id == filters.credential_id
    ]
    entries = (blind if offset == 0 else []) + queue.pending(
        who.credentials, filters, PAGE_SIZE, offset, who
    )
    total = len(blind) + queue.count_pending(who.credentials, filters, who)
    return page(
        request,
        "queue.html",
        entries=entries,
        total=total,
        offset=offset,
        previous_link=queue_link(filters, max(offset - PAGE_SIZE, 0)) if offset else None,
        next_link=queue_link(filters, offset + PAGE_SIZE) if offset + PAGE_SIZE < total else None,
        credentials=credentials,
        reasons=REASONS,
        filters=filters,
        trainings=[training_of(queue, name, c) for c in credentials if c not in who.credentials],
        admin=kind_of(queue, name)[1],
        notice=request.session.pop("notice", ""),  # never from the URL: no crafted notices
    )


def next_page(queue: ReviewQueue, name: str) -> Response:
    """The next submission to score: a blind item waiting, else the top of the queue."""
    blind = open_blind_items(queue, name)
    who = assessor_of(queue, name)
    waiting = blind or queue.pending(who.credentials, limit=1, assessor=who)
    if waiting:
        return RedirectResponse(f"{ROOT}/submission/{waiting[0].id}", status_code=303)
    return RedirectResponse(f"{ROOT}/", status_code=303)
