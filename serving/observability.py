"""What the service tells its operator, made safe to expose: metrics whose labels cannot grow
with what strangers send, and log lines a URL cannot forge.

BentoML 1.4 labels its HTTP metrics with the raw request path, so every random path a caller
invents is a new Prometheus series kept for the life of the worker (2,000 random paths grew
/metrics to 8.5 MB and the worker by 150 MB), and its access log writes the decoded path as it
came, so a `%0A` in a URL starts a new, forged log line. Both are fixed here, from outside
BentoML: its metrics middleware is given a path label from a fixed set, and its access log
records pass through a filter that escapes control characters.

Tracing stays, one span per request: BentoML's OpenTelemetry middleware also opened a span for
every ASGI message (the request body, the response's start and body), three more per /score,
which took half its 0.3 ms of the event loop per request; the request's span and the trace
ids in every log line are what an operator reads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

OTHER_PATHS = "other"  # the one label every unknown path shares

# BentoML's own routes, on every service
SYSTEM_PATHS = frozenset(
    {"/", "/livez", "/healthz", "/readyz", "/metrics", "/docs.json", "/schema.json"}
)
# loggers whose records carry a request's path: the access log, BentoML's exception log
PATH_LOGGERS = ("bentoml.access", "bentoml._internal.server.http_app", "prescore.serving")


def path_label(path: str, known: frozenset[str], prefixes: tuple[str, ...]) -> str:
    """`path` where it is a route the service has, its mount prefix under a mounted app,
    OTHER_PATHS for anything else."""
    if path in known:
        return path
    for prefix in prefixes:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return prefix
    return OTHER_PATHS


def bound_metric_paths(known: Callable[[], Iterable[str]], prefixes: Iterable[str] = ()) -> None:
    """Label BentoML's HTTP metrics by route, not by raw path. Call at import of the service
    module: BentoML builds each worker's middleware after importing it. `known` lists the
    routes; it is asked at the first request, once BentoML has bound the service's methods
    to their routes."""
    from bentoml._internal.server.http import instruments

    base: Any = instruments.RunnerTrafficMetricsMiddleware
    if getattr(base, "bounded_paths", False):
        base = base.__mro__[1]  # re-imported: wrap BentoML's own class, not ours again
    mounts = tuple(prefixes)
    routes: list[frozenset[str]] = []

    class BoundedPathMetrics(base):
        """BentoML's middleware, shown a scope whose path is the route's label; the app inside
        is handed the original scope back."""

        bounded_paths = True

        def __init__(self, app: Any, **options: Any) -> None:
            async def original_scope(scope: dict[str, Any], receive: Any, send: Any) -> None:
                await app(scope.get("prescore.scope", scope), receive, send)

            super().__init__(original_scope, **options)

        async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] not in ("http", "websocket"):
                await super().__call__(scope, receive, send)
                return
            if not routes:
                routes.append(frozenset(known()) | SYSTEM_PATHS)
            label = path_label(scope["path"], routes[0], mounts)
            await super().__call__({**scope, "path": label, "prescore.scope": scope}, receive, send)

    instruments.RunnerTrafficMetricsMiddleware = BoundedPathMetrics  # type: ignore[misc,assignment]


def trace_requests_not_messages() -> None:
    """BentoML's OpenTelemetry middleware without its spans for each ASGI message. Call at
    import of the service module: BentoML imports the middleware when it builds each
    worker's app, after importing it."""
    from opentelemetry.instrumentation import asgi

    base: Any = asgi.OpenTelemetryMiddleware
    if getattr(base, "requests_only", False):
        return

    class RequestSpans(base):
        requests_only = True

        def __init__(self, app: Any, **options: Any) -> None:
            options.setdefault("exclude_spans", ["receive", "send"])
            super().__init__(app, **options)

    asgi.OpenTelemetryMiddleware = RequestSpans  # type: ignore[misc,assignment]


def escape_controls(text: str) -> str:
    """Every character that is not printable (newline, ESC, bidi overrides, the line and
    paragraph separators U+2028/U+2029) as a visible escape; a space stays a space."""
    if text.isprintable():
        return text
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii")
        for char in text
    )


class ControlCharacterEscaper(logging.Filter):
    """A record's message, rendered once with its arguments, with control characters
    escaped: a path cannot end the line it is written on, nor recolour the terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escape_controls(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


def escape_request_logs() -> None:
    """Add the escaper to the loggers that write request paths (once per process)."""
    for name in PATH_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, ControlCharacterEscaper) for f in target.filters):
            target.addFilter(ControlCharacterEscaper())
