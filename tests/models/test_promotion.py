"""Promotion judges what the platform feels: qualification kept, no smaller auto share beyond
noise, no more false awards; test QWK mean alone no longer moves the champion."""

from __future__ import annotations

from typer.testing import CliRunner

from prescore.cli import app
from prescore.models.promotion import judge
from prescore.models.registry import CHAMPION, list_versions, promote

MODEL = "prescore-promotion"
WIDE = {"COLUMNS": "250"}


def decisions(
    auto: int, false_awards: int = 2, qualified: bool = True, qwk: float = 0.75, total: int = 100
) -> dict[str, float]:
    """A run's metrics: one credential decided on `total` complete test submissions."""
    return {
        "test_qwk_mean": qwk,
        "decision_qualified.wait-time": float(qualified),
        "decision_auto.wait-time": float(auto),
        "decision_submissions.wait-time": float(total),
        "decision_auto_share.wait-time": auto / total,
        "decision_false_awards.wait-time": float(false_awards),
        "decision_target.wait-time": 0.1,
    }


def register(metrics: dict[str, float], fingerprint: str = "test-split-1") -> str:
    """A registered version whose run logged these metrics: no training needed to judge it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    if not client.search_registered_models(f"name='{MODEL}'"):
        client.create_registered_model(MODEL)
    with mlflow.start_run() as run:
        mlflow.log_params({"scorer": "tfidf", "data.test.fingerprint": fingerprint})
        mlflow.log_metrics(metrics)
    version = client.create_model_version(MODEL, f"runs:/{run.info.run_id}/model", run.info.run_id)
    return str(version.version)


def champion() -> str:
    return next(v.version for v in list_versions(MODEL) if CHAMPION in v.aliases)


def test_promotion_refuses_a_better_qwk_that_costs_the_platform(tracking: str) -> None:
    assert promote(MODEL, register(decisions(auto=60, qwk=0.70))).promoted  # no champion yet

    fewer = promote(MODEL, register(decisions(auto=40, qwk=0.80)))  # 40/100 against 60/100
    assert not fewer.promoted and champion() == "1"
    (reason,) = fewer.reasons
    assert "auto-decides less of wait-time: 40.0% (40/100) against 60.0% (60/100)" in reason
    assert "Fisher's exact" in reason

    awards = promote(MODEL, register(decisions(auto=60, false_awards=3, qwk=0.80)))
    assert not awards.promoted and champion() == "1"
    assert awards.reasons == ["it makes more false awards on the test split: 3 against 2"]

    unqualified = promote(MODEL, register(decisions(auto=60, qualified=False, qwk=0.80)))
    assert not unqualified.promoted and champion() == "1"
    assert unqualified.reasons == ["it is not qualified to decide wait-time, where the champion is"]

    better = promote(MODEL, register(decisions(auto=70, false_awards=1, qwk=0.69)))
    assert better.promoted and champion() == better.candidate.version
    assert better.reasons == [
        "it auto-decides more: 70/100 against 60/100",
        "fewer false awards: 1 against 2",
    ]


def test_prescore_promote_prints_both_versions_side_by_side_and_why(tracking: str) -> None:
    promote(MODEL, register(decisions(auto=60, qwk=0.70)))
    register(decisions(auto=40, qwk=0.80))
    result = CliRunner().invoke(app, ["promote", "--model", MODEL], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "champion v1 against candidate v2" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("│ wait-time"))
    assert "yes / yes" in row and "60.0% (60/100)" in row and "40.0% (40/100)" in row
    assert "2 / 2" in row
    assert "prescore-promotion version 2 not promoted:" in result.output
    assert "auto-decides less of wait-time" in result.output


def test_a_lower_auto_share_within_sampling_noise_does_not_refuse() -> None:
    better, reasons = judge(decisions(auto=57, qwk=0.80), decisions(auto=60, qwk=0.70))
    assert better and reasons == ["test_qwk_mean is higher by 0.1000"]


def test_an_identical_retrain_leaves_the_champion_where_it_is() -> None:
    better, reasons = judge(decisions(auto=60), decisions(auto=60))
    assert not better and reasons[0].startswith("it is no better: auto decisions 60/100")


def test_runs_without_decision_counts_are_compared_on_qwk_alone() -> None:
    older = {"test_qwk_mean": 0.70, "decision_auto_share.wait-time": 0.6}
    better, reasons = judge(decisions(auto=10, qwk=0.72), older)
    assert better
    assert reasons == [
        "the champion logged no decision counts (trained before they were), so test_qwk_mean "
        "alone decides: it is higher by 0.0200"
    ]
    assert not judge({"test_qwk_mean": 0.69}, older)[0]


def test_a_credential_the_candidate_no_longer_decides_counts_as_lost_qualification() -> None:
    both = decisions(auto=60) | {
        key.replace("wait-time", "feedback"): value
        for key, value in decisions(auto=30, false_awards=0).items()
        if key.startswith("decision_")
    }
    better, reasons = judge(decisions(auto=90, false_awards=0), both)
    assert not better
    assert reasons == ["it is not qualified to decide feedback, where the champion is"]
