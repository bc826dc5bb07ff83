"""API keys on every route of the service: compared in constant time, never logged.

Refusal is the default. A route answers without a key only when its path is listed here as
public, so a route someone adds later (to the FastAPI app, as a BentoML API, or BentoML's own
`/`, `/docs.json` and `/schema.json`) is protected without anyone remembering to protect it.
"""

from __future__ import annotations

import hmac
import json

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

# the orchestrator's probes and the Prometheus scrape (labels bounded: serving/observability.py)
PUBLIC_PATHS = frozenset({"/livez", "/healthz", "/readyz", "/metrics"})
# the reviewers' pages: each checks a reviewer's session itself, except signing in
REVIEWER_SESSION_PREFIX = "/review"
UNAUTHORISED = "a valid API key is required"


def presented_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def key_is_valid(presented: str | None, keys: tuple[str, ...]) -> bool:
    """True if `presented` equals one of `keys`; every key is compared, so timing says nothing."""
    if presented is None:
        return False
    given = presented.encode()
    matches = [hmac.compare_digest(given, key.encode()) for key in keys]
    return any(matches)


def is_public(path: str) -> bool:
    """Paths that need no API key: the listed ones, and the review pages (a session instead)."""
    under_review = path == REVIEWER_SESSION_PREFIX or path.startswith(REVIEWER_SESSION_PREFIX + "/")
    return path in PUBLIC_PATHS or under_review


class KeyRequired:
    """Refuses every HTTP request to a path not listed as public unless it carries a valid
    key, before any route reads its body, in the documented error shape."""

    def __init__(self, app: ASGIApp, keys: tuple[str, ...], allow_anonymous: bool) -> None:
        self.app = app
        self.keys = keys
        self.allow_anonymous = allow_anonymous

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.allow_anonymous or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        if key_is_valid(presented_key(Request(scope)), self.keys):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": UNAUTHORISED, "details": []}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b"Bearer"),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
