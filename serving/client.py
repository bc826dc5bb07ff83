"""A minimal HTTP client for the scoring API, standard library only (the platform may not have
our dependencies); the benchmark and the loopback tests call the service through it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


def decoded(payload: bytes) -> Any:
    """JSON, or the text itself where a proxy or the server's own error page answered."""
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", "replace")


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass(frozen=True)
class ScoringClient:
    base_url: str
    api_key: str | None = None
    timeout: float = 60.0

    def call(self, method: str, path: str, body: Any = None, raw: bytes = b"") -> Reply:
        data = raw or (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/json"}
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.base_url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Reply(response.status, decoded(response.read()), dict(response.headers))
        except urllib.error.HTTPError as failure:
            return Reply(failure.code, decoded(failure.read()), dict(failure.headers))

    def score(self, items: list[dict[str, Any]]) -> Reply:
        return self.call("POST", "/score", {"items": items})

    def credentials(self) -> Reply:
        return self.call("GET", "/credentials")
