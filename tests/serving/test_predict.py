"""`prescore predict`: a file scored offline gets the answers the service gives."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from prescore.cli import app
from prescore.serving.schemas import EvidenceToScore
from prescore.serving.scoring import ScoringModel
from tests.conftest import COLUMNS, evidence_row, write_csv
from tests.serving.conftest import MODEL, Registry

runner = CliRunner()


def evidence_file(folder: Path, count: int = 40) -> Path:
    rows = [evidence_row(n, submission_id=f"s{n // 2}") for n in range(count)]
    return write_csv(folder / "to-score.csv", rows, [*COLUMNS, "submission_id"])


def invoke(registry: Registry, *arguments: str) -> object:
    environment = {"MLFLOW_TRACKING_URI": registry.tracking_uri, "COLUMNS": "250"}
    return runner.invoke(app, ["predict", *arguments], env=environment)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_file_scored_offline_matches_the_scoring_core(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    source = evidence_file(tmp_path)
    target = tmp_path / f"scored{suffix}"
    result = invoke(
        registry, "--model", f"{MODEL}@champion", "--input", str(source), "--output", str(target)
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "Evidence number" not in result.output  # type: ignore[attr-defined]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    if suffix == ".csv":
        scored = pd.read_csv(target, dtype=str, keep_default_na=False)
    elif suffix == ".parquet":
        scored = pd.read_parquet(target)
    else:
        scored = pd.read_json(target, lines=True, dtype=False)
    source_rows = pd.read_csv(source, dtype=str, keep_default_na=False)
    assert len(scored) == len(source_rows)
    assert list(scored["id"].astype(str)) == list(source_rows["id"])

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    model = ScoringModel.from_registry(MODEL, "champion")
    items = [
        EvidenceToScore(
            **{
                c: str(r[c])
                for c in ("submission_id", "credential_id", "criterion_id", "evidence_type", "text")
            }
        )
        for r in source_rows.to_dict("records")
    ]
    expected, decided = model.score_submissions(items)
    decisions = {d.submission_id: d for d in decided}
    for (_, row), want in zip(scored.iterrows(), expected, strict=True):
        probabilities = row["probabilities"]
        if isinstance(probabilities, str):
            probabilities = json.loads(probabilities)
        assert row["level"] == want.level and float(row["confidence"]) == pytest.approx(
            want.confidence
        )
        assert probabilities == pytest.approx({p.label: p.probability for p in want.probabilities})
        assert float(row["expected_value"]) == pytest.approx(
            sum(p.probability * p.value for p in want.probabilities)
        )
        assert row["route"] == want.route.value
        decision = decisions[str(row["submission_id"])]
        assert (
            row["decision"] == decision.decision and row["decision_route"] == decision.route.value
        )
        assert float(row["p_earned"]) == pytest.approx(decision.p_earned)


def test_a_bad_input_file_lists_its_problems_and_writes_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    rows = [evidence_row(n, submission_id=f"s{n // 2}") for n in range(6)]
    rows[1]["text"] = "   "
    rows[3]["criterion_id"] = "no-such-criterion"
    source = write_csv(tmp_path / "bad.csv", rows, [*COLUMNS, "submission_id"])
    target = tmp_path / "out.csv"
    result = invoke(registry, "--model", MODEL, "--input", str(source), "--output", str(target))
    output = " ".join(result.output.split())  # type: ignore[attr-defined]
    assert result.exit_code == 1 and "Traceback" not in output  # type: ignore[attr-defined]
    assert "empty or whitespace" in output and not target.exists()
    rows[1]["text"] = "Evidence again."
    write_csv(source, rows, [*COLUMNS, "submission_id"])
    result = invoke(registry, "--model", MODEL, "--input", str(source), "--output", str(target))
    output = " ".join(result.output.split())  # type: ignore[attr-defined]
    assert result.exit_code == 1 and "does not score" in output and not target.exists()
    missing = write_csv(tmp_path / "no-ids.csv", rows, COLUMNS)  # no submission_id column
    result = invoke(registry, "--model", MODEL, "--input", str(missing), "--output", str(target))
    assert result.exit_code == 1 and "submission_id" in result.output  # type: ignore[attr-defined]


def test_a_folder_where_the_output_goes_is_refused_before_scoring(
    registry: Registry, tmp_path: Path
) -> None:
    rows = [evidence_row(n, submission_id=f"s{n // 2}") for n in range(4)]
    source = write_csv(tmp_path / "in.csv", rows, [*COLUMNS, "submission_id"])
    for folder in (tmp_path / "out.csv", tmp_path / "scores"):  # with a suffix, and without
        folder.mkdir()
        result = invoke(registry, "--model", MODEL, "--input", str(source), "--output", str(folder))
        output = " ".join(result.output.split())  # type: ignore[attr-defined]
        assert result.exit_code == 1 and "Traceback" not in output  # type: ignore[attr-defined]
        assert "is a folder: name the file to write" in output
        assert list(folder.iterdir()) == [] and [p.name for p in tmp_path.glob(".*")] == []


def test_a_missing_alias_names_the_next_command(registry: Registry, tmp_path: Path) -> None:
    source = evidence_file(tmp_path, 4)
    result = invoke(
        registry,
        "--model",
        f"{MODEL}@nope",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "o.csv"),
    )
    output = " ".join(result.output.split())  # type: ignore[attr-defined]
    assert result.exit_code == 1 and "prescore promote --model prescore-serve" in output
