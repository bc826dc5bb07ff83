"""How the review pages answer: a template with the session's reviewer and CSRF token, a
problem shown on the queue page, a submission with its evidence once per distinct text."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from prescore.review.queue import REASONS, Filters
from prescore.review.tables import ItemEntry, SubmissionEntry

ROOT = "/review"
DECISION_LABELS = {"earned": "Earned", "not_yet": "Not yet"}
LEVEL_FIELD = "level:"  # form fields `level:<criterion id>`, one per criterion
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    session = request.session
    session.setdefault("csrf", secrets.token_urlsafe(24))
    return templates.TemplateResponse(
        request,
        name,
        {"root": ROOT, "reviewer": session.get("reviewer"), "csrf": session["csrf"], **context},
        status_code=status,
    )


def problem_page(request: Request, status: int, message: str) -> HTMLResponse:
    return page(
        request, "queue.html", status, entries=[], total=0, offset=0, credentials=[],
        reasons=REASONS, filters=Filters(), problem=message,
    )  # fmt: skip


def show_submission(
    request: Request, entry: SubmissionEntry, status: int = 200, **context: Any
) -> Response:
    evidence = evidence_shown(entry.items)
    return page(
        request,
        "submission.html",
        status,
        e=entry,
        evidence=evidence,
        evidence_of={criterion: shown for shown in evidence for criterion in shown.criteria},
        decisions=DECISION_LABELS,
        verdict=context.pop("verdict", None),
        **context,
    )


async def form_levels(request: Request) -> dict[str, str]:
    """The level picked for each criterion, from the form's `level:<criterion id>` fields."""
    form = await request.form()
    return {
        key.removeprefix(LEVEL_FIELD): str(value)
        for key, value in form.multi_items()
        if key.startswith(LEVEL_FIELD)
    }


@dataclass(frozen=True)
class Evidence:
    """One text as the page shows it, with the criteria that were scored on it."""

    number: int
    evidence_type: str
    text: str = field(repr=False)
    criteria: list[str]


def evidence_shown(items: list[ItemEntry]) -> list[Evidence]:
    """Each distinct text once, in the order first sent: an essay scored on six criteria is
    one text, shown once; where items differ, each is shown beside its criteria."""
    shown: dict[tuple[str, str], Evidence] = {}
    for item in items:
        key = (item.evidence_type, item.text)
        if key not in shown:
            shown[key] = Evidence(len(shown) + 1, item.evidence_type, item.text, [])
        shown[key].criteria.append(item.criterion_id)
    return list(shown.values())
