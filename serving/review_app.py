"""The reviewers' web page, served by the scoring service under /review.

Server-rendered HTML (Jinja2), no JavaScript framework: sign in, see the queue for the
credentials assigned to you, open an item, record a level, and the queue moves on. Forms carry
a per-session CSRF token; sessions are signed cookies (Starlette's SessionMiddleware).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from prescore.serving.queue import REASONS, AlreadyDecided, Filters, NotAssigned, ReviewQueue
from prescore.serving.reviewers import assigned, authenticate

ROOT = "/review"
PAGE_SIZE = 100  # entries on one page of the queue
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


def connect(app: FastAPI, queue: ReviewQueue, session_secret: str) -> None:
    """Give the page its queue and session key; call before the first request."""
    from starlette.middleware.sessions import SessionMiddleware

    app.state.queue = queue
    app.add_middleware(SessionMiddleware, secret_key=session_secret, same_site="strict")


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
        name = request.session.get("reviewer")
        return name if isinstance(name, str) else None

    def csrf_ok(request: Request, token: str) -> bool:
        expected = request.session.get("csrf", "")
        return bool(expected) and secrets.compare_digest(expected, token)

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        return page(request, "login.html")

    @app.post("/login")
    def login(request: Request, name: str = Form(...), password: str = Form(...)) -> Response:
        reviewer = authenticate(queue_of(request), name, password)
        if reviewer is None:
            return page(request, "login.html", 401, problem="Name or password is wrong.")
        request.session.clear()
        request.session["reviewer"] = reviewer.name
        return RedirectResponse(f"{ROOT}/", status_code=303)

    @app.post("/logout")
    def logout(request: Request, csrf: str = Form("")) -> Response:
        if csrf_ok(request, csrf):
            request.session.clear()
        return RedirectResponse(f"{ROOT}/login", status_code=303)

    @app.get("/", response_class=HTMLResponse)
    def queue_page(
        request: Request, credential: str = "", reason: str = "", offset: int = 0, notice: str = ""
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
            notice=notice,
        )

    @app.get("/item/{entry_id}", response_class=HTMLResponse)
    def item_page(request: Request, entry_id: int) -> Response:
        name = signed_in(request)
        if name is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
        try:
            entry = queue_of(request).get(entry_id, assigned(queue_of(request), name))
        except NotAssigned:
            return problem_page(request, 403, "That item is not in your credentials.")
        if entry is None:
            return problem_page(request, 404, "No such item.")
        return page(request, "item.html", e=entry, notice=request.session.pop("notice", ""))

    @app.post("/item/{entry_id}")
    def decide(
        request: Request,
        entry_id: int,
        level: str = Form(...),
        version: int = Form(...),
        csrf: str = Form(""),
    ) -> Response:
        name = signed_in(request)
        if name is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
        if not csrf_ok(request, csrf):
            return page(request, "login.html", 403, problem="The form expired; sign in again.")
        credentials = assigned(queue_of(request), name)
        try:
            queue_of(request).decide(entry_id, level, name, credentials, version)
        except AlreadyDecided as conflict:
            entry = queue_of(request).get(entry_id, credentials)
            return page(request, "item.html", 409, e=entry, problem=str(conflict))
        except (NotAssigned, LookupError, ValueError) as problem:
            return problem_page(request, 400, str(problem))
        waiting = queue_of(request).pending(credentials, limit=1)
        notice = f"Recorded {level} for item {entry_id}."
        if waiting:
            request.session["notice"] = notice
            return RedirectResponse(f"{ROOT}/item/{waiting[0].id}", status_code=303)
        return RedirectResponse(f"{ROOT}/?notice={notice}", status_code=303)

    return app
