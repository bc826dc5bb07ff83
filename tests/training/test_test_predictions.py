"""Per-item test predictions and errors on the scale's values, from training and evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from prescore.cli import app
from prescore.eval.evaluate import PREDICTION_COLUMNS
from prescore.models.registry import configure_tracking
from prescore.training.config import load_config
from prescore.training.run import train
from tests.conftest import evidence_row, write_csv
from tests.training.test_train import write_config

runner = CliRunner()
WIDE = {"COLUMNS": "250"}


@pytest.fixture
def config(tmp_path: Path, rubric_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    configure_tracking()
    rows = [evidence_row(n, submission_id=f"s{n // 2}") for n in range(160)]
    for row in rows:
        row["text"] += f" Overall: {row['final_level']} {row['final_level']}."
    write_csv(tmp_path / "evidence.csv", rows, [*rows[0]])
    return write_config(tmp_path, {"kind": "tfidf", "params": {"min_df": 1}})


def check_predictions(table: pd.DataFrame, metrics: dict[str, float]) -> None:
    assert list(table.columns) == PREDICTION_COLUMNS and len(table) > 0
    assert "text" not in table.columns
    assert table["route"].isin(["auto", "human"]).all()
    assert table["submission_id"].astype(str).str.startswith("s").all()
    for key, rows in table.groupby(["credential_id", "criterion_id"]):
        name = ".".join(key)
        errors = rows["level_value"] - rows["human_value"]
        expected = rows["expected_value"] - rows["human_value"]
        assert metrics[f"test_rmse.{name}"] == pytest.approx(np.sqrt(np.mean(errors**2)))
        assert metrics[f"test_mae.{name}"] == pytest.approx(np.mean(np.abs(errors)))
        assert metrics[f"test_rmse_expected.{name}"] == pytest.approx(np.sqrt(np.mean(expected**2)))
        assert metrics[f"test_mae_expected.{name}"] == pytest.approx(np.mean(np.abs(expected)))


def test_training_logs_per_item_test_predictions_and_value_errors(config: Path) -> None:
    result = train(load_config(config))
    assert result is not None
    run = MlflowClient().get_run(result.run_id)
    folder = Path(
        mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="evaluation")
    )
    table = pd.read_csv(folder / "test_predictions.csv")
    check_predictions(table, run.data.metrics)
    report = (folder / "evaluation.md").read_text()
    assert "## Error on the scale's values" in report and "RMSE expected" in report


def test_evaluate_and_untracked_runs_write_the_same_table(config: Path, tmp_path: Path) -> None:
    untracked = runner.invoke(
        app,
        ["train", "--config", str(config), "--no-track", "--report", str(tmp_path / "r")],
        env=WIDE,
    )
    assert untracked.exit_code == 0, untracked.output
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    check_predictions(pd.read_csv(tmp_path / "r" / "test_predictions.csv"), metrics)

    assert (trained := train(load_config(config))) is not None
    model = f"{trained.model_name}@{trained.version}"
    out = str(tmp_path / "e")
    arguments = ["evaluate", "--model", model, "--config", str(config), "--out", out]
    evaluated = runner.invoke(app, arguments, env=WIDE)
    assert evaluated.exit_code == 0, evaluated.output
    runs = MlflowClient().search_runs(
        experiment_ids=[e.experiment_id for e in MlflowClient().search_experiments()],
        filter_string="tags.`prescore.evaluates` != ''",
    )
    assert len(runs) == 1
    logged = {a.path for a in MlflowClient().list_artifacts(runs[0].info.run_id, "evaluation")}
    assert "evaluation/test_predictions.csv" in logged
    table = pd.read_csv(tmp_path / "e" / "prescore-tiny-1" / "test_predictions.csv")
    check_predictions(table, runs[0].data.metrics)
