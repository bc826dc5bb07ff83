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


def signed_in(request: Request) -> str | None:
    """The reviewer, while their session's token is current (sign-out and a password change
    replace it, which ends every session signed with the old one)."""
    name = request.session.get("reviewer")
    if not isinstance(name, str):
        return None
    if not session_is_current(queue_of(request), name, request.session.get("token")):
        request.session.clear()
        return None
    return name


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
