"""One scoring core: POST /score, `prescore predict`, the evaluation report and the MLflow
pyfunc model give the same items the same levels, routes and decisions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import RUBRIC, evidence_row, write_csv

MODEL = "prescore-one-core"
KEY = "one-core-key-5d1f"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """A TF-IDF version trained on evidence whose texts name their level, two criteria per
    submission; (folder, tracking URI, run id). Its test split is what all four score."""
    from prescore.models.registry import configure_tracking
    from prescore.training.config import load_config
    from prescore.training.run import train

    folder = tmp_path_factory.mktemp("one-core")
    (folder / "rubrics").mkdir()
    (folder / "rubrics" / "wait-time.yaml").write_text(yaml.safe_dump(RUBRIC))
    # one rater: the decision's target is the configured one, not the raters' perfect agreement
    single = {"rater2_id": "", "rater2_kind": "", "rater2_level": ""}
    rows = [evidence_row(n, submission_id=f"s{n // 2}", **single) for n in range(600)]
    for row in rows[480:]:  # a submission of one criterion: incomplete, a human decides
        row["submission_id"] = f"solo-{row['id']}"
    for n, row in enumerate(rows):
        row["text"] += " Overall" + f" {row['final_level']}" * (1 + n % 2) + "."
    write_csv(folder / "evidence.csv", rows, [*rows[0]])
    config = folder / "one-core.yaml"
    scorer = {"kind": "tfidf", "params": {"min_df": 1}}
    # targets loose enough that a tiny model certifies thresholds: both routes are met
    loose = {"target_error": 0.4, "decision_target_error": 0.4, "confidence_level": 0.5}
    spec = {"name": "one-core", "data": {"path": "evidence.csv"}, "evaluation": loose}
    config.write_text(yaml.safe_dump({**spec, "scorer": scorer}))
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        configure_tracking()
        result = train(load_config(config))
        assert result is not None and result.version == "1"
        from mlflow.tracking import MlflowClient

        MlflowClient().set_registered_model_alias(MODEL, "champion", "1")
        yield folder, uri, result.run_id


@pytest.fixture
def tracking_of(trained: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    from prescore.models.registry import configure_tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained[1])
    configure_tracking()
    return trained[1]


def test_score_predict_evaluation_and_pyfunc_agree(
    trained: tuple[Path, str, str], tracking_of: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, _, run_id = trained
    report = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation"))
    evaluated = pd.read_csv(report / "test_predictions.csv", dtype={"id": str}).fillna("")
    source = pd.read_csv(folder / "evidence.csv", dtype=str, keep_default_na=False)
    test = source.set_index("id").loc[list(evaluated["id"])].reset_index()
    assert len(test) >= 10 and test["submission_id"].nunique() < len(test)  # whole submissions
    fields = ("submission_id", "credential_id", "criterion_id", "evidence_type", "text")
    items = [{f: row[f] for f in fields} for row in test.to_dict("records")]

    served = score_in_process(items, folder, monkeypatch)
    predicted = predict_file(test, folder)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL}/1").predict(
        test[["submission_id", "credential_id", "criterion_id", "text"]]
    )
    decided = {d["submission_id"]: d for d in served["submissions"]}
    answers = {
        "POST /score": [
            (
                s["level"],
                s["route"],
                decided[s["submission_id"]]["decision"],
                decided[s["submission_id"]]["route"],
            )
            for s in served["scores"]
        ],
        "prescore predict": same_columns(predicted),
        "evaluation report": same_columns(evaluated),
        "mlflow pyfunc": same_columns(pyfunc),
    }
    expected = answers["POST /score"]
    assert {route for _, route, _, _ in expected} == {"auto", "human"}  # items both ways
    assert {route for _, _, _, route in expected} == {"auto", "human"}  # and decisions
    for name, answer in answers.items():
        assert answer == expected, name
    p_earned = [decided[s["submission_id"]]["p_earned"] for s in served["scores"]]
    for table in (predicted, evaluated, pyfunc):
        assert table["p_earned"].astype(float).tolist() == pytest.approx(p_earned)
    # the pyfunc says which version answered, as /score does, and never returns the text
    assert set(pyfunc["model_version"]) == {"1"} and set(pyfunc["model_name"]) == {MODEL}
    assert "text" not in pyfunc.columns
    assert json.loads(pyfunc["probabilities"][0]) == {
        p["label"]: pytest.approx(p["probability"]) for p in served["scores"][0]["probabilities"]
    }


def same_columns(table: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    return [
        (str(r["level"]), r["route"], r["decision"], r["decision_route"])
        for r in table.to_dict("records")
    ]


def score_in_process(
    items: list[dict[str, Any]], folder: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """POST /score to the API in this process, the model inline, as `prescore serve` runs it."""
    from _bentoml_sdk.service import get_current_service
    from fastapi.testclient import TestClient

    from prescore.serving.service import Prescore, api

    monkeypatch.setenv("PRESCORE_MODEL", MODEL)
    monkeypatch.setenv("PRESCORE_MODEL_ALIAS", "champion")
    monkeypatch.setenv("PRESCORE_API_KEYS", KEY)
    monkeypatch.setenv("PRESCORE_REVIEW_DB", f"sqlite:///{folder / 'review.db'}")
    service = Prescore.inner()
    monkeypatch.setitem(api.dependency_overrides, get_current_service, lambda: service)
    reply = TestClient(api).post(
        "/score", json={"items": items}, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-prescore-model-version"] == "1"
    return dict(reply.json())


def predict_file(test: pd.DataFrame, folder: Path) -> pd.DataFrame:
    from prescore.cli import app

    source = write_csv(folder / "to-score.csv", test.to_dict("records"), list(test.columns))
    target = folder / "scored.csv"
    result = CliRunner().invoke(
        app,
        ["predict", "--model", f"{MODEL}@1", "--input", str(source), "--output", str(target)],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    return pd.read_csv(target, dtype={"level": str}, keep_default_na=False)


def test_a_registered_version_carries_its_policy_and_rubrics_and_is_fetched_once(
    tracking_of: str,
) -> None:
    from prescore.data.rubrics import read_rubric
    from prescore.models.registry import fetch
    from prescore.serving.scoring import ScoringModel

    first, again = fetch(MODEL, "1"), fetch(MODEL, "champion")
    assert first.folder == again.folder  # reloads reuse one copy
    assert sorted(p.name for p in first.folder.parent.iterdir()) == ["1"]  # no piles, no temp
    rubrics = first.rubrics()
    assert rubrics is not None and rubrics["wait-time"] == read_rubric(
        Path(first.artifacts / "rubrics" / "wait-time.yaml")
    )
    assert [c.id for c in rubrics["wait-time"].criteria] == ["planning", "reflection"]
    model = ScoringModel.from_registered(first)
    assert model.policy.decisions["wait-time"].criteria == ["planning", "reflection"]
