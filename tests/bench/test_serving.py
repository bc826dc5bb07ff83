"""`prescore bench serving`: the items it sends and the JSON it prints."""

from __future__ import annotations

import json

import pandas as pd

from bench.cli import bench_items
from bench.serving_report import HttpTimings, RuntimeTimings, ServingBench


def test_the_json_has_exactly_the_issue_schema() -> None:
    timings = RuntimeTimings(10.0, 12.0, 30.0, 31.0, 0.995, 80.0, True)
    bench = ServingBench(
        model="m",
        version="1",
        items=100,
        shared_items=60,
        words=(300, 350),
        machine="2 CPU cores",
        runtimes={"torch-fp32": timings, "onnx-fp32": timings, "onnx-int8": timings},
        http=HttpTimings(
            "onnx-fp32",
            "inline",
            20.0,
            25.0,
            28.0,
            29.0,
            4.5,
            6.0,
            35.0,
            32.0,
            service_cpu_ms_8=70.5,
            in_process_cpu_ms_8=61.25,
            client_cpu_ms_8=0.5,
        ),
        rss_mb={"model service": 500.0, "total": 900.0},
    )
    report = json.loads(json.dumps(bench.as_json()))
    assert report == {
        "runtimes": {
            name: {
                "p50_ms": 10.0,
                "p95_ms": 12.0,
                "items_per_s_8": 30.0,
                "items_per_s_32": 31.0,
                "level_agreement": 0.995,
            }
            for name in ("torch-fp32", "onnx-fp32", "onnx-int8")
        },
        "http": {
            "runtime": "onnx-fp32",
            "p50_ms": 20.0,
            "p95_ms": 25.0,
            "items_per_s_8": 28.0,
            "items_per_s_32": 29.0,
        },
        "rss_mb": {"model service": 500.0, "total": 900.0},
    }
    table = bench.markdown()
    assert "| one request p50 (ms) | 10.0 | 10.0 | 10.0 | 20.0 |" in table
    # the ratio from the in-process passes timed in turn with HTTP (35), not the first (30)
    assert "0.80x of the same runtime in-process timed in turn with it" in table
    assert "the model inline (PRESCORE_MODEL_PROCESS)" in table
    assert "the service 70.5 ms against 61.2 ms in-process; the bench's client 0.5 ms" in table


def test_items_are_distinct_texts_one_each_and_shared_batches_apart() -> None:
    criteria = ["a", "b", "c"]
    split = pd.DataFrame(
        [
            {
                "id": f"{t}-{c}",
                "credential_id": "cred",
                "criterion_id": c,
                "evidence_type": "essay",
                "text": " ".join(["word"] * (5 + t)),
            }
            for t in range(6)
            for c in criteria
        ]
    )
    distinct, shared = bench_items(split, count=4, min_words=6, max_words=9, shared=2)
    assert len({i.text for i in distinct}) == len(distinct) == 4  # texts of 6..9 words
    assert all(6 <= len(i.text.split()) <= 9 for i in distinct)
    assert [i.criterion_id for i in distinct] == ["a", "b", "c", "a"]  # criteria in turn
    assert [len(batch) for batch in shared] == [3, 3]
    assert all(len({i.text for i in batch}) == 1 for batch in shared)


def test_the_service_cpu_counts_every_process_of_the_service() -> None:
    import os
    import subprocess
    import sys

    from bench.serving import service_cpu_seconds

    # the service's arbiter, which burns nothing, and its worker, which burns 0.3 s and waits
    worker = (
        "import time\nwhile time.process_time() < 0.3: pass\nprint('burnt', flush=True)\ninput()"
    )
    arbiter = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {worker!r}])"
    server = subprocess.Popen(
        [sys.executable, "-c", arbiter], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline() == "burnt\n"
        # /proc counts user and system time apart in clock ticks, each rounded down
        tick = 1 / os.sysconf("SC_CLK_TCK")
        assert 0.3 - 2 * tick <= service_cpu_seconds(server.pid) < 5
    finally:
        server.communicate("\n", timeout=30)
