"""The real service on a real Postgres queue: a `postgresql://` URL as an operator writes it,
the first request after a database restart, and a refused write that keeps the evidence out of
the log and stores nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from prescore.review.queue import ReviewQueue
from prescore.serving.client import ScoringClient
from tests.postgres import PostgresServer
from tests.serving.conftest import Registry, running_service
from tests.serving.test_service import KEY, SECRET, item

pytestmark = pytest.mark.slow  # starts the service and a Postgres server


@pytest.fixture(scope="module")
def service(
    registry: Registry, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ScoringClient, Path, str]]:
    database = postgres.new_database("service")
    settings = {"PRESCORE_API_KEYS": KEY, "PRESCORE_REVIEW_DB": database}
    with running_service(registry, tmp_path_factory.mktemp("pg-service"), settings) as (url, log):
        yield ScoringClient(url, KEY), log, database


def queued(database: str) -> list[str]:
    queue = ReviewQueue(database)
    try:
        return [entry.submission_id for entry in queue.pending(["wait-time"], limit=1000)]
    finally:
        queue.engine.dispose()


def test_the_service_queues_on_postgres_and_survives_a_database_restart(
    service: tuple[ScoringClient, Path, str], postgres: PostgresServer
) -> None:
    client, _, database = service
    # one item of a two-criterion submission: incomplete, so it always goes to a human
    assert client.score([item(1, submission_id="before")]).status == 200
    postgres.restart()  # every connection the service pooled is closed under it
    after = client.score([item(1, submission_id="after")])
    assert after.status == 200, after.body
    assert {"before", "after"} <= set(queued(database))


def test_a_refused_write_on_postgres_is_a_503_and_no_evidence_reaches_the_log(
    service: tuple[ScoringClient, Path, str], postgres: PostgresServer
) -> None:
    client, log, database = service
    assert client.score([item(1, submission_id="warm")]).status == 200  # tables exist
    # Postgres refuses the row and, in its error, quotes it: evidence text and all
    postgres.execute(
        database,
        "ALTER TABLE review_items ADD CONSTRAINT refuse CHECK (text NOT LIKE '%SECRET%')",
    )
    try:
        reply = client.score([item(1, submission_id="refused", text=SECRET + " waited.")])
    finally:
        postgres.execute(database, "ALTER TABLE review_items DROP CONSTRAINT refuse")
    assert reply.status == 503 and "nothing was stored" in reply.body["error"]
    assert "refused" not in queued(database)
    written = log.read_text(errors="replace")
    assert "IntegrityError" in written  # the failure is logged, by its type
    assert SECRET not in written and "Failing row" not in written
    assert client.score([item(1, submission_id="again")]).status == 200
