"""The load script's summary: statuses counted, latency of answers only, the heavy request apart."""

from __future__ import annotations

from bench.load import LoadReport, Sent


def test_the_summary_counts_statuses_and_sets_the_heavy_request_apart() -> None:
    report = LoadReport(
        seconds=10,
        clients=2,
        sent=[
            Sent(started=0, seconds=1, status=200, retry_after=None),
            Sent(started=1, seconds=2, status=503, retry_after="5"),
            Sent(started=2, seconds=30, status=413, retry_after=None, heavy=True),
            Sent(started=3, seconds=0.5, status=0, retry_after=None, error="timeout"),
        ],
    )
    summary = report.summary()
    assert summary["requests"] == 3 and summary["statuses"] == {"200": 1, "503": 1, "timeout": 1}
    assert summary["p50_seconds"] == 1 and summary["every_503_has_retry_after"]
    (heavy,) = summary["heavy"]
    assert heavy["status"] == 413 and heavy["others_meanwhile"] == {"timeout": 1}
    assert heavy["others_slowest_seconds"] == 0.5
