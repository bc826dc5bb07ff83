"""The review database's schema, changed by Alembic migrations (review/migrations/versions/).

Alembic is configured here, in code: the migrations ship inside the package and are found
beside this file, so `prescore db upgrade` works from an installed wheel, in any directory,
with no alembic.ini. A database written before migrations (the tables, no `alembic_version`)
is stamped at the baseline, the schema that code made, before it is upgraded; an empty one is
created by upgrading from nothing.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, inspect

logger = logging.getLogger("prescore.review")

MIGRATIONS = Path(__file__).with_name("migrations")
BASELINE = "0001_baseline"  # the schema of every database made before migrations
BEFORE_MIGRATIONS = "review_submissions"  # a table every such database has


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@functools.cache
def head() -> str:
    """The newest revision this code knows."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None  # the baseline at least ships with the package
    return revision


def revision_of(connection: Connection) -> str | None:
    """The revision the database is at; None where it has none (empty, or from before)."""
    return MigrationContext.configure(connection).get_current_revision()


@dataclass(frozen=True)
class Upgrade:
    """What opening a database did to its schema."""

    was: str | None  # its revision before; None: empty, or from before migrations
    now: str
    adopted: bool = False  # it predated migrations and was stamped at the baseline

    def __str__(self) -> str:
        if self.was == self.now:
            return f"at {self.now}, the newest schema already"
        if self.adopted:
            return f"from before migrations: stamped at {BASELINE}, upgraded to {self.now}"
        return f"upgraded from {self.was or 'nothing (a new database)'} to {self.now}"


def bring_to_head(engine: Engine) -> Upgrade:
    """Apply the migrations the database has not had. One query where it is at the head."""
    with engine.connect() as connection:
        if revision_of(connection) == head():
            return Upgrade(head(), head())
    with engine.begin() as connection:
        was = revision_of(connection)
        config = alembic_config(connection)
        adopted = was is None and inspect(connection).has_table(BEFORE_MIGRATIONS)
        if adopted:
            adopt(connection, config)
        command.upgrade(config, "head")
        now = revision_of(connection)
    assert now == head(), f"the review database is at {now} after upgrading to {head()}"
    return Upgrade(was, now, adopted)


def adopt(connection: Connection, config: Config) -> None:
    """Stamp a database from before migrations at the baseline. Those code versions created
    a table they lacked at every open, so an old enough one misses the newer tables: they
    are created first, from the baseline's own definitions."""
    baseline = ScriptDirectory.from_config(config).get_revision(BASELINE)
    assert baseline is not None
    baseline.module.BASELINE.create_all(connection, checkfirst=True)
    command.stamp(config, BASELINE)
    logger.info("the review database predates migrations: stamped at %s", BASELINE)


@functools.cache
def new_sqlite_database() -> bytes:
    """The bytes of an empty SQLite database at the head, made by the migrations once per
    process. A new file is written with them: running the migrations for each new file cost
    2-3 times the CPU and 4-5 times the wall time of the create_all it replaced (24-30 ms
    against 10-12 ms of CPU, 2026-12-07), and the test suite opens hundreds."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "review.db"
        engine = create_engine(f"sqlite:///{path}")
        try:
            bring_to_head(engine)
        finally:
            engine.dispose()
        return path.read_bytes()
