"""Metrics labels and log lines that strangers' URLs cannot grow or forge (in-process; the
loopback service's own checks are in test_service.py)."""

from __future__ import annotations

import logging

import pytest

from prescore.serving.observability import (
    OTHER_PATHS,
    ControlCharacterEscaper,
    escape_controls,
    path_label,
)


def test_unknown_paths_share_one_metrics_label() -> None:
    known = frozenset({"/score", "/metrics"})
    assert path_label("/score", known, ("/review",)) == "/score"
    assert path_label("/review/items/17", known, ("/review",)) == "/review"
    assert path_label("/reviewer", known, ("/review",)) == OTHER_PATHS
    assert path_label("/wp-admin/x\n", known, ("/review",)) == OTHER_PATHS


def test_control_characters_are_escaped() -> None:
    assert escape_controls("/score") == "/score"
    assert escape_controls("/x\nFAKE 200\x1b[31m\u202e") == "/x\\nFAKE 200\\x1b[31m\\u202e"
    assert escape_controls("/café") == "/café"
    assert escape_controls("/a\u2028FORGED\u2029") == "/a\\u2028FORGED\\u2029"  # line breaks too


def test_a_log_record_with_a_forged_line_is_written_as_one_line() -> None:
    record = logging.LogRecord(
        "bentoml.access", logging.INFO, __file__, 1, "%s (%s)", ("1.2.3.4", "path=/a\nB"), None
    )
    assert ControlCharacterEscaper().filter(record)
    assert record.getMessage() == "1.2.3.4 (path=/a\\nB)"


def test_a_request_is_traced_in_one_span_not_one_per_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio
    from typing import Any

    from opentelemetry.instrumentation import asgi
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from prescore.serving.observability import trace_requests_not_messages

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    def spans_of_one_request() -> list[str]:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        # built as BentoML builds it: the class looked up in the module when the app is made
        traced = asgi.OpenTelemetryMiddleware(app, tracer_provider=provider)
        scope = {"type": "http", "method": "POST", "path": "/score", "headers": []}
        scope |= {"scheme": "http", "server": ("127.0.0.1", 3000), "query_string": b""}
        asyncio.run(traced(scope, receive, send))
        return [span.name for span in exporter.get_finished_spans()]

    bentoml_own = asgi.OpenTelemetryMiddleware
    while getattr(bentoml_own, "requests_only", False):  # the service module was imported
        bentoml_own = bentoml_own.__mro__[1]
    monkeypatch.setattr(asgi, "OpenTelemetryMiddleware", bentoml_own)
    assert len(spans_of_one_request()) == 4  # BentoML's default: the request and 3 messages
    trace_requests_not_messages()
    trace_requests_not_messages()  # again, as a re-import would: wraps BentoML's class once
    assert asgi.OpenTelemetryMiddleware.__mro__[1] is bentoml_own
    assert spans_of_one_request() == ["POST /score"]


def test_the_service_module_leaves_message_spans_out_before_bentoml_builds_its_app() -> None:
    """BentoML's worker imports the service module, then builds the app, whose middleware
    it imports from the OpenTelemetry module then (_bentoml_impl/server/app.py)."""
    from opentelemetry.instrumentation import asgi

    import prescore.serving.service  # noqa: F401

    assert getattr(asgi.OpenTelemetryMiddleware, "requests_only", False)
