"""Training on evidence the base model cannot read warns: at training, in the report, in the
model card."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from prescore.cli import app
from tests.conftest import evidence_row, write_csv
from tests.models.test_language import CZECH


@pytest.mark.slow
def test_czech_evidence_on_an_english_encoder_warns_in_training_report_and_model_card(
    tmp_path: Path, rubric_dir: Path, tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prescore.models.registry import configure_tracking
    from prescore.serving.scoring import ScoringModel

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    configure_tracking()
    rows = [evidence_row(n, text=f"{CZECH[n % 3]} Hodnocení {n}.") for n in range(120)]
    write_csv(tmp_path / "evidence.csv", rows)
    scorer = {"kind": "embeddings", "params": {"base_model": str(tiny_encoder)}}
    config = tmp_path / "czech.yaml"
    config.write_text(
        yaml.safe_dump({"name": "czech", "data": {"path": "evidence.csv"}, "scorer": scorer})
    )
    runner = CliRunner()
    tracked = runner.invoke(app, ["train", "--config", str(config)], env={"COLUMNS": "250"})
    assert tracked.exit_code == 0, tracked.output
    assert "Warning" in tracked.output and "base model" in tracked.output
    untracked = runner.invoke(
        app,
        ["train", "--config", str(config), "--no-track", "--report", str(tmp_path / "r")],
        env={"COLUMNS": "250"},
    )
    assert untracked.exit_code == 0, untracked.output
    assert "Warning" in untracked.output
    report = (tmp_path / "r" / "evaluation.md").read_text()
    assert "## Language of the evidence" in report and "**Warning:**" in report
    card = ScoringModel.from_registry("prescore-czech", "1").card()
    assert card.language_warning is not None and "base model" in card.language_warning
