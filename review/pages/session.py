"""Who is signed in to the review pages: signed session cookies (Starlette's
SessionMiddleware) that carry the reviewer's current session token, and a per-session CSRF
token on every form. `current_reviewer` is the pages' dependency for a signed-in reviewer;
`form_sender` for one who sent a form."""

from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import Depends, Form, Request

from prescore.review.queue import ReviewQueue
from prescore.review.reviewers import session_is_current


class SignInNeeded(Exception):
    """No reviewer is signed in (or their session ended): the page answers with sign-in."""


class FormExpired(Exception):
    """A form came without this session's CSRF token: the page asks to sign in again."""


def queue_of(request: Request) -> ReviewQueue:
    queue: ReviewQueue = request.app.state.queue
    return queue


SESSION_LIFETIME = 14 * 24 * 3600.0  # seconds from sign-in, however active the session


def signed_in(request: Request) -> str | None:
    """The reviewer, while their session's token is current (sign-out and a password change
    replace it, which ends every session signed with the old one), they were last seen less
    than the idle timeout ago (PRESCORE_SESSION_IDLE_MINUTES), and signed in less than
    `SESSION_LIFETIME` ago. Each request seen refreshes the last-seen time, in the signed
    cookie (the cookie is signed anew then, so its own age limit would slide: the sign-in
    time is what bounds the session)."""
    session = request.session
    name = session.get("reviewer")
    if not isinstance(name, str):
        return None
    now: float = request.app.state.clock()
    since, seen = session.get("since"), session.get("seen")
    live = (
        isinstance(since, float | int)
        and isinstance(seen, float | int)
        and now - seen < request.app.state.idle_seconds
        and now - since < SESSION_LIFETIME
    )
    if not live or not session_is_current(queue_of(request), name, session.get("token")):
        session.clear()
        return None
    session["seen"] = now
    return name


def start_session(request: Request, name: str, token: str) -> None:
    """A fresh session for a reviewer who just signed in: nothing of the one before stays."""
    now = request.app.state.clock()
    request.session.clear()
    request.session.update(reviewer=name, token=token, since=now, seen=now)


def current_reviewer(request: Request) -> str:
    name: str | None = getattr(request.state, "reviewer", None)  # checked once per request
    if name is None:
        name = signed_in(request)
    if name is None:
        raise SignInNeeded
    request.state.reviewer = name
    return name


# the pages anyone may open; every other page of the review app, one added later included,
# needs a signed-in reviewer (create_review_app puts `reviewer_unless_public` on the app)
PUBLIC_PAGES = frozenset({"/login", "/logout"})


def reviewer_unless_public(request: Request) -> None:
    """The review app's own default: refusal, unless the page is listed public."""
    root = request.scope.get("root_path", "")
    if request.url.path.removeprefix(root) not in PUBLIC_PAGES:
        current_reviewer(request)


CurrentReviewer = Annotated[str, Depends(current_reviewer)]


def csrf_ok(request: Request, token: str) -> bool:
    expected = request.session.get("csrf", "")
    return bool(expected) and secrets.compare_digest(expected, token)


def form_sender(request: Request, name: CurrentReviewer, csrf: str = Form("")) -> str:
    """The signed-in reviewer who sent a form carrying this session's CSRF token."""
    if not csrf_ok(request, csrf):
        raise FormExpired
    return name


FormSender = Annotated[str, Depends(form_sender)]


def opened(request: Request, entry_id: int) -> None:
    """Note when the reviewer first opened this submission (a form shown again after a
    problem keeps the first moment), for their time per submission."""
    first = request.session.get("opened")
    if not (isinstance(first, list) and first and first[0] == entry_id):
        request.session["opened"] = [entry_id, time.time()]


def seconds_on(request: Request, entry_id: int) -> float | None:
    """Seconds since this reviewer opened the submission they now record, if known."""
    first = request.session.pop("opened", None)
    if isinstance(first, list) and len(first) == 2 and first[0] == entry_id:
        return max(time.time() - float(first[1]), 0.0)
    return None
