"""A failure of the database or the model service anywhere in a request is a 503 to retry,
never a 500 with a traceback, and its log line names the failure's type, never the row."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from prescore.serving.service import api

SECRET = "my pupils in room 12 said"


@pytest.mark.parametrize(
    "failure",
    [
        OperationalError("INSERT INTO review_items", {"text": SECRET}, Exception(SECRET)),
        aiohttp.ClientConnectionError("model service gone"),
        TimeoutError(),
    ],
)
def test_an_unguarded_failure_is_a_503_with_retry_after_and_a_typed_log_line(
    failure: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI()
    for kind, handler in api.exception_handlers.items():  # the scoring API's own handlers
        app.add_exception_handler(kind, handler)

    @app.get("/fails")
    async def fails() -> None:
        raise failure

    with caplog.at_level(logging.INFO):
        response = TestClient(app, raise_server_exceptions=False).get("/fails")

    assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
    assert set(response.json()) == {"error", "details"}
    assert type(failure).__name__ in caplog.text
    assert SECRET not in caplog.text + response.text
