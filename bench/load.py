"""Load a running scoring service the way many platform callers would, and say what they got:
requests per second, latency, every status code, and whether each 503 said when to come back.

    python -m bench.load --url http://127.0.0.1:3000 --key-file .prescore/api-key \\
        --items essays.jsonl --clients 32 --seconds 60

`--items` is JSON Lines, one evidence item per line (the /score item shape); each request sends
one of them. `--heavy N` adds one request of N items (cycled from the file, each cut or
repeated to --heavy-chars characters) after the first quarter of the run, to see what it gets
and whether everyone else keeps being answered meanwhile.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import typer

from prescore.serving.client import ScoringClient


@dataclass(frozen=True)
class Sent:
    started: float  # seconds since the run began
    seconds: float
    status: int  # 0: no answer within the client's timeout, or the connection failed
    retry_after: str | None
    heavy: bool = False
    error: str = ""


@dataclass
class LoadReport:
    seconds: float
    clients: int
    sent: list[Sent] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        normal = [s for s in self.sent if not s.heavy]
        answered = sorted(s.seconds for s in normal if s.status == 200)
        busy = [s for s in normal if s.status == 503]
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 1),
            "requests": len(normal),
            "answered_per_second": round(len(answered) / self.seconds, 2),
            "p50_seconds": percentile(answered, 50),
            "p95_seconds": percentile(answered, 95),
            "statuses": status_counts(normal),
            "every_503_has_retry_after": all(s.retry_after for s in busy),
            "heavy": [self.while_heavy(s) for s in self.sent if s.heavy],
        }

    def while_heavy(self, heavy: Sent) -> dict[str, Any]:
        """What the heavy request got, and what everyone else got while it was in flight."""
        during = [
            s
            for s in self.sent
            if not s.heavy and heavy.started <= s.started <= heavy.started + heavy.seconds
        ]
        return {
            "status": heavy.status,
            "seconds": round(heavy.seconds, 2),
            "error": heavy.error,
            "others_meanwhile": status_counts(during),
            "others_slowest_seconds": round(max((s.seconds for s in during), default=0), 2),
        }


def status_counts(sent: list[Sent]) -> dict[str, int]:
    """How many got each status (or, with no answer, each error), in the order first seen."""
    return dict(Counter(str(s.status or s.error) for s in sent))


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(len(values) * p / 100))], 3)


def send(client: ScoringClient, items: list[dict[str, Any]], t0: float, heavy: bool) -> Sent:
    started = time.monotonic()
    try:
        reply = client.score(items)
        status, retry, error = reply.status, reply.headers.get("retry-after"), ""
    except OSError as failure:  # timed out, refused, reset
        status, retry, error = 0, None, type(failure).__name__
    return Sent(started - t0, time.monotonic() - started, status, retry, heavy, error)


def run_load(
    client: ScoringClient,
    items: list[dict[str, Any]],
    clients: int,
    seconds: float,
    heavy: list[dict[str, Any]] | None = None,
) -> LoadReport:
    """`clients` threads, each sending one item per request back to back for `seconds` (after a
    503, once its Retry-After has passed); each request a distinct item while the file lasts.
    The heavy request, if any, goes at a quarter of the time."""
    report = LoadReport(seconds, clients)
    lock = threading.Lock()
    numbers = count()
    t0 = time.monotonic()
    deadline = t0 + seconds

    def caller() -> None:
        while time.monotonic() < deadline:
            n = next(numbers)
            item = {**items[n % len(items)], "submission_id": f"load-{n}"}
            sent = send(client, [item], t0, heavy=False)
            with lock:
                report.sent.append(sent)
            if sent.status == 503 and sent.retry_after:  # as a well-behaved caller does
                time.sleep(max(0.0, min(float(sent.retry_after), deadline - time.monotonic())))

    def heavy_caller() -> None:
        time.sleep(seconds / 4)
        assert heavy is not None
        sent = send(client, heavy, t0, heavy=True)
        with lock:
            report.sent.append(sent)

    threads = [threading.Thread(target=caller) for _ in range(clients)]
    if heavy:
        threads.append(threading.Thread(target=heavy_caller))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.seconds = time.monotonic() - t0
    return report


def heavy_request(items: list[dict[str, Any]], size: int, chars: int) -> list[dict[str, Any]]:
    """`size` items of `chars` characters each, one per (submission, criterion), built by
    repeating the file's texts."""
    built = []
    for n in range(size):
        text = items[n % len(items)]["text"]
        text = (text + "\n\n") * (chars // (len(text) + 2) + 1)
        built.append({**items[n % len(items)], "submission_id": f"heavy-{n}", "text": text[:chars]})
    return built


def main(
    url: str = typer.Option("http://127.0.0.1:3000", help="the service's base URL"),
    key_file: Path = typer.Option(Path(".prescore/api-key"), help="file with the API key"),
    items_file: Path = typer.Option(..., "--items", help="JSON Lines of /score items"),
    clients: int = typer.Option(8, min=1, help="concurrent callers"),
    seconds: float = typer.Option(60.0, min=1, help="how long to keep sending"),
    timeout: float = typer.Option(60.0, help="each caller's timeout per request, in seconds"),
    heavy: int = typer.Option(0, min=0, help="items in one heavy request (0: none)"),
    heavy_chars: int = typer.Option(50_000, min=1, help="characters per heavy item"),
) -> None:
    """Send one-item requests from many callers for a while; print what they got as JSON."""
    items = [json.loads(line) for line in items_file.read_text().splitlines() if line.strip()]
    client = ScoringClient(url, key_file.read_text().split()[0], timeout=timeout)
    typer.echo(f"{clients} callers for {seconds:.0f} s against {url} ...", err=True)
    built = heavy_request(items, heavy, heavy_chars) if heavy else None
    report = run_load(client, items, clients, seconds, built)
    summary = report.summary()
    if built:  # the first request after the heavy one, alone
        alone = [{**items[0], "submission_id": "after-heavy"}]
        after = send(client, alone, time.monotonic(), heavy=False)
        summary["next_request_after"] = {"status": after.status, "seconds": round(after.seconds, 2)}
    typer.echo(json.dumps(summary, indent=2))


if __name__ == "__main__":
    typer.run(main)
