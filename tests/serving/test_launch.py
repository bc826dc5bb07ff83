"""`stop` ends a server that will not stop by itself, workers included, within a bounded time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prescore import defaults
from prescore.serving import launch

STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a server stuck in its shutdown
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(worker.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/status").read_text().count("State:\tZ")


def test_a_server_stuck_in_shutdown_is_killed_with_its_workers_after_the_grace_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(defaults, "SHUTDOWN_GRACE_SECONDS", 1)
    monkeypatch.setattr(launch, "STOP_MARGIN_SECONDS", 1)
    server = subprocess.Popen(
        [sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, start_new_session=True
    )
    assert server.stdout is not None
    worker = int(server.stdout.readline())
    started = time.monotonic()

    launch.stop(server)

    assert time.monotonic() - started < 10
    assert server.returncode is not None
    deadline = time.monotonic() + 5
    while alive(worker) and time.monotonic() < deadline:  # reaped by init once orphaned
        time.sleep(0.1)
    assert not alive(worker)  # it would have kept the port open


def test_the_service_runs_on_this_interpreter_whatever_bentoml_is_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Packages installed with `pip install --target` have no `bentoml` script beside the
    interpreter; one from another environment may be first on PATH."""
    elsewhere = tmp_path / "other-env"
    elsewhere.mkdir()
    (elsewhere / "bentoml").write_text("#!/bin/sh\nexit 3\n")
    (elsewhere / "bentoml").chmod(0o755)
    monkeypatch.setenv("PATH", f"{elsewhere}{os.pathsep}{os.environ['PATH']}")
    interpreter = tmp_path / "site" / "python3"
    monkeypatch.setattr(sys, "executable", str(interpreter))
    started: list[list[str]] = []
    monkeypatch.setattr(launch.subprocess, "Popen", lambda command, **_: started.append(command))

    launch.start_service({}, port=3999)

    assert started[0][:4] == [str(interpreter), "-m", "bentoml", "serve"]
