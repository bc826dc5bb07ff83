"""Start `bentoml serve` for the scoring service as a child process and wait until it is ready.

Shared by `prescore serve`, the serving benchmark and the loopback tests, so all three run the
service exactly as an operator does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from prescore import defaults
from prescore.models.registry import tracking_uri

SERVICE = "prescore.serving.service:Prescore"
STOP_MARGIN_SECONDS = 10  # past the grace period, for BentoML's own shutdown


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_service(
    settings: dict[str, str],
    host: str = "127.0.0.1",
    port: int = 3000,
    output: IO[bytes] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """`bentoml serve` with PRESCORE_* `settings` added to this process's environment.

    The service reads the registry this process uses, wherever it is started from, and runs
    on this process's interpreter: not a `bentoml` script found on PATH, which may belong to
    another environment, nor none where packages were installed without their scripts
    (`pip install --target` keeps only the last install's)."""
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        SERVICE,
        "--host",
        host,
        "--port",
        str(port),
    ]
    # requests in flight get this long to finish when the server is told to stop
    command += ["--timeout-graceful-shutdown", str(defaults.SHUTDOWN_GRACE_SECONDS)]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(), **settings}
    # its own process group, so `stop` can end the arbiter and every worker it started
    # together; a terminal's Ctrl+C reaches the caller, which stops it
    return subprocess.Popen(
        command,
        env=environment,
        cwd=cwd,
        stdout=output,
        stderr=None if output is None else subprocess.STDOUT,
        start_new_session=True,
    )


def wait_until_ready(process: subprocess.Popen[bytes], base_url: str, timeout: float) -> bool:
    """True once /readyz answers 200; False if the process exits or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:  # refused, reset or timed out while it starts
            pass
        time.sleep(0.5)
    return False


@contextmanager
def forward_termination(process: subprocess.Popen[bytes]) -> Iterator[list[int]]:
    """While inside, SIGTERM (what systemd, Docker and Kubernetes send) is passed on to the
    BentoML server, so the caller's wait ends when the server has stopped; the list it yields
    holds the signal received, for the caller to exit with 128 + it. The handler only
    forwards: waiting inside it would deadlock on the wait it interrupted (Popen's lock)."""
    received: list[int] = []

    def forward(signum: int, _: object) -> None:
        received.append(signum)
        process.terminate()

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ask the server to stop (SIGTERM), give it the grace period and a margin, then kill its
    whole process group: a worker left behind would keep answering on the port."""
    if process.poll() is None:
        process.terminate()
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=defaults.SHUTDOWN_GRACE_SECONDS + STOP_MARGIN_SECONDS)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # the group id is the server's pid
    process.wait()
