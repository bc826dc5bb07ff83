"""The real service under more than it can take: a per-request token budget, 503 with
Retry-After in the documented shape instead of 500s, and normal answers right after."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from prescore.serving.client import Reply, ScoringClient
from tests.conftest import evidence_row
from tests.serving.conftest import Registry, running_service

pytestmark = pytest.mark.slow  # starts the service in processes of its own

KEY = "overload-key-5d1e8a"
TOKENS = 3000  # the per-request budget this service runs with (TF-IDF: tokens are words)
CLIENTS = 32


@pytest.fixture(scope="module")
def service(
    registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("overload")
    settings = {
        "PRESCORE_API_KEYS": KEY,
        "PRESCORE_MAX_ITEMS": "8",
        "PRESCORE_MAX_TEXT_CHARS": "9000",
        "PRESCORE_MAX_REQUEST_TOKENS": str(TOKENS),
        # so small that any request arriving while another is scored is refused, and more
        # clients than /score slots: both kinds of overload happen on a fast tiny model
        "PRESCORE_MAX_QUEUE_SECONDS": "0.001",
        "PRESCORE_MAX_CONCURRENT": "8",
    }
    with running_service(registry, folder, settings) as running:
        yield running


def item(n: int, text: str | None = None) -> dict[str, Any]:
    row = evidence_row(n)
    return {
        "submission_id": f"load-{n}",
        "credential_id": "wait-time",
        "criterion_id": row["criterion_id"],
        "evidence_type": "reflection",
        "text": text or row["text"] + f" Overall {row['final_level']}.",
    }


def essay(words: int, seed: int) -> str:
    return " ".join(f"wait{(seed * 31 + k) % 97}" for k in range(words))


def test_a_request_over_the_token_budget_is_a_413_that_names_the_limit(
    service: tuple[str, Path],
) -> None:
    client = ScoringClient(service[0], KEY)
    over = [item(n, essay(1000, n)) for n in range(4)]  # 4,000 words: at least 4,000 tokens
    reply = client.score(over)
    assert reply.status == 413, reply.body
    (detail,) = reply.body["details"]
    assert detail["field"] == "items" and detail["rule"] == "too_many_tokens"
    assert f"{TOKENS:,}" in detail["message"] and "4,000" in detail["message"]
    assert "wait1" not in json.dumps(reply.body)  # the evidence is not echoed
    assert client.score(over[:2]).status == 200  # 2,000: within the budget


def test_32_clients_and_a_heavy_request_get_answers_or_503s_with_retry_after(
    service: tuple[str, Path],
) -> None:
    url, log = service
    client = ScoringClient(url, KEY, timeout=60)
    assert client.score([item(1)]).status == 200  # the model has been measured once
    heavy = [item(n, essay(370, n)) for n in range(8)]  # 2,960 tokens: just within the budget
    start = threading.Barrier(CLIENTS)

    def run(n: int) -> list[Reply]:
        start.wait()
        if n == 0:
            return [client.score(heavy)]
        return [client.score([item(100 * n + k)]) for k in range(3)]

    with ThreadPoolExecutor(CLIENTS) as pool:
        replies = [reply for replies in pool.map(run, range(CLIENTS)) for reply in replies]

    statuses = [reply.status for reply in replies]
    assert set(statuses) <= {200, 503}, statuses
    busy = [reply for reply in replies if reply.status == 503]
    assert busy, "nothing was refused: the overload path was not exercised"
    for reply in busy:
        assert int(reply.headers["retry-after"]) >= 1
        assert reply.body["error"] and reply.body["details"] == []
    assert statuses.count(200) >= 1
    # right after, the service answers normally, promptly
    started = time.monotonic()
    after = [client.score([item(9000 + k)]) for k in range(3)]
    assert [reply.status for reply in after] == [200, 200, 200]
    assert time.monotonic() - started < 30
    time.sleep(1)  # let the log flush
    text = log.read_text()
    assert "Traceback" not in text  # refusals are answers, not exceptions
