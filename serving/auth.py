"""API keys on the scoring endpoints: compared in constant time, never logged."""

from __future__ import annotations

import hmac

from starlette.requests import Request


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
