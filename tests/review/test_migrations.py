"""The review database's schema by Alembic: a database from before migrations is stamped and
upgraded with its rows intact, an empty one is created, and the migrations make exactly the
tables the code declares, on SQLite and on Postgres."""

from __future__ import annotations

import shutil
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from prescore.cli import app
from prescore.review.agreement import assessor_of
from prescore.review.assessors import open_blind_items, plan_of
from prescore.review.audits import breaker_states
from prescore.review.database import engine_url
from prescore.review.queue import ReviewQueue
from prescore.review.reviewers import authenticate
from prescore.review.schema import BASELINE, alembic_config, head, revision_of
from prescore.review.tables import Base
from prescore.serving.human_review import receipt_key

FROM_BEFORE = Path(__file__).parent / "fixtures" / "queue-0f752ba.sqlite"


def upgrade(url: str) -> str:
    result = CliRunner().invoke(app, ["db", "upgrade", "--db", url])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def at_revision(url: str) -> str | None:
    engine = create_engine(engine_url(url))
    try:
        with engine.connect() as connection:
            return revision_of(connection)
    finally:
        engine.dispose()


def test_a_database_from_before_migrations_is_stamped_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "review.db"
    shutil.copy(FROM_BEFORE, path)
    url = f"sqlite:///{path}"
    assert at_revision(url) is None  # as 0f752ba wrote it

    assert f"from before migrations: stamped at {BASELINE}" in upgrade(url)
    assert at_revision(url) == head()
    assert "the newest schema already" in upgrade(url)  # a second run changes nothing

    queue = ReviewQueue(url)
    try:
        (pending,) = queue.pending(["wait-time"])
        assert [item.criterion_id for item in pending.items] == ["planning", "reflection"]
        (decided,) = queue.decided()
        assert (decided.decided_by, decided.decided_decision) == ("ada", "not_yet")
        assert [r.reviewer for r in queue.live_reviews(decided.id)] == ["ada"]
        ada = authenticate(queue, "ada", "password-1")
        assert ada is not None and ada.credentials == ["wait-time"]
        assert assessor_of(queue, "pat").kind == "peer"
        receipt = queue.receipt(receipt_key("api-key", "request-1"))
        assert receipt is not None and receipt.response == '{"scores": []}'
        assert plan_of(queue, "wait-time").training_items == 1
        assert [e.id for e in open_blind_items(queue, "pat")] == [decided.id]
        assert [(s.credential_id, s.tripped) for s in breaker_states(queue)] == [
            ("wait-time", True)
        ]
        assert queue.exports() == [Path("/tmp/export-0f752ba.parquet")]
    finally:
        queue.engine.dispose()


def test_an_empty_database_is_created_by_the_migrations_as_the_tables_declare(
    review_db: str,
) -> None:
    assert "upgraded from nothing (a new database)" in upgrade(review_db)
    engine = create_engine(engine_url(review_db))
    try:
        with engine.connect() as connection:
            assert revision_of(connection) == head()
            assert set(inspect(connection).get_table_names()) == {
                *Base.metadata.tables,
                "alembic_version",
            }
            # the migrations and review/tables.py agree, column by column and index by index
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()


def test_a_database_create_all_made_is_stamped_on_sqlite_and_postgres(review_db: str) -> None:
    engine = create_engine(engine_url(review_db))
    # what every open did before migrations: the tables then, which the baseline froze
    baseline = ScriptDirectory.from_config(alembic_config()).get_revision(BASELINE)
    assert baseline is not None
    baseline.module.BASELINE.create_all(engine)
    engine.dispose()

    assert "from before migrations" in upgrade(review_db)
    assert at_revision(review_db) == head()
    queue = ReviewQueue(review_db)
    assert queue.pending(["wait-time"]) == []
    queue.engine.dispose()
