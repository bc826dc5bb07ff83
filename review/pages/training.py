"""Assessor training: a credential's adjudicated submissions, scored one at a time before its
live work, each answered with the adjudicated levels."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from prescore.review.agreement import adjudicated_levels
from prescore.review.assessors import kind_of, record_calibration, training_of
from prescore.review.pages.render import (
    DECISION_LABELS,
    ROOT,
    form_levels,
    page,
    problem_page,
    show_submission,
)
from prescore.review.pages.session import CurrentReviewer, FormSender, opened, queue_of, seconds_on
from prescore.review.reviewers import assigned
from prescore.review.tables import TRAINING
from prescore.review.verdicts import Assessor, Verdict

router = APIRouter()


@router.get("/training/{credential_id}", response_class=HTMLResponse)
def training_item(request: Request, name: CurrentReviewer, credential_id: str) -> Response:
    queue = queue_of(request)
    if credential_id not in assigned(queue, name):
        return problem_page(request, 403, "That credential is not assigned to you.")
    training = training_of(queue, name, credential_id)
    if training.complete:
        request.session["notice"] = f"Training for {credential_id} is done."
        return RedirectResponse(f"{ROOT}/", status_code=303)
    if training.next_item is None:
        return problem_page(request, 409, no_training_left(training.needed, credential_id))
    opened(request, training.next_item.id)
    return show_submission(request, training.next_item, calibrating=True, training=training)


@router.post("/training/{credential_id}")
def record_training(
    request: Request,
    name: FormSender,
    credential_id: str,
    entry: int = Form(...),
    decision: str = Form(""),
    feedback: str = Form(""),
    levels: dict[str, str] = Depends(form_levels),
) -> Response:
    queue = queue_of(request)
    if credential_id not in assigned(queue, name):
        return problem_page(request, 403, "That credential is not assigned to you.")
    training = training_of(queue, name, credential_id)
    item = training.next_item
    if item is None or item.id != entry:  # recorded already, or not the item it showed
        return RedirectResponse(f"{ROOT}/training/{credential_id}", status_code=303)
    verdict = Verdict(levels, decision, feedback)
    who = Assessor(name, kind_of(queue, name)[0], [], [])
    try:
        record_calibration(queue, who, item, verdict, TRAINING, seconds_on(request, entry))
    except ValueError as problem:
        return show_submission(
            request, item, 400, calibrating=True, training=training,
            problem=str(problem), verdict=verdict,
        )  # fmt: skip
    return page(
        request,
        "training_result.html",
        e=item,
        verdict=verdict,
        adjudicated=adjudicated_levels(item),
        decisions=DECISION_LABELS,
        training=training_of(queue, name, credential_id),
        number=training.done + 1,
    )


def no_training_left(needed: int, credential_id: str) -> str:
    return (
        f"Training for {credential_id} needs {needed} adjudicated submissions and none is left "
        "that you have not scored or decided; ask an administrator."
    )
