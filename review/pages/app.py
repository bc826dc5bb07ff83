"""The reviewers' web page, served by the scoring service under /review.

Server-rendered HTML (Jinja2), no JavaScript framework: sign in, see the queue of submissions
for the credentials assigned to you, open one, record a level per criterion, the decision and
feedback to the educator in one form, and the queue moves on. Forms carry a per-session CSRF
token; sessions are signed cookies (Starlette's SessionMiddleware).

What a reviewer sees depends on their kind and calibration (serving/calibration.py): peers
never see high-stakes submissions; a credential's training items come before its live work;
adjudicated submissions are mixed blind into the queue; administrators have /review/admin.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from prescore.review.agreement import adjudicated_levels, assessor_of, benchmarks, figures
from prescore.review.assessors import (
    kind_of,
    mix_in_blind,
    open_blind_items,
    record_calibration,
    training_of,
)
from prescore.review.queue import REASONS, Filters, ReviewQueue
from prescore.review.reviewers import (
    SignInThrottle,
    assigned,
    authenticate,
    end_sessions,
    session_is_current,
    session_token,
)
from prescore.review.tables import BLIND, DECIDED, PEER, TRAINING, ItemEntry, SubmissionEntry
from prescore.review.verdicts import AlreadyDecided, Assessor, NotAssigned, Verdict

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

    def form_sender(request: Request, csrf: str) -> str | Response:
        """The signed-in reviewer who sent a verdict form, or the answer when there is none
        (to sign in) or the form's token has expired."""
        name = signed_in(request)
        if name is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
        if not csrf_ok(request, csrf):
            return page(request, "login.html", 403, problem="The form expired; sign in again.")
        return name

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
            next_link=queue_link(filters, offset + PAGE_SIZE)
            if offset + PAGE_SIZE < total
            else None,
            credentials=credentials,
            reasons=REASONS,
            filters=filters,
            trainings=[
                training_of(queue, name, c) for c in credentials if c not in who.credentials
            ],
            admin=kind_of(queue, name)[1],
            notice=request.session.pop("notice", ""),  # never from the URL: no crafted notices
        )

    def submission_page(
        request: Request, entry_id: int, status: int = 200, **context: Any
    ) -> Response:
        name = signed_in(request) or ""
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
        return show_submission(
            request, entry, status, calibrating=blind, took_part=took_part, **context
        )

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

    def seconds_on(request: Request, entry_id: int) -> float | None:
        """Seconds since this reviewer opened the submission they now record, if known."""
        opened = request.session.pop("opened", None)
        if isinstance(opened, list) and len(opened) == 2 and opened[0] == entry_id:
            return max(time.time() - float(opened[1]), 0.0)
        return None

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
        name = form_sender(request, csrf)
        if isinstance(name, Response):
            return name
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
                entry = queue.decide(
                    entry_id, verdict, name, who.credentials, version, who, seconds
                )
                outcome = live_outcome(queue, entry, who)
                mix_in_blind(queue, name, entry.credential_id)
        except AlreadyDecided as conflict:
            return submission_page(request, entry_id, 409, problem=str(conflict))
        except NotAssigned:
            return problem_page(request, 403, "That submission is not in your credentials.")
        except LookupError as problem:
            return problem_page(request, 404, str(problem))
        except ValueError as problem:  # an incomplete form: show it again with what is missing
            if blind is not None:
                return show_submission(
                    request, blind, 400, calibrating=True, problem=str(problem), verdict=verdict
                )
            return submission_page(request, entry_id, 400, problem=str(problem), verdict=verdict)
        request.session["notice"] = (
            f"Recorded {DECISION_LABELS[decision]} for submission #{entry_id}" + OUTCOMES[outcome]
        )
        return next_page(queue, name)

    def next_page(queue: ReviewQueue, name: str) -> Response:
        """The next submission to score: a blind item waiting, else the top of the queue."""
        blind = open_blind_items(queue, name)
        who = assessor_of(queue, name)
        waiting = blind or queue.pending(who.credentials, limit=1, assessor=who)
        if waiting:
            return RedirectResponse(f"{ROOT}/submission/{waiting[0].id}", status_code=303)
        return RedirectResponse(f"{ROOT}/", status_code=303)

    @app.get("/training/{credential_id}", response_class=HTMLResponse)
    def training_item(request: Request, credential_id: str) -> Response:
        name = signed_in(request)
        if name is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
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

    @app.post("/training/{credential_id}")
    def record_training(
        request: Request,
        credential_id: str,
        entry: int = Form(...),
        decision: str = Form(""),
        feedback: str = Form(""),
        csrf: str = Form(""),
        levels: dict[str, str] = Depends(form_levels),
    ) -> Response:
        name = form_sender(request, csrf)
        if isinstance(name, Response):
            return name
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
        after = training_of(queue, name, credential_id)
        adjudicated = adjudicated_levels(item)
        return page(
            request,
            "training_result.html",
            e=item,
            verdict=verdict,
            adjudicated=adjudicated,
            decisions=DECISION_LABELS,
            training=after,
            number=training.done + 1,
        )

    @app.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request) -> Response:
        name = signed_in(request)
        if name is None:
            return RedirectResponse(f"{ROOT}/login", status_code=303)
        queue = queue_of(request)
        if not kind_of(queue, name)[1]:
            return problem_page(request, 403, "The reviewers' report is for administrators.")
        rows = sorted(figures(queue), key=lambda f: (not f.flagged, f.reviewer, f.credential_id))
        return page(request, "admin.html", rows=rows, benchmarks=benchmarks(queue), admin=True)

    return app


OUTCOMES = {
    "": ".",
    "first peer": "; a second peer reviews it too.",
    "peers agree": ": both peers agree, so it is decided.",
    "peers disagree": "; the peers disagree, so an expert decides it.",
}


def live_outcome(queue: ReviewQueue, entry: SubmissionEntry, who: Assessor) -> str:
    """What a live verdict did, in OUTCOMES' words."""
    if who.kind != PEER:
        return ""
    if entry.status == DECIDED:
        return "peers agree"
    peers = [r for r in queue.live_reviews(entry.id) if r.kind == PEER]
    return "first peer" if len(peers) < 2 else "peers disagree"


def opened(request: Request, entry_id: int) -> None:
    """Note when the reviewer first opened this submission (a form shown again after a
    problem keeps the first moment), for their time per submission."""
    first = request.session.get("opened")
    if not (isinstance(first, list) and first and first[0] == entry_id):
        request.session["opened"] = [entry_id, time.time()]


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


def no_training_left(needed: int, credential_id: str) -> str:
    return (
        f"Training for {credential_id} needs {needed} adjudicated submissions and none is left "
        "that you have not scored or decided; ask an administrator."
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
