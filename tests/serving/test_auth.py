"""Refusal by default: a route nobody listed as public needs a key."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from prescore.serving.auth import PUBLIC_PATHS, KeyRequired

KEY = "k" * 32


def app_with(*paths: str) -> Starlette:
    async def answer(_: object) -> PlainTextResponse:
        return PlainTextResponse("here")

    return Starlette(routes=[Route(path, answer) for path in paths])


def test_a_route_added_without_a_listing_is_refused_without_a_key() -> None:
    app = app_with("/livez", "/a-route-added-later", "/review/login")
    client = TestClient(KeyRequired(app, keys=(KEY,), allow_anonymous=False))
    refused = client.get("/a-route-added-later")
    assert refused.status_code == 401
    assert refused.json() == {"error": "a valid API key is required", "details": []}
    assert refused.headers["www-authenticate"] == "Bearer"
    assert client.get("/a-route-added-later", headers={"X-API-Key": "wrong"}).status_code == 401
    with_key = client.get("/a-route-added-later", headers={"Authorization": f"Bearer {KEY}"})
    assert with_key.status_code == 200 and with_key.text == "here"
    assert client.get("/livez").status_code == 200  # listed public
    assert client.get("/review/login").status_code == 200  # a reviewer session's business
    assert client.get("/reviewer-lookalike").status_code == 401  # a prefix is not a listing


def test_anonymous_serving_opens_every_route_as_configured() -> None:
    client = TestClient(KeyRequired(app_with("/anything"), keys=(), allow_anonymous=True))
    assert client.get("/anything").status_code == 200


def test_the_service_puts_every_route_behind_the_key_check() -> None:
    from prescore.serving.service import Prescore, ServiceKeys

    assert any(cls is ServiceKeys for cls, _ in Prescore.middlewares)
    assert {"/livez", "/readyz", "/metrics"} <= PUBLIC_PATHS and "/" not in PUBLIC_PATHS
