"""The real BentoML service on loopback: scoring, every 4xx, auth, batching, logs, hot swap."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from prescore.serving.client import ScoringClient
from tests.conftest import evidence_row
from tests.serving.conftest import MODEL, Registry, running_service

pytestmark = pytest.mark.slow  # starts the service in processes of its own, twice

KEY = "test-key-0f9c2d7be1"
SECRET = "SECRET-EVIDENCE-8213 my student Jamie said"


@dataclass
class Server:
    url: str
    log: Path
    registry: Registry
    model_process: str

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = KEY, raw: bytes = b""
    ) -> tuple[int, Any, dict[str, str]]:
        reply = ScoringClient(self.url, key).call(method, path, body, raw)
        return reply.status, reply.body, reply.headers


@pytest.fixture(scope="module", params=["inline", "separate"])
def server(
    registry: Registry, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Server]:
    """The service with the model in the API's process, then in a model service of its own:
    every test here holds for both."""
    folder = tmp_path_factory.mktemp("service")
    settings = {
        "PRESCORE_API_KEYS": f"other-key,{KEY}",
        "PRESCORE_MAX_ITEMS": "8",
        "PRESCORE_MAX_TEXT_CHARS": "2000",
        "PRESCORE_MODEL_PROCESS": request.param,
        "PRESCORE_AUDIT_ALARM_REFRESH_SECONDS": "0.2",
    }
    with running_service(registry, folder, settings) as (url, log):
        yield Server(url, log, registry, request.param)


def item(n: int, **overrides: Any) -> dict[str, Any]:
    row = evidence_row(n)
    return {
        "submission_id": f"sub-{n}",
        "credential_id": "wait-time",
        "criterion_id": row["criterion_id"],
        "evidence_type": "reflection",
        "text": row["text"] + f" Overall {row['final_level']}.",
        **overrides,
    }


def test_the_model_runs_in_the_process_the_setting_names(server: Server) -> None:
    """Separate, the API calls the model service's /predict, whose access log line BentoML
    writes under that service's name; inline there is no such call."""
    assert server.call("POST", "/score", {"items": [item(1)]})[0] == 200
    time.sleep(0.5)  # the access log line is written after the answer
    calls = [line for line in server.log.read_text().splitlines() if "path=/predict" in line]
    if server.model_process == "inline":
        assert calls == []
    else:
        assert calls and all("[service:prescore-model:" in line for line in calls)


def test_scores_match_the_registered_pyfunc_model(server: Server) -> None:
    import mlflow
    import pandas as pd

    items = [item(n) for n in range(500, 506)]
    status, body, headers = server.call("POST", "/score", {"items": items})
    assert status == 200, body
    assert body["model_name"] == MODEL and body["model_version"] == "1"
    assert headers["x-prescore-model-version"] == "1"
    # the response says what scored: a TF-IDF version has no ONNX copy, scikit-learn did
    assert body["runtime"] == "scikit-learn"
    assert {s["runtime"] for s in body["scores"]} == {"scikit-learn"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", server.registry.tracking_uri)
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}/1")
    columns = ("submission_id", "credential_id", "criterion_id", "text")
    expected = model.predict(pd.DataFrame([{k: i[k] for k in columns} for i in items]))
    decided = {d["submission_id"]: d for d in body["submissions"]}
    for scored, row in zip(body["scores"], expected.to_dict("records"), strict=True):
        served = {p["label"]: p["probability"] for p in scored["probabilities"]}
        assert json.loads(row["probabilities"]) == pytest.approx(served)
        assert (scored["level"], scored["route"]) == (row["level"], row["route"])
        assert scored["reasons"] == json.loads(row["reasons"])
        # the point estimate for squared-error metrics, beside the most likely level
        assert scored["expected_value"] == pytest.approx(row["expected_value"])
        decision = decided[scored["submission_id"]]
        assert (decision["decision"], decision["route"]) == (row["decision"], row["decision_route"])
        assert row["model_version"] == scored["model_version"] == "1"


def test_a_request_gets_one_decision_per_submission(server: Server) -> None:
    items = [item(2, submission_id="s1"), item(3, submission_id="s1"), item(4)]
    status, body, _ = server.call("POST", "/score", {"items": items})
    assert status == 200, body
    first, second = body["submissions"]
    assert (first["submission_id"], second["submission_id"]) == ("s1", "sub-4")
    assert first["decision"] in ("earned", "not_yet") and 0 <= first["p_earned"] <= 1
    assert "incomplete_submission" not in first["reasons"]
    assert second["route"] == "human" and "incomplete_submission" in second["reasons"]
    assert first["model_version"] == "1"


def test_audits_over_target_stop_auto_in_score_and_credentials_until_resumed(
    server: Server,
) -> None:
    from prescore.review.audits import resume
    from prescore.review.queue import ReviewQueue
    from prescore.review.tables import AuditBreaker

    queue = ReviewQueue(f"sqlite:///{server.log.parent / '.prescore' / 'review.db'}")
    version = server.call("GET", "/credentials")[1]["model_version"]
    items = [item(2, submission_id="s1"), item(3, submission_id="s1")]
    with queue.writing() as session:  # as the queue trips it (tests/review/test_audit_breaker)
        session.add(
            AuditBreaker(
                credential_id="wait-time",
                model_version=version,
                tripped_at=datetime.now(UTC),
                audits=2,
                errors=2,
                target=0.1,
            )
        )
    try:
        time.sleep(0.5)  # past the service's cache of the breakers
        _, body, _ = server.call("POST", "/score", {"items": items})
        for answer in body["scores"] + body["submissions"]:
            assert answer["route"] == "human" and "audit_alarm" in answer["reasons"]
        (credential,) = server.call("GET", "/credentials")[1]["credentials"]
        alarm = credential["audit_alarm"]
        assert (alarm["audits"], alarm["errors"], alarm["model_version"]) == (2, 2, version)
        assert alarm["resume"] == "prescore audits resume wait-time"
    finally:
        resume(queue, "wait-time", "tests")
    time.sleep(0.5)
    _, body, _ = server.call("POST", "/score", {"items": items})
    assert not any("audit_alarm" in a["reasons"] for a in body["scores"] + body["submissions"])
    assert server.call("GET", "/credentials")[1]["credentials"][0]["audit_alarm"] is None
    log = server.log.read_text()
    assert "auto decisions of wait-time stopped (audit_alarm)" in log
    assert f"auto decisions of wait-time (version {version}) resumed by tests" in log


def test_credentials_list_criteria_with_qualification_and_stakes(server: Server) -> None:
    status, card, _ = server.call("GET", "/credentials")
    assert status == 200
    (credential,) = card["credentials"]
    assert card["runtime"] == "scikit-learn"
    assert credential["credential_id"] == "wait-time" and credential["stakes"] == "low"
    assert {c["criterion_id"] for c in credential["criteria"]} == {"planning", "reflection"}
    assert all(isinstance(c["qualified"], bool) for c in credential["criteria"])


def test_a_key_is_required_and_checked(server: Server) -> None:
    for key in (None, "wrong-key", KEY + "x", ""):
        status, body, headers = server.call("POST", "/score", {"items": [item(1)]}, key=key)
        assert status == 401 and body["error"] == "a valid API key is required"
        assert headers["www-authenticate"] == "Bearer"
    assert server.call("GET", "/credentials", key=None)[0] == 401
    assert server.call("POST", "/reload", {}, key=None)[0] == 401
    for page in ("/", "/docs.json", "/schema.json", "/api/docs", "/api/openapi.json"):
        assert server.call("GET", page, key=None)[0] == 401, page  # BentoML's own too
        assert server.call("GET", page)[0] == 200, page
    assert server.call("POST", "/score", {"items": [item(1)]}, key="other-key")[0] == 200
    with urllib.request.urlopen(server.url + "/readyz") as probe:  # probes need no key
        assert probe.status == 200
    with urllib.request.urlopen(server.url + "/metrics") as metrics:
        assert b"bentoml_service_request" in metrics.read()


BAD_REQUESTS = [
    ({"items": [item(1, credential_id="pottery")]}, "items.0.credential_id", "unknown_credential"),
    (
        {"items": [item(1), item(2, criterion_id="nope")]},
        "items.1.criterion_id",
        "unknown_criterion",
    ),
    ({"items": [item(1, text="")]}, "items.0.text", "value_error"),
    ({"items": [item(1, text=" \n\t ")]}, "items.0.text", "value_error"),
    ({"items": [item(1, text=SECRET + "\x00 and more")]}, "items.0.text", "value_error"),
    # a lone surrogate is no character: no database's UTF-8 holds it (pydantic refuses it)
    ({"items": [item(1, text=SECRET + "\ud800 and more")]}, "items.0.text", "string_unicode"),
    ({"items": [item(1, submission_id="s\x00")]}, "items.0.submission_id", "value_error"),
    ({"items": [item(1, educator_id="e\udfff")]}, "items.0.educator_id", "string_unicode"),
    ({"items": [item(1, text=SECRET * 100)]}, "items.0.text", "text_too_long"),
    ({"items": [item(1, text=[SECRET])]}, "items.0.text", "string_type"),
    ({"items": [item(1, submission_id=7)]}, "items.0.submission_id", "string_type"),
    ({"items": [item(n) for n in range(9)]}, "items", "too_many_items"),
    ({"items": []}, "items", "too_short"),
    ({"items": [{**item(1), "grade": "A"}]}, "items.0.grade", "extra_forbidden"),
    (
        {"items": [item(1, credential_id="Bad Id")]},
        "items.0.credential_id",
        "string_pattern_mismatch",
    ),
    ({}, "items", "missing"),
    (
        {"items": [item(1, submission_id="s"), item(3, submission_id="s", credential_id="other")]},
        "items.1.credential_id",
        "submission_mixes_credentials",
    ),
    (
        {"items": [item(1, submission_id="s"), item(3, submission_id="s")]},
        "items.1.criterion_id",
        "criterion_repeated",
    ),
    (  # one owner per submission: `prescore forget` finds a submission by its educator
        {
            "items": [
                item(1, submission_id="s", educator_id="ana"),
                item(2, submission_id="s", educator_id="ben"),
            ]
        },
        "items.1.educator_id",
        "submission_mixes_educators",
    ),
]


@pytest.mark.parametrize(("body", "field", "rule"), BAD_REQUESTS)
def test_bad_input_is_a_422_naming_field_and_rule(
    server: Server, body: dict[str, Any], field: str, rule: str
) -> None:
    status, error, _ = server.call("POST", "/score", body)
    assert status == 422, error
    assert {"field": field, "rule": rule} in [
        {"field": d["field"], "rule": d["rule"]} for d in error["details"]
    ]
    assert SECRET not in json.dumps(error)


def test_malformed_json_is_a_422_that_does_not_echo_the_body(server: Server) -> None:
    status, error, _ = server.call("POST", "/score", raw=b'{"items": [' + SECRET.encode())
    assert status == 422 and error["details"][0]["rule"] == "json_invalid"
    assert SECRET not in json.dumps(error)


def test_batch_and_single_requests_agree_under_concurrency(server: Server) -> None:
    items = [item(n) for n in range(600, 608)]
    status, batch, _ = server.call("POST", "/score", {"items": items})
    assert status == 200
    with ThreadPoolExecutor(8) as pool:
        singles = list(pool.map(lambda i: server.call("POST", "/score", {"items": [i]}), items))
    assert all(s[0] == 200 for s in singles)
    assert [s[1]["scores"][0] for s in singles] == batch["scores"]


def test_neither_evidence_text_nor_keys_reach_the_logs(server: Server) -> None:
    server.call("POST", "/score", {"items": [item(1, text=SECRET + " waited longer.")]})
    server.call("POST", "/score", {"items": [item(1, text=SECRET * 100)]})
    server.call("POST", "/score", {"items": [item(1, text=SECRET, credential_id="x")]})
    server.call("POST", "/score", raw=b'{"items": [' + SECRET.encode())
    server.call("POST", "/score", {"items": [item(1, text=SECRET)]}, key=SECRET)
    time.sleep(1)  # let the access log flush
    log = server.log.read_text()
    assert "path=/score" in log  # the log is being captured
    assert "SECRET-EVIDENCE" not in log and "Jamie" not in log
    assert KEY not in log and "other-key" not in log


def test_reload_serves_the_new_champion_without_dropping_requests(server: Server) -> None:
    from mlflow.tracking import MlflowClient

    items = [item(n) for n in range(700, 704)]

    def score(_: int) -> tuple[int, str]:
        status, body, _ = server.call("POST", "/score", {"items": items})
        return status, body.get("model_version", "")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", server.registry.tracking_uri)
        MlflowClient().set_registered_model_alias(MODEL, "champion", "2")
    try:
        with ThreadPoolExecutor(4) as pool:
            during = pool.map(score, range(40))
            status, card, _ = server.call("POST", "/reload", {})
            results = list(during)
        assert status == 200 and card["model_version"] == "2"
        assert all(code == 200 for code, _ in results), results
        assert {version for _, version in results} <= {"1", "2"}
        assert score(0) == (200, "2")
        assert server.call("GET", "/credentials")[1]["model_version"] == "2"
        # only promotion chooses what serves: a key cannot load a version it names
        for alias in ("1", "41", "staging"):
            status, error, _ = server.call("POST", "/reload", {"alias": alias})
            assert status == 403 and error["details"][0]["rule"] == "not_the_served_alias"
        assert score(0) == (200, "2")
        assert server.call("POST", "/reload", {"alias": "champion"})[0] == 200
    finally:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", server.registry.tracking_uri)
            MlflowClient().set_registered_model_alias(MODEL, "champion", "1")
        server.call("POST", "/reload", {})


def test_sigterm_to_prescore_serve_stops_the_server_it_started(
    registry: Registry, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from prescore.serving.launch import free_port, wait_until_ready

    port = free_port()
    environment = {
        **os.environ,
        "MLFLOW_TRACKING_URI": registry.tracking_uri,
        "PRESCORE_API_KEYS": KEY,
        "PRESCORE_REVIEW_DB": f"sqlite:///{tmp_path / 'review.db'}",
    }
    command = [sys.executable, "-m", "prescore.cli", "serve", "--model", f"{MODEL}@1"]
    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            [*command, "--port", str(port)], env=environment, cwd=tmp_path, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        try:
            assert wait_until_ready(serve, url, 180), (tmp_path / "serve.log").read_text()[-2000:]
            serve.send_signal(signal.SIGTERM)  # what systemd, Docker and Kubernetes send
            assert serve.wait(timeout=90) == 128 + signal.SIGTERM
        finally:
            if serve.poll() is None:
                serve.kill()
    with pytest.raises(OSError):  # nothing answers on the port any more
        urllib.request.urlopen(url + "/readyz", timeout=5)


def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer_and_queues_once(
    server: Server,
) -> None:
    from prescore.review.queue import ReviewQueue

    queue = ReviewQueue(f"sqlite:///{server.log.parent / '.prescore' / 'review.db'}")
    before = queue.count_pending(["wait-time"])
    body = json.dumps({"items": [item(700)]}).encode()

    def send(key: str, payload: bytes = body, api_key: str = KEY) -> tuple[int, bytes]:
        request = urllib.request.Request(
            server.url + "/score",
            payload,
            {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}",
             "Idempotency-Key": key},
            method="POST",
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as failure:
            return failure.code, failure.read()

    first, again = send("retry-1"), send("retry-1")
    assert first[0] == again[0] == 200 and first[1] == again[1]  # the same bytes
    assert json.loads(first[1])["scores"][0]["level"]
    assert queue.count_pending(["wait-time"]) == before + 1  # the human-routed one, once
    other = json.dumps({"items": [item(701)]}).encode()
    status, problem = send("retry-1", other)
    assert status == 422 and json.loads(problem)["details"][0]["rule"] == "idempotency_key_reused"
    assert send("retry-2", other)[0] == 200
    assert queue.count_pending(["wait-time"]) == before + 2
    # a key is one caller's: the same key from another API key is another request
    status, answer = send("retry-1", other, api_key="other-key")
    assert status == 200 and answer != first[1]
    assert queue.count_pending(["wait-time"]) == before + 3


def test_a_scored_submission_is_answerable_by_pull_pending_then_decided(server: Server) -> None:
    from prescore.review.queue import ReviewQueue
    from prescore.review.verdicts import Verdict

    status, scored, _ = server.call("POST", "/score", {"items": [item(800, text=SECRET)]})
    assert status == 200 and scored["submissions"][0]["route"] == "human"
    path = "/submissions/sub-800?credential_id=wait-time"
    status, answer, _ = server.call("GET", path)
    assert status == 200, answer
    assert (answer["status"], answer["decision"], answer["route"]) == ("pending", None, "human")
    assert answer["suggestion"] == scored["submissions"][0]["decision"]
    assert SECRET not in json.dumps(answer)

    queue = ReviewQueue(f"sqlite:///{server.log.parent / '.prescore' / 'review.db'}")
    (entry,) = [e for e in queue.pending(["wait-time"], limit=1000) if e.submission_id == "sub-800"]
    levels = {i.criterion_id: i.levels[0] for i in entry.items}
    queue.decide(entry.id, Verdict(levels, "not_yet", "Pause longer."), "ada", ["wait-time"], 1)
    queue.engine.dispose()
    status, answer, _ = server.call("GET", path)
    assert (answer["status"], answer["decided_by"], answer["feedback"]) == (
        "decided",
        "expert",
        "Pause longer.",
    )
    assert answer["earlier_decisions"] == 0 and answer["model_version"] == "1"

    status, missing, _ = server.call("GET", "/submissions/nobody?credential_id=wait-time")
    assert status == 404 and missing["details"][0]["rule"] == "not_found"
    slashed = item(801, submission_id="term-2/sub-801")  # a platform's id may hold a "/"
    assert server.call("POST", "/score", {"items": [slashed]})[0] == 200
    for sent in ("term-2/sub-801", "term-2%2Fsub-801"):
        status, answer, _ = server.call("GET", f"/submissions/{sent}?credential_id=wait-time")
        assert status == 200 and answer["submission_id"] == "term-2/sub-801", (sent, answer)
    status, missing, _ = server.call("GET", "/submissions/term-2/nobody?credential_id=wait-time")
    assert status == 404 and missing["error"] == "unknown submission"  # our shape
    status, _, _ = server.call("GET", "/submissions/sub-800")  # credential_id is required
    assert status == 422
    status, _, _ = server.call("GET", path, key=None)
    assert status == 401


def test_control_characters_in_a_path_are_escaped_in_the_access_log(server: Server) -> None:
    marker = "FORGED-7731"
    server.call("GET", f"/x%0A{marker}%20status=200%1B[31m%E2%80%AE", key=None)
    time.sleep(1)  # let the access log flush
    log = server.log.read_text()
    (line,) = [line for line in log.splitlines() if marker in line]
    assert "/x\\nFORGED-7731 status=200\\x1b[31m\\u202e" in line
    assert not line.startswith(marker) and "\x1b" not in line and "\u202e" not in line


def metric_series(server: Server) -> list[str]:
    with urllib.request.urlopen(server.url + "/metrics") as metrics:
        return [line for line in metrics.read().decode().splitlines() if 'endpoint="' in line]


def test_unknown_paths_share_one_metrics_label(server: Server) -> None:
    assert server.call("POST", "/score", {"items": [item(1)]})[0] == 200  # a known route's series
    for n in range(30):
        server.call("GET", f"/probe-{n}-{time.monotonic_ns()}", key=None)
    before = metric_series(server)
    for n in range(30):
        server.call("GET", f"/probe-{n}-{time.monotonic_ns()}", key=None)
    after = metric_series(server)
    assert not any("probe-" in line for line in after)
    assert any('endpoint="other"' in line for line in after)
    assert any('endpoint="/score"' in line for line in after)
    assert len(after) == len(before)  # no new series however many paths are invented


def test_metrics_count_the_items_of_each_model_call(server: Server) -> None:
    from bench.serving import batch_totals

    items_before, calls_before = batch_totals(server.url)
    assert server.call("POST", "/score", {"items": [item(n) for n in range(700, 704)]})[0] == 200
    items_after, calls_after = batch_totals(server.url)
    assert items_after - items_before == 4  # the token batcher's histogram, not BentoML's
    assert calls_after - calls_before == 1


def fuzz(server: Server, check: Callable[[Any], None], examples: int = 25) -> int:
    """Run `check` on schemathesis cases, valid and invalid, for every operation the served
    OpenAPI lists; the operations fuzzed. (Hypothesis directly: schemathesis's pytest plugin
    does not run on pytest 9.2.)"""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    # the schema is behind the key like every route not listed public
    key = {"Authorization": f"Bearer {KEY}"}
    schema = schemathesis.openapi.from_url(server.url + "/api/openapi.json", headers=key)
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
            operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
        )

        @given(case=cases)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            check(case)

        run()
    return len(operations)


def test_fuzzed_requests_with_a_key_never_get_a_server_error(server: Server) -> None:
    def check(case: Any) -> None:
        try:
            response = case.call(
                base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
            )
            assert response.status_code < 500, (case.method, case.path, response.text[:300])
        finally:
            if case.path == "/reload":  # whatever was fuzzed, the champion (1) serves again
                server.call("POST", "/reload", {})

    assert fuzz(server, check) == 4  # /score, /credentials, /reload, /submissions/{id}


def test_every_operation_refuses_fuzzed_requests_without_a_key(server: Server) -> None:
    def check(case: Any) -> None:
        response = case.call(base_url=server.url, headers={}, timeout=60)
        assert response.status_code == 401, (case.method, case.path, response.status_code)
        assert response.headers["www-authenticate"] == ["Bearer"]

    assert fuzz(server, check, examples=15) == 4
