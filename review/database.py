"""Where the review system's rows live: the engine for a SQLite file or a Postgres URL, its
settings (SQLite's pragmas, errors that never carry a row), sessions and write transactions.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Self

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from prescore.review.schema import Upgrade, bring_to_head, head, new_sqlite_database
from prescore.serving.settings import ConfigurationError


class MissingDriver(ConfigurationError):
    """The review queue's URL names a database whose Python driver is not installed."""


def private_file(path: Path) -> bool:
    """Create the SQLite file readable by its owner only (0600): it holds evidence text and
    password hashes. An existing file keeps the mode its owner gave it. Returns whether it
    is new (empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return path.stat().st_size == 0


POSTGRES_DRIVER = "pip install 'prescore[postgres]'"


def engine_url(url: str) -> str:
    """`postgresql://` (and `postgres://`) mean psycopg 3, the driver `prescore[postgres]`
    installs; SQLAlchemy alone would look for psycopg2. Explicit `+driver` URLs stay."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


def shown_url(url: str) -> str:
    """The URL for messages, its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL has no password we could find to hide
        return url.split("@")[-1]


def new_engine(url: str) -> Engine:
    """The queue's engine; a missing driver is a configuration error saying what to install,
    not an ImportError in a restart loop."""
    try:
        # hide_parameters: a failed write's error never carries the row, so evidence text
        # cannot reach a log; pool_pre_ping: a connection a restarted server closed is replaced
        return create_engine(engine_url(url), hide_parameters=True, pool_pre_ping=True)
    except ImportError as missing:
        backend = make_url(engine_url(url)).get_backend_name()
        install = POSTGRES_DRIVER if backend == "postgresql" else f"pip install {missing.name}"
        raise MissingDriver(
            f"the review queue at {shown_url(url)} needs the Python driver {missing.name!r}, "
            f"which is not installed: {install}"
        ) from None


def _without_rows(context: ExceptionContext) -> None:
    """Postgres details a refused write with the row itself ("DETAIL: Failing row contains
    (...)", evidence text and all) whatever hide_parameters says: every database error keeps
    only its first line, the cause, so none can carry a row into a log or a traceback.
    Errors that are not the database's (a bug's TypeError) keep their message."""
    if not isinstance(context.sqlalchemy_exception, DBAPIError):
        return
    for error in (context.original_exception, context.sqlalchemy_exception):
        if error.args and isinstance(error.args[0], str):
            error.args = (error.args[0].split("\n", 1)[0], *error.args[1:])


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.execute("PRAGMA synchronous=FULL")  # a committed entry survives a power cut
    # freed and overwritten content is zeroed, not left in free pages (erasure is physical);
    # some builds turn it on by default, this one must not depend on that
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


class Database:
    """One review database, at the newest schema: opening it applies the migrations it has
    not had yet (an empty one is created; one at the newest costs a single query)."""

    def __init__(self, url: str) -> None:
        new_file = False
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            path = Path(url.removeprefix("sqlite:///"))
            new_file = private_file(path)
            if new_file:  # the migrations' result, made once per process and copied
                path.write_bytes(new_sqlite_database())
        self.engine: Engine = new_engine(url)
        event.listen(self.engine, "handle_error", _without_rows)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        # review/schema.py: the migrations it lacks
        self.schema = Upgrade(None, head()) if new_file else bring_to_head(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writers: AbstractContextManager[Any] = (
            threading.RLock() if url.startswith("sqlite") else nullcontext()
        )

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction. On SQLite this process's writers take turns on a lock first:
        SQLite's own wait for a locked database sleeps in steps of up to 100 ms: eight
        concurrent answers' writes took up to 519 ms that way, and at most 79 ms taking turns
        (each one's fsync waits for the one before; alone a write takes 3-7 ms)."""
        with self._writers, self.sessions.begin() as session:
            yield session

    @classmethod
    def at(cls, path: Path) -> Self:
        return cls(f"sqlite:///{path}")

    def purge_erased(self, tries: int = 20) -> bool:
        """Make an erasure physical on SQLite: the write-ahead log still holds the pages as
        they were before it, until about 5,000 later writes overwrite them, so it is copied
        into the (secure-delete) database file and truncated to nothing. A reader in another
        process can hold the log open for a moment: tried again a few times. Returns whether
        the log is empty now. Postgres keeps dead rows until VACUUM (see the README)."""
        if self.engine.dialect.name != "sqlite":
            return True
        for attempt in range(tries):
            with self._writers, self.engine.connect() as connection:
                busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            if not busy:
                return True
            time.sleep(0.05 * (attempt + 1))
        return False
