"""Serving speed: the HTTP service against the same registered model called in-process.

Not a test: it prints a table for the closing notes and the README. Single requests show the
latency the platform sees; concurrent single-item requests show what adaptive batching buys.
"""

from __future__ import annotations

import os
import platform
import secrets
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from prescore import defaults
from prescore.serving.client import ScoringClient
from prescore.serving.launch import free_port, start_service, stop, wait_until_ready
from prescore.serving.schemas import EvidenceToScore
from prescore.serving.scoring import ScoringModel


@dataclass(frozen=True)
class Timings:
    p50_ms: float
    p95_ms: float
    throughput: float  # items per second


@dataclass(frozen=True)
class ServingBench:
    model: str
    version: str
    items: int
    concurrency: int
    in_process: Timings
    http: Timings
    machine: str
    mean_batch: float  # items per model call in the service, from its Prometheus metrics

    def markdown(self) -> str:
        rows = [
            ("single request p50 (ms)", self.in_process.p50_ms, self.http.p50_ms),
            ("single request p95 (ms)", self.in_process.p95_ms, self.http.p95_ms),
            (
                f"throughput, {self.concurrency} concurrent clients (items/s)",
                self.in_process.throughput,
                self.http.throughput,
            ),
        ]
        lines = [
            f"Serving {self.model} version {self.version}: {self.items} items, {self.machine}",
            "",
            "| measure | in-process | HTTP service | HTTP / in-process |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f} |" for name, a, b in rows]
        lines += ["", f"Adaptive batching: {self.mean_batch:.1f} items per model call on average."]
        return "\n".join(lines)


def machine() -> str:
    return f"{os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed(calls: list[Callable[[], Any]]) -> list[float]:
    latencies = []
    for call in calls:
        started = time.perf_counter()
        call()
        latencies.append(1000 * (time.perf_counter() - started))
    return latencies


def mean_batch_size(base_url: str) -> float:
    """Sum over count of BentoML's adaptive batch size histogram, across workers."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals = {"_sum": 0.0, "_count": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        for suffix in totals:
            if name == f"bentoml_service_adaptive_batch_size{suffix}":
                totals[suffix] += float(line.rsplit(" ", 1)[1])
    return totals["_sum"] / totals["_count"] if totals["_count"] else float("nan")


def concurrent_throughput(call: Callable[[Any], Any], work: list[Any], clients: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(call, work))
    return len(work) / (time.perf_counter() - started)


def bench_serving(
    model_name: str,
    alias: str,
    items: list[EvidenceToScore],
    concurrency: int = 8,
    ready_timeout: float = defaults.READY_TIMEOUT_SECONDS,
) -> ServingBench:
    """Time both paths on the same items; the first few calls of each warm up and are dropped."""
    model = ScoringModel.from_registry(model_name, alias)
    warm = items[: min(5, len(items))]
    for one in warm:
        model.score([one])
    single = timed([partial(model.score, [one]) for one in items])
    in_process = Timings(
        statistics.median(single),
        percentile(single, 0.95),
        # in-process clients share the interpreter: concurrency adds nothing, so this is the
        # model's own rate on one batch of every item
        len(items) / (sum(timed([lambda: model.score(items)])) / 1000),
    )

    key = secrets.token_urlsafe(24)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {
        "PRESCORE_MODEL": model_name,
        "PRESCORE_MODEL_ALIAS": alias,
        "PRESCORE_API_KEYS": key,
        "PRESCORE_MAX_TEXT_CHARS": str(max(len(i.text) for i in items)),
    }
    with tempfile.TemporaryDirectory() as folder:
        with (Path(folder) / "service.log").open("wb") as log:
            process = start_service(settings, port=port, output=log, cwd=Path(folder))
        try:
            if not wait_until_ready(process, url, ready_timeout):
                raise RuntimeError(
                    "the service did not start: "
                    + (Path(folder) / "service.log").read_text()[-2000:]
                )
            client = ScoringClient(url, key, timeout=300)
            payloads = [[i.model_dump()] for i in items]

            def send(payload: list[dict[str, Any]]) -> None:
                reply = client.score(payload)
                if reply.status != 200:
                    raise RuntimeError(f"the service answered {reply.status}: {reply.body}")

            for payload in payloads[: len(warm)]:
                send(payload)
            over_http = timed([partial(send, p) for p in payloads])
            http = Timings(
                statistics.median(over_http),
                percentile(over_http, 0.95),
                concurrent_throughput(send, payloads, concurrency),
            )
            batch = mean_batch_size(url)
        except RuntimeError:
            print((Path(folder) / "service.log").read_text()[-3000:])
            raise
        finally:
            stop(process)
    return ServingBench(
        model_name, model.version, len(items), concurrency, in_process, http, machine(), batch
    )
