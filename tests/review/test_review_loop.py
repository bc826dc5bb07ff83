"""The loop closes without manual steps: decided submissions -> `prescore export-reviews` (the
evidence and its rubrics, rebuilt from the registered version) -> `prescore train` on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from prescore.cli import app
from prescore.review.queue import ReviewQueue
from prescore.review.verdicts import Verdict
from tests.conftest import RUBRIC
from tests.review.test_queue import review
from tests.serving.conftest import MODEL, Registry

PLANNING = ["Not yet", "Developing", "Proficient"]


@pytest.mark.slow
def test_decided_submissions_export_with_rubrics_and_train_straight_away(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = f"sqlite:///{tmp_path / 'review.db'}"
    queue = ReviewQueue(database)
    ids = queue.enqueue(
        [review(n, model_name=MODEL, model_version="1", consent=n % 10 != 0) for n in range(120)]
    )
    for n, entry_id in enumerate(ids):
        levels = {"planning": PLANNING[n % 3], "reflection": str(n % 4)}
        decision = "earned" if n % 3 == 2 and n % 4 >= 2 else "not_yet"
        queue.decide(entry_id, Verdict(levels, decision, f"feedback {n}"), "ana", ["wait-time"], 1)

    out = tmp_path / "export" / "reviews.jsonl"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    exported = CliRunner().invoke(
        app, ["export-reviews", "--out", str(out), "--review-db", database]
    )
    assert exported.exit_code == 0, exported.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 * 108  # 12 submissions without consent stay out
    assert all(not r["submission_id"].endswith("0") for r in records)
    rubric = yaml.safe_load((tmp_path / "export" / "rubrics" / "wait-time.yaml").read_text())
    criteria = {c["id"]: c for c in rubric["criteria"]}
    assert [level["label"] for level in criteria["planning"]["levels"]] == PLANNING
    assert criteria["reflection"]["met_level"] == RUBRIC["criteria"][1]["met_level"]  # type: ignore[index]
    assert rubric["stakes"] == "low" and rubric["award"] == {"rule": "all_met", "count": None}

    config = tmp_path / "retrain.yaml"
    scorer = {"kind": "tfidf", "params": {"min_df": 1}}
    config.write_text(
        yaml.safe_dump({"name": "retrain", "data": {"path": str(out)}, "scorer": scorer})
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    trained = CliRunner().invoke(app, ["train", "--config", str(config)])
    assert trained.exit_code == 0, trained.output
    assert "prescore-retrain version 1" in trained.output


def test_an_export_whose_model_version_is_gone_writes_nothing(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = f"sqlite:///{tmp_path / 'review.db'}"
    queue = ReviewQueue(database)
    first, second = queue.enqueue(
        [
            review(0, model_name=MODEL, model_version="1"),
            review(1, model_name=MODEL, model_version="99"),
        ]
    )
    for entry_id in (first, second):
        verdict = Verdict({"planning": "Proficient", "reflection": "3"}, "earned", "")
        queue.decide(entry_id, verdict, "ana", ["wait-time"], 1)
    out = tmp_path / "reviews.jsonl"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    result = CliRunner().invoke(app, ["export-reviews", "--out", str(out), "--review-db", database])
    assert result.exit_code == 1 and "Nothing exported" in result.output
    assert "Essay" not in result.output  # evidence never reaches messages
    assert not out.exists() and not (tmp_path / "rubrics").exists()


def test_evaluate_reviews_reports_and_warns_on_audited_decisions_above_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prescore.training_cli import add_reviewer_agreement

    database = f"sqlite:///{tmp_path / 'review.db'}"
    queue = ReviewQueue(database)
    ids = queue.enqueue([review(n, audit=True) for n in range(4)] + [review(9)])
    for n, entry_id in enumerate(ids):
        suggested = queue.get(entry_id, ["wait-time"]).decision  # type: ignore[union-attr]
        overturned = "earned" if suggested == "not_yet" else "not_yet"
        decision = overturned if n in (0, 4) else suggested  # 1 of 4 audits: 25% > 10%
        met = "3" if decision == "earned" else "1"  # levels that agree with the decision
        verdict = Verdict({"planning": "Proficient", "reflection": met}, decision, "more")
        queue.decide(entry_id, verdict, "ana", ["wait-time"], 1)
    report = tmp_path / "evaluation.md"
    report.write_text("# report\n")
    add_reviewer_agreement(report, database, min_qwk=0.7)
    text = report.read_text()
    assert "## Audited auto decisions" in text
    assert "| wait-time | 3 | 4 | 1 |" in text and "**above target, not yet significant" in text
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert "Audit:" in printed and "overturned 1 of 4 auto decisions (25.0%)" in printed
    assert "binomial p = 0.34" in printed  # 1 - 0.9**4: four audits cannot show much yet
    assert "Essay" not in printed  # evidence never reaches the output
