"""A throwaway Postgres server for the queue tests: Debian's `postgresql` binaries, a new
cluster in a temporary folder on a free loopback port, removed after the tests.

Postgres refuses to run as root, and CI runs as root: there the cluster belongs to the
`postgres` system user (the Debian package creates it) and every server command runs through
`runuser`. A missing install fails the tests with what to install, never a skip: the queue is
promised on Postgres, so its tests must run wherever the suite does (.ci/run installs it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from prescore.serving.launch import free_port

SERVER_ROOT = Path("/usr/lib/postgresql")  # Debian: one bin/ per major version
INSTALL = "apt-get install -y postgresql"  # what .ci/run does on CI's fresh Debian machine
SERVER_USER = "postgres"  # the system user Debian's package creates
DATABASE_USER = "prescore"


def server_binaries() -> Path:
    """The folder holding initdb and pg_ctl: Debian keeps them off PATH, per major version."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(
        SERVER_ROOT.glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        pytest.fail(
            "the Postgres queue tests need a Postgres server: install Debian's package "
            f"(`{INSTALL}`, as root); CI's .ci/run installs it",
            pytrace=False,
        )
    return versions[-1].parent


class PostgresServer:
    """One cluster: started once for the test session, restartable, removed at the end."""

    def __init__(self) -> None:
        self.bin = server_binaries()
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                pwd.getpwnam(SERVER_USER)
            except KeyError:
                pytest.fail(
                    f"running as root, Postgres needs the {SERVER_USER!r} system user, which "
                    f"Debian's package creates: `{INSTALL}`",
                    pytrace=False,
                )
        # not under pytest's 0700 temporary folder: the postgres user must reach it
        self.folder = Path(tempfile.mkdtemp(prefix="prescore-postgres-"))
        self.data = self.folder / "data"
        if self.as_root:
            shutil.chown(self.folder, SERVER_USER, SERVER_USER)
        self.run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            DATABASE_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        self.start()

    def run(self, program: str, *arguments: str) -> None:
        command: Sequence[str] = [str(self.bin / program), *arguments]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        # fsync off: a test cluster need not survive a power cut, and it is faster
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        log = self.folder / "server.log"
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(log), "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """Stop and start again on the same port: every open connection is closed."""
        self.stop()
        self.start()

    def url(self, database: str = "postgres") -> str:
        """A plain `postgresql://` URL, as an operator writes it."""
        return f"postgresql://{DATABASE_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self, name: str) -> str:
        """An empty schema of its own for one test (a new database takes a second, a schema a
        millisecond); its URL, which makes it the default schema of every connection."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            connection.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url()}?options=-csearch_path%3D{name}"

    def execute(self, url: str, statement: str) -> None:
        """Run one statement, as an administrator would, where `url` (a test's schema) points."""
        import psycopg

        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(statement)

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
