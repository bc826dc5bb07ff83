"""docs/own-export.md, the "bring your own export" walk, run as written: its rubric, config
and commands on a generated file of the same shape, through check, train, promote, predict
and serve."""

from __future__ import annotations

import csv
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from prescore.cli import app
from prescore.serving.client import ScoringClient
from tests.serving.conftest import Registry, running_service

pytestmark = pytest.mark.slow  # walks the page against a running service

WALK = Path(__file__).resolve().parent.parent / "docs" / "own-export.md"
KEY = "walk-key-5c1e"
EVIDENCE_CUES = [
    "nothing noted",
    "one answer noted",
    "several answers quoted",
    "every answer quoted",
]
CHANGE_CUES = ["no change", "a vague change", "a concrete change with a reason"]


def walk_section() -> str:
    return WALK.read_text(encoding="utf-8")


def blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def write_export(folder: Path, header: list[str], submissions: int) -> None:
    """Evidence in the walk's columns whose words follow the levels, so a model can learn."""
    rows = []
    for n in range(submissions):
        evidence, change = n % 4, (n // 4) % 3
        text = (
            f"Lesson {n}: I waited after questions and {EVIDENCE_CUES[evidence]}; "
            f"next time {CHANGE_CUES[change]}. Students {n % 7} and {n % 5} spoke."
        )
        for criterion, level in (("evidence", evidence), ("change", change)):
            rows.append(
                {
                    "id": f"{n}-{criterion}",
                    "educator_id": f"ed-{n:03d}",
                    "submission_id": f"ed-{n:03d}-a",
                    "credential_id": "reflect",
                    "criterion_id": criterion,
                    "evidence_type": "reflection",
                    "text": text,
                    "consent_to_train": "yes",
                    "final_level": level,
                }
            )
    with (folder / "evidence.csv").open("w", newline="", encoding="utf-8") as sink:
        writer = csv.DictWriter(sink, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    new = [{k: v for k, v in row.items() if k != "final_level"} for row in rows[:20]]
    pd.DataFrame(new).to_csv(folder / "new.csv", index=False)


def test_the_readme_walk_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    section = walk_section()
    rubric, config = blocks(section, "yaml")
    header = blocks(section, "csv")[0].splitlines()[0].split(",")
    commands = [
        shlex.split(line.split("#")[0])
        for line in blocks(section, "bash")[0].splitlines()
        if line.strip()
    ]
    assert [c[:2] for c in commands] == [
        ["prescore", "data"],
        ["prescore", "train"],
        ["prescore", "promote"],
        ["prescore", "predict"],
        ["prescore", "serve"],
    ]
    (tmp_path / "rubrics").mkdir()
    (tmp_path / "rubrics" / "reflect.yaml").write_text(rubric, encoding="utf-8")
    (tmp_path / "reflect.yaml").write_text(config, encoding="utf-8")
    write_export(tmp_path, header, 240)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)  # paths in the walk are relative to its folder
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    runner = CliRunner()
    for command in commands[:4]:
        result = runner.invoke(app, command[1:], env={"COLUMNS": "250"})
        assert result.exit_code == 0, (command, result.output)
        assert "Traceback" not in result.output
        if command[1] == "promote":
            assert "promoted to champion" in result.output
    scored = pd.read_csv(tmp_path / "scored.csv", dtype=str, keep_default_na=False)
    assert len(scored) == 20 and {"level", "expected_value", "decision"} <= set(scored.columns)

    serve = commands[4]
    model = serve[serve.index("--model") + 1]
    settings = {"PRESCORE_MODEL": model, "PRESCORE_API_KEYS": KEY}
    registry = Registry(tmp_path, uri)
    items = pd.read_csv(tmp_path / "new.csv", dtype=str).to_dict("records")
    wanted = ("submission_id", "credential_id", "criterion_id", "evidence_type", "text")
    (tmp_path / "service").mkdir()
    with running_service(registry, tmp_path / "service", settings) as (url, _):
        reply = ScoringClient(url, KEY).score([{k: i[k] for k in wanted} for i in items])
    assert reply.status == 200, reply.body
    for row, served in zip(scored.to_dict("records"), reply.body["scores"], strict=True):
        assert row["level"] == served["level"] and row["route"] == served["route"]
        assert float(row["confidence"]) == pytest.approx(served["confidence"])
    decided = {d["submission_id"]: d for d in reply.body["submissions"]}
    for row in scored.to_dict("records"):
        assert row["decision"] == decided[row["submission_id"]]["decision"]
        assert float(row["p_earned"]) == pytest.approx(decided[row["submission_id"]]["p_earned"])
