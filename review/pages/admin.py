"""The administrators' page: every reviewer's calibration and agreement figures, flagged ones
first, and what reviewers are compared with per credential."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from prescore.review.agreement import benchmarks, figures
from prescore.review.assessors import kind_of
from prescore.review.pages.render import page, problem_page
from prescore.review.pages.session import CurrentReviewer, queue_of

router = APIRouter()


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, name: CurrentReviewer) -> Response:
    queue = queue_of(request)
    if not kind_of(queue, name)[1]:
        return problem_page(request, 403, "The reviewers' report is for administrators.")
    rows = sorted(figures(queue), key=lambda f: (not f.flagged, f.reviewer, f.credential_id))
    return page(request, "admin.html", rows=rows, benchmarks=benchmarks(queue), admin=True)
