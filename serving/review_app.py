"""The reviewers' web page, served by the scoring service under /review.

Server-rendered HTML (Jinja2), no JavaScript framework: sign in, see the queue of submissions
for the credentials assigned to you, open one, record a level per criterion, the decision and
feedback to the educator in one form, and the queue moves on. Forms carry a per-session CSRF
token; sessions are signed cookies (Starlette's SessionMiddleware).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from prescore.serving.queue import (
    REASONS,
    AlreadyDecided,
    Filters,
    ItemEntry,
    NotAssigned,
    ReviewQueue,
    Verdict,
)
from prescore.serving.reviewers import (
    SignInThrottle,
    assigned,
    authenticate,
    end_sessions,
    session_is_current,
    session_token,
)

ROOT = "/review"
PAGE_SIZE = 100  # submissions on one page of the queue
LEVEL_FIELD = "level:"  # form fields `level:<criterion id>`, one per criterion
DECISION_LABELS = {"earned": "Earned", "not_yet": "Not yet"}
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


SECURITY_HEADERS = {
    # the pages' own few lines of script and style are inline; nothing else loads, and no
    # other site may frame them
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def connect(
    app: FastAPI, queue: ReviewQueue, session_secret: str, secure_cookies: bool = False
) -> None:
    """Give the page its queue and session key; call before the first request.
    `secure_cookies` (behind TLS) sends the session cookie over HTTPS only."""
    from starlette.middleware.sessions import SessionMiddleware

    app.state.queue = queue
    app.state.throttle = SignInThrottle()
    app.add_middleware(
        SessionMiddleware, secret_key=session_secret, same_site="strict", https_only=secure_cookies
    )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response


def queue_of(request: Request) -> ReviewQueue:
    queue: ReviewQueue = request.app.state.queue
    return queue


def queue_link(filters: Filters, offset: int) -> str:
    """The queue page at `offset`, keeping the reviewer's filters."""
    query = {"credential": filters.credential_id, "reason": filters.reason, "offset": offset}
    kept = urlencode({key: value for key, value in query.items() if value})
    return f"{ROOT}/?{kept}" if kept else f"{ROOT}/"


def create_review_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

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

    def signed_in(request: Request) -> str | None:
        """The reviewer, while their session's token is current (sign-out and a password
        change replace it, which ends every session signed with the old one)."""
        name = request.session.get("reviewer")
        if not isinstance(name, str):
            return None
        if not session_is_current(queue_of(request), name, request.session.get("token")):
            request.session.clear()
            return None
        return name

    def csrf_ok(request: Request, token: str) -> bool:
        expected = request.session.get("csrf", "")
        return bool(expected) and secrets.compare_digest(expected, token)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        return page(request, "login.html")

    @app.post("/login")
    def login(request: Request, name: str = Form(...), password: str = Form(...)) -> Response:
        throttle: SignInThrottle = request.app.state.throttle
        keys = (f"name:{name}", f"address:{request.client.host if request.client else ''}")
        wait = throttle.retry_after(*keys)
        if wait > 0:
            response = page(
                request, "login.html", 429, problem="Too many failed sign-ins; try again later."
            )
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        reviewer = authenticate(queue_of(request), name, password)
        if reviewer is None:
            throttle.failed(*keys)
            return page(request, "login.html", 401, problem="Name or password is wrong.")
        request.session.clear()
        request.session["reviewer"] = reviewer.name
        request.session["token"] = session_token(queue_of(request), reviewer.name)
        return RedirectResponse(f"{ROOT}/", status_code=303)

    @app.post("/logout")
    def logout(request: Request, csrf: str = Form("")) -> Response:
        name = signed_in(request)
        if csrf_ok(request, csrf):
            if name is not None:
                end_sessions(queue_of(request), name)  # a copied cookie ends with this one
            request.session.clear()
        return RedirectResponse(f"{ROOT}/login", status_code=303)

    @app.get("/", response_class=HTMLResponse)
    def queue_page(
        request: Request, credential: str = "", reason: str = "", offset: int = 0
    ) -> Response:
        name = signed_in(request)
        if name is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
        credentials = assigned(queue_of(request), name)
        filters = Filters(credential or None, reason or None)
        offset = max(offset, 0)  # a hand-edited link shows the first page, not an error
        entries = queue_of(request).pending(credentials, filters, PAGE_SIZE, offset)
        total = queue_of(request).count_pending(credentials, filters)
        return page(
            request,
            "queue.html",
            entries=entries,
            total=total,
            offset=offset,
            previous_link=queue_link(filters, max(offset - PAGE_SIZE, 0)) if offset else None,
            next_link=queue_link(filters, offset + PAGE_SIZE)
            if offset + PAGE_SIZE < total
            else None,
            credentials=credentials,
            reasons=REASONS,
            filters=filters,
            notice=request.session.pop("notice", ""),  # never from the URL: no crafted notices
        )

    def submission_page(
        request: Request, entry_id: int, status: int = 200, **context: Any
    ) -> Response:
        entry = queue_of(request).get(
            entry_id, assigned(queue_of(request), signed_in(request) or "")
        )
        if entry is None:
            return problem_page(request, 404, "No such submission.")
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

    @app.get("/submission/{entry_id}", response_class=HTMLResponse)
    def open_submission(request: Request, entry_id: int) -> Response:
        if signed_in(request) is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
        try:
            return submission_page(request, entry_id, notice=request.session.pop("notice", ""))
        except NotAssigned:
            return problem_page(request, 403, "That submission is not in your credentials.")

    @app.post("/submission/{entry_id}")
    def decide(
        request: Request,
        entry_id: int,
        version: int = Form(...),
        decision: str = Form(""),
        feedback: str = Form(""),
        csrf: str = Form(""),
        levels: dict[str, str] = Depends(form_levels),
    ) -> Response:
        name = signed_in(request)
        if name is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
        if not csrf_ok(request, csrf):
            return page(request, "login.html", 403, problem="The form expired; sign in again.")
        credentials = assigned(queue_of(request), name)
        verdict = Verdict(levels, decision, feedback)
        try:
            queue_of(request).decide(entry_id, verdict, name, credentials, version)
        except AlreadyDecided as conflict:
            return submission_page(request, entry_id, 409, problem=str(conflict))
        except NotAssigned:
            return problem_page(request, 403, "That submission is not in your credentials.")
        except LookupError as problem:
            return problem_page(request, 404, str(problem))
        except ValueError as problem:  # an incomplete form: show it again with what is missing
            return submission_page(request, entry_id, 400, problem=str(problem), verdict=verdict)
        waiting = queue_of(request).pending(credentials, limit=1)
        notice = f"Recorded {DECISION_LABELS[decision]} for submission #{entry_id}."
        request.session["notice"] = notice
        if waiting:
            return RedirectResponse(f"{ROOT}/submission/{waiting[0].id}", status_code=303)
        return RedirectResponse(f"{ROOT}/", status_code=303)

    return app


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
