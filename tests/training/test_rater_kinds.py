"""Peers' levels never count as experts' silently: reviewed exports carry each rater's kind,
and `data.final_level_kinds: [expert]` trains on experts' final levels only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from pydantic import ValidationError
from typer.testing import CliRunner

from prescore.cli import app
from prescore.data.load import DataSource, final_level_kind, load_evidence, read_source
from prescore.data.review_export import RaterScore, ReviewedItem, write_reviews
from prescore.models.registry import configure_tracking
from prescore.training.config import load_config
from prescore.training.run import train
from tests.conftest import evidence_row, write_csv

EXPERT_ROWS = 120


@pytest.fixture
def evidence(tmp_path: Path, rubric_dir: Path) -> Path:
    """120 items an expert scored, then 80 that only peers scored; texts name their level."""
    rows = [evidence_row(n) for n in range(EXPERT_ROWS + 80)]
    for n, row in enumerate(rows):
        row["text"] += f" Overall: {row['final_level']} {row['final_level']}."
        if n >= EXPERT_ROWS:
            row["rater1_kind"] = "peer"
    return write_csv(tmp_path / "evidence.csv", rows)


def test_a_config_that_keeps_experts_only_trains_on_experts_final_levels(
    tmp_path: Path, evidence: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    configure_tracking()
    everything = load_evidence(DataSource(path=evidence))
    assert everything.report.final_level_kinds == {"expert": EXPERT_ROWS, "peer": 80}
    assert sum(len(split) for split in everything.splits.values()) == EXPERT_ROWS + 80

    config_path = tmp_path / "experts.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "name": "experts",
                "data": {"path": "evidence.csv", "final_level_kinds": ["expert"]},
                "scorer": {"kind": "tfidf", "params": {"min_df": 1}},
                "seed": 3,
            }
        )
    )
    config = load_config(config_path)
    experts = load_evidence(config.data)
    assert experts.report.left_out_by_kind == 80
    kept = [row for split in experts.splits.values() for row in split["scores"]]
    assert len(kept) == EXPERT_ROWS
    assert all(any(s["rater_kind"] == "expert" for s in scores) for scores in kept)

    checked = CliRunner().invoke(
        app, ["data", "check", "--config", str(config_path)], env={"COLUMNS": "250"}
    )
    assert checked.exit_code == 0, checked.output
    assert "Final levels by rater kind: expert 120, peer 80 (80 left out by" in checked.output

    result = train(config, config_path)
    assert result is not None and result.version == "1"
    params = MlflowClient().get_run(result.run_id).data.params
    assert params["data.final_level_kinds"] == "expert"
    sizes = sum(int(params[f"data.{name}.size"]) for name in ("train", "calibration", "test"))
    assert sizes == EXPERT_ROWS


def test_an_unknown_rater_kind_in_the_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="'expert' or 'peer'"):
        DataSource(path=tmp_path, final_level_kinds=["guru"])  # type: ignore[list-item]


def test_an_export_of_peer_and_expert_reviews_loads_with_their_kinds(
    tmp_path: Path, rubric_dir: Path
) -> None:
    def reviewed(n: int, scores: tuple[RaterScore, ...], level: str) -> ReviewedItem:
        return ReviewedItem(
            entry_id=n, submission_id=f"s{n}", educator_id=f"e{n}", credential_id="wait-time",
            criterion_id="planning", evidence_type="reflection", text=f"Essay {n}.",
            consent_to_train=True, decided_level=level, decided_by=scores[-1].rater_id,
            decided_at=None, model_version="1", suggested_level="Developing", scores=scores,
        )  # fmt: skip

    peers = (RaterScore("pia", "peer", "Developing"), RaterScore("pat", "peer", "Developing"))
    escalated = (
        RaterScore("pia", "peer", "Developing"),
        RaterScore("pat", "peer", "Proficient"),
        RaterScore("eve", "expert", "Proficient"),
    )
    out = tmp_path / "reviews.jsonl"
    write_reviews([reviewed(1, peers, "Developing"), reviewed(2, escalated, "Proficient")], out)
    first = json.loads(out.read_text().splitlines()[0])
    assert [s["rater_kind"] for s in first["scores"]] == ["peer", "peer"]
    assert (rubric_dir / "wait-time.yaml").is_file()  # rubrics/ beside the export
    _, items, _ = read_source(DataSource(path=out))
    assert [final_level_kind(item) for item in items] == ["peer", "expert"]
    assert [item.final_level for item in items] == [1, 2]
