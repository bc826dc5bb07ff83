"""Serving speed: each runtime of a registered model in-process, then the HTTP service on the
fastest one, all on the same items.

Not a test: it prints a table (or JSON) for eval/RESULTS.md. Every item is a distinct text
with one criterion, so no encoding is shared between items; batches of one text scored on
every criterion of its credential (where a text shares its encoding) are timed separately.

- One request: each item alone, one after another: p50 and p95 latency.
- N concurrent clients: over HTTP, N threads each sending single-item requests, which the
  model service's token batcher merges. In-process there is no batcher, so N clients are
  counted as the batches they would make at best: the items scored N at a time.
- HTTP against in-process: the service's runtime is timed in-process again in turn with the
  service, pass by pass (ROUNDS of each), and the ratio taken from those passes: on a shared
  machine the two sides' rates, taken minutes apart, drifted by a fifth (eval/RESULTS.md).
- Level agreement: share of items whose suggested level equals PyTorch fp32's.
"""

from __future__ import annotations

import platform
import secrets
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from bench.serving_report import HttpTimings, RuntimeTimings, ServingBench
from prescore import defaults
from prescore.models.hardware import cpu_description, use_threads_for
from prescore.models.onnx_copies import RUNTIMES, OnnxCopies, load_copy
from prescore.models.registry import ONNX_ARTIFACT, RegisteredModel, fetch
from prescore.models.transformer import TORCH_RUNTIME, TransformerScorer
from prescore.serving.client import ScoringClient
from prescore.serving.launch import free_port, start_service, stop, wait_until_ready
from prescore.serving.schemas import EvidenceToScore
from prescore.serving.scoring import ScoringModel, routing_policy

CLIENTS = (8, 32)
WARM_UP = 3
ROUNDS = 3  # passes over the items, HTTP and in-process in turn, per client count


def machine() -> str:
    return f"{cpu_description()}, Python {platform.python_version()}"


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


def batch_totals(base_url: str) -> tuple[float, float]:
    """Items scored and model calls so far: the sum and count of the service's batch size
    histogram, across workers."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals = {"_sum": 0.0, "_count": 0.0}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        for suffix in totals:
            if name == f"prescore_batch_items{suffix}":
                totals[suffix] += float(line.rsplit(" ", 1)[1])
    return totals["_sum"], totals["_count"]


def answered_in(call: Callable[[Any], bool], work: list[Any], clients: int) -> tuple[int, float]:
    """Items answered, and the seconds the pass took."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answered = sum(pool.map(call, work))
    return answered, time.perf_counter() - started


def in_process_seconds(model: ScoringModel, items: list[EvidenceToScore], clients: int) -> float:
    """One pass over `items` in-process, `clients` at a time (the best batches they make)."""
    use_threads_for(model.runtime)
    started = time.perf_counter()
    for start in range(0, len(items), clients):
        model.score(items[start : start + clients])
    return time.perf_counter() - started


def service_cpu_seconds(pid: int) -> float:
    """CPU time (user and system) of the service's processes so far."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def service_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of the service's processes (BentoML's arbiter, the API service, the
    model service), by the role their command line names, and their total."""
    import psutil

    root = psutil.Process(pid)
    out: dict[str, float] = {}
    for process in [root, *root.children(recursive=True)]:
        try:
            command = " ".join(process.cmdline())
            rss = process.memory_info().rss / 2**20
        except psutil.Error:
            continue
        if process.pid == pid:
            role = "server"
        elif "ScoringRunner" in command or "prescore-model" in command:
            role = "model service"
        elif "service" in command:
            role = "api service"
        else:
            role = "other"
        out[role] = out.get(role, 0.0) + rss
    out["total"] = sum(out.values())
    return out


def runtime_model(
    registered: RegisteredModel, runtime: str, copies: OnnxCopies | None
) -> ScoringModel:
    """The version on `runtime`, whether or not its copy passed: the bench measures all.
    `copies`: the version's check, which says the attention bf16 serves on."""
    scorer = registered.scorer(TORCH_RUNTIME)
    if runtime != TORCH_RUNTIME:
        assert isinstance(scorer, TransformerScorer) and copies is not None
        attention = copies.attention(runtime)  # as it serves
        scorer = load_copy(registered.artifacts / ONNX_ARTIFACT, runtime, scorer, attention)
    return ScoringModel(scorer, routing_policy(registered), registered.name, registered.version)


def measure_in_process(
    models: dict[str, ScoringModel],
    items: list[EvidenceToScore],
    shared: list[list[EvidenceToScore]],
    passed: dict[str, bool],
) -> dict[str, RuntimeTimings]:
    """Every runtime on the same calls, taken in turn call by call: on a shared machine a busy
    minute slows them all alike instead of whichever runtime it fell on. Each call runs with
    torch's threads set as the service sets them for that runtime."""
    for model in models.values():
        for one in items[:WARM_UP]:
            model.score([one])
    single: dict[str, list[float]] = {name: [] for name in models}
    levels: dict[str, list[str]] = {name: [] for name in models}
    for item in items:
        for name, model in models.items():
            use_threads_for(name)
            started = time.perf_counter()
            levels[name].extend(s.level for s in model.score([item]))
            single[name].append(1000 * (time.perf_counter() - started))

    def rate(batches: list[list[EvidenceToScore]]) -> dict[str, float]:
        seconds = dict.fromkeys(models, 0.0)
        for batch in batches:
            for name, model in models.items():
                use_threads_for(name)
                started = time.perf_counter()
                model.score(batch)
                seconds[name] += time.perf_counter() - started
        count = sum(len(b) for b in batches)
        return {name: count / s if s else float("nan") for name, s in seconds.items()}

    by_clients = [rate([items[i : i + n] for i in range(0, len(items), n)]) for n in CLIENTS]
    on_shared = rate(shared)
    reference = levels[TORCH_RUNTIME]
    return {
        name: RuntimeTimings(
            p50_ms=statistics.median(single[name]),
            p95_ms=percentile(single[name], 0.95),
            items_per_s_8=by_clients[0][name],
            items_per_s_32=by_clients[1][name],
            level_agreement=sum(a == b for a, b in zip(levels[name], reference, strict=True))
            / len(reference),
            shared_items_per_s=on_shared[name],
            passed=passed[name],
        )
        for name in models
    }


@contextmanager
def running(
    model_name: str,
    version: str,
    runtime: str,
    model_process: str,
    max_chars: int,
    ready_timeout: float,
) -> Iterator[tuple[str, str, int]]:
    """The HTTP service on one runtime: (url, key, pid)."""
    key = secrets.token_urlsafe(24)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = {
        "PRESCORE_MODEL": model_name,
        "PRESCORE_MODEL_ALIAS": version,
        "PRESCORE_RUNTIME": runtime,
        "PRESCORE_MODEL_PROCESS": model_process,
        "PRESCORE_API_KEYS": key,
        "PRESCORE_MAX_TEXT_CHARS": str(max_chars),
    }
    with tempfile.TemporaryDirectory() as folder:
        log_file = Path(folder) / "service.log"
        with log_file.open("wb") as log:
            process = start_service(settings, port=port, output=log, cwd=Path(folder))
        try:
            if not wait_until_ready(process, url, ready_timeout):
                raise RuntimeError("the service did not start: " + log_file.read_text()[-2000:])
            yield url, key, process.pid
        except RuntimeError:
            print(log_file.read_text()[-3000:])
            raise
        finally:
            stop(process)


def measure_http(
    registered: RegisteredModel,
    reference: ScoringModel,
    model_process: str,
    items: list[EvidenceToScore],
    ready_timeout: float,
) -> tuple[HttpTimings, dict[str, float]]:
    """The service on `reference`'s runtime; `reference` itself is timed in turn with it."""
    runtime = reference.runtime
    max_chars = max(len(i.text) for i in items)
    with running(
        registered.name, registered.version, runtime, model_process, max_chars, ready_timeout
    ) as (url, key, pid):
        client = ScoringClient(url, key, timeout=300)
        payloads = [[i.model_dump()] for i in items]
        served: set[str] = set()
        refused: dict[int, int] = {}

        def send(payload: list[dict[str, Any]]) -> bool:
            """True when answered; an overloaded service's refusal (5xx) is counted, not
            retried, so throughput counts answered items only."""
            reply = client.score(payload)
            if reply.status >= 500:
                refused[reply.status] = refused.get(reply.status, 0) + 1
                return False
            if reply.status != 200:
                raise RuntimeError(f"the service answered {reply.status}: {reply.body}")
            served.add(reply.body["runtime"])
            return True

        for payload in payloads[:WARM_UP]:
            send(payload)
        single = timed([partial(send, p) for p in payloads])
        rates, own_rates, batches, cpu = [], [], [], []
        for clients in CLIENTS:
            items_before, calls_before = batch_totals(url)
            answered, seconds, own_seconds = 0, 0.0, 0.0
            own_cpu, service_cpu, client_cpu = 0.0, 0.0, 0.0
            for _ in range(ROUNDS):
                started = time.process_time()
                own_seconds += in_process_seconds(reference, items, clients)
                own_cpu += time.process_time() - started
                # the client's window holds the pass alone, not the walks over /proc around it
                service_started = service_cpu_seconds(pid)
                started = time.process_time()
                pass_answered, pass_seconds = answered_in(send, payloads, clients)
                client_cpu += time.process_time() - started
                service_cpu += service_cpu_seconds(pid) - service_started
                answered, seconds = answered + pass_answered, seconds + pass_seconds
            rates.append(answered / seconds)
            own_rates.append(ROUNDS * len(items) / own_seconds)
            per_item = 1000 / max(answered, 1)
            cpu.append(
                (
                    service_cpu * per_item,
                    1000 * own_cpu / (ROUNDS * len(items)),
                    client_cpu * per_item,
                )
            )
            items_after, calls_after = batch_totals(url)
            calls = calls_after - calls_before
            batches.append((items_after - items_before) / calls if calls else float("nan"))
        if served != {runtime}:
            raise RuntimeError(f"asked the service for {runtime}; it scored on {sorted(served)}")
        http = HttpTimings(
            runtime=runtime,
            model_process=model_process,
            p50_ms=statistics.median(single),
            p95_ms=percentile(single, 0.95),
            items_per_s_8=rates[0],
            items_per_s_32=rates[1],
            mean_batch_8=batches[0],
            mean_batch_32=batches[1],
            in_process_items_per_s_8=own_rates[0],
            in_process_items_per_s_32=own_rates[1],
            refused=refused,
            service_cpu_ms_8=cpu[0][0],
            in_process_cpu_ms_8=cpu[0][1],
            client_cpu_ms_8=cpu[0][2],
        )
        return http, service_rss_mb(pid)


def bench_serving(
    model_name: str,
    alias: str,
    items: list[EvidenceToScore],
    shared: list[list[EvidenceToScore]],
    http: bool = True,
    model_process: str = "inline",
    ready_timeout: float = defaults.READY_TIMEOUT_SECONDS,
    on_step: Callable[[str], None] = lambda _: None,
) -> ServingBench:
    """Every runtime the version has, in-process on the same items; then, unless `http` is
    off, the HTTP service on the fastest runtime that passed its check, with the model in the
    API's process or in a model service of its own (`model_process`)."""
    registered = fetch(model_name, alias)
    copies = registered.onnx_copies()
    not_measured: dict[str, str] = {}
    models: dict[str, ScoringModel] = {}
    passed: dict[str, bool] = {}
    for runtime in RUNTIMES:
        check = copies.copies.get(runtime) if copies else None
        if runtime != TORCH_RUNTIME and check is None:
            not_measured[runtime] = (
                "the version has no such copy; add it with "
                f"`prescore export-onnx --model {model_name}@{registered.version}`"
            )
            continue
        models[runtime] = runtime_model(registered, runtime, copies)
        passed[runtime] = check is None or check.passed
    on_step(", ".join(models) + " in turn")
    measured = measure_in_process(models, items, shared, passed)
    # what the service itself picks: the fastest copy that passed (OnnxCopies.usable)
    fastest = copies.usable()[0] if copies else TORCH_RUNTIME
    reference = models.pop(fastest)
    models.clear()
    served: HttpTimings | None = None
    rss: dict[str, float] = {}
    if http:
        on_step(f"HTTP service on {fastest}, the model {model_process}")
        served, rss = measure_http(registered, reference, model_process, items, ready_timeout)
    words = sorted(len(i.text.split()) for i in items)
    return ServingBench(
        model=model_name,
        version=registered.version,
        items=len(items),
        shared_items=sum(len(b) for b in shared),
        words=(words[len(words) // 2], words[-1]),
        machine=machine(),
        runtimes=measured,
        http=served,
        rss_mb=rss,
        not_measured=not_measured,
    )
