"""The reviewers' web pages, served by the scoring service under /review.

Server-rendered HTML (Jinja2), no JavaScript framework: sign in, see the queue of submissions
for the credentials assigned to you, open one, record a level per criterion, the decision and
feedback to the educator in one form, and the queue moves on. Forms carry a per-session CSRF
token; sessions are signed cookies (Starlette's SessionMiddleware).

What a reviewer sees depends on their kind and calibration (review/assessors.py): peers never
see high-stakes submissions; a credential's training items come before its live work;
adjudicated submissions are mixed blind into the queue; administrators have /review/admin.
Each page is a router of its own module; review/pages/session.py says who is signed in.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Awaitable, Callable, Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from prescore import defaults
from prescore.review.pages import admin, queue, sign_in, submission, training
from prescore.review.pages.render import ROOT, page
from prescore.review.pages.session import (
    SESSION_LIFETIME,
    FormExpired,
    SignInNeeded,
    reviewer_unless_public,
)
from prescore.review.queue import ReviewQueue
from prescore.review.reviewers import SignInThrottle

__all__ = ["ROOT", "connect", "create_review_app"]

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
    app: FastAPI,
    queue: ReviewQueue,
    session_secret: str,
    secure_cookies: bool = False,
    trusted_proxies: Sequence[str] = (),
    idle_minutes: float = defaults.SESSION_IDLE_MINUTES,
    clock: Callable[[], float] = time.time,
) -> None:
    """Give the pages their queue and session key; call before the first request.
    `secure_cookies` (behind TLS) sends the session cookie over HTTPS only;
    `trusted_proxies` (addresses or networks) are the only peers whose X-Forwarded-For the
    pages believe; a session unused for `idle_minutes` ends (by `clock`, in seconds)."""
    from starlette.middleware.sessions import SessionMiddleware

    app.state.queue = queue
    app.state.idle_seconds = idle_minutes * 60
    app.state.clock = clock
    app.state.throttle = SignInThrottle()
    app.state.trusted_proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret,
        same_site="strict",
        https_only=secure_cookies,
        max_age=int(SESSION_LIFETIME),
    )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response


async def to_sign_in(request: Request, _: Exception) -> Response:
    return RedirectResponse(f"{ROOT}/login", status_code=303)


async def form_expired(request: Request, _: Exception) -> Response:
    return page(request, "login.html", 403, problem="The form expired; sign in again.")


def create_review_app() -> FastAPI:
    app = FastAPI(
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(reviewer_unless_public)],  # every page, unless listed public
    )
    for pages in (sign_in, queue, submission, training, admin):
        app.include_router(pages.router)
    app.add_exception_handler(SignInNeeded, to_sign_in)
    app.add_exception_handler(FormExpired, form_expired)
    return app
