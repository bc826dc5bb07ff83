"""`prescore data check` on broken and good files: all problems at once, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prescore.cli import app
from prescore.data.load import DataSource, load_evidence
from prescore.data.problems import InputError, Problem
from tests.conftest import COLUMNS, evidence_row, write_csv

runner = CliRunner()


def problems_of(path: Path, **source: object) -> list[Problem]:
    with pytest.raises(InputError) as caught:
        load_evidence(DataSource(path=path, **source))
    return caught.value.problems


def where(problems: list[Problem]) -> set[tuple[int | None, str | None]]:
    return {(p.row, p.field) for p in problems}


def broken_csv(folder: Path) -> Path:
    rows = [evidence_row(n) for n in range(8)]
    rows[1]["final_level"] = "Expert"  # not a level
    rows[2]["text"] = ""
    rows[3]["text"] = "   \n\t "
    rows[4]["id"] = rows[0]["id"]  # duplicate id
    rows[5]["text"] = "x" * 5_000_000  # 5 MB
    rows[6]["credential_id"] = "no-such-credential"
    rows[7]["consent_to_train"] = "maybe"
    path = write_csv(folder / "broken.csv", rows)
    # a byte that is not UTF-8 inside the text of the first record
    raw = path.read_bytes().replace(b"Evidence number 0:", b"Evidence number 0\x9d:", 1)
    path.write_bytes(raw)
    return path


def test_every_problem_in_a_broken_file_is_reported_with_row_and_field(rubric_dir: Path) -> None:
    problems = problems_of(broken_csv(rubric_dir.parent))
    assert where(problems) == {
        (1, "text"),  # not UTF-8
        (2, "final_level"),
        (3, "text"),
        (4, "text"),
        (5, "id"),
        (6, "text"),
        (7, "credential_id"),
        (8, "consent_to_train"),
    }
    messages = {p.row: p.message for p in problems}
    assert "0x9d" in messages[1] and "UTF-8" in messages[1]
    assert "'Expert' is not on the rubric" in messages[2]
    assert "whitespace" in messages[3] and "whitespace" in messages[4]
    assert "first at row 1" in messages[5]
    assert "5,000,000 characters" in messages[6]
    assert "unknown credential" in messages[7]
    assert "'maybe' is not yes/no" in messages[8]


def test_check_command_prints_a_table_and_exits_non_zero(rubric_dir: Path) -> None:
    result = runner.invoke(
        app, ["data", "check", str(broken_csv(rubric_dir.parent))], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 1
    assert "8 problem(s)" in result.output
    assert "Traceback" not in result.output
    assert "credential_id" in result.output and "consent_to_train" in result.output


def test_missing_columns_are_reported_once_for_the_file(tmp_path: Path, rubric_dir: Path) -> None:
    columns = [
        c
        for c in COLUMNS
        if c not in ("educator_id", "text", "final_level", "rater1_level", "rater2_level")
    ]
    path = write_csv(tmp_path / "evidence.csv", [evidence_row(n) for n in range(3)], columns)
    problems = problems_of(path)
    assert where(problems) == {(None, "educator_id"), (None, "text"), (None, "final_level")}


def test_rows_with_a_wrong_number_of_fields_are_named(tmp_path: Path, rubric_dir: Path) -> None:
    path = write_csv(tmp_path / "evidence.csv", [evidence_row(n) for n in range(3)])
    lines = path.read_text().splitlines()
    lines[2] += ",surplus"
    path.write_text("\n".join(lines) + "\n")
    assert where(problems_of(path)) == {(2, None)}


def test_unknown_criterion_and_level_from_a_second_rater(rubric_dir: Path) -> None:
    rows = [
        evidence_row(0, criterion_id="questioning"),
        evidence_row(1, rater2_level="9", rater2_kind="robot"),
    ]
    problems = problems_of(write_csv(rubric_dir.parent / "e.csv", rows))
    assert where(problems) == {(1, "criterion_id"), (2, "scores[2].rater_kind")}
    rows = [evidence_row(1, rater2_level="9")]
    assert where(problems_of(write_csv(rubric_dir.parent / "e.csv", rows))) == {
        (1, "scores[2].level")
    }


def test_good_file_prints_counts_per_credential_criterion_level_and_split(good_csv: Path) -> None:
    result = runner.invoke(app, ["data", "check", str(good_csv)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "60 valid records" in result.output
    assert "Evidence by criterion and split" in result.output
    assert "Final levels by criterion and split" in result.output
    assert "Proficient" in result.output and "reflection" in result.output


def test_missing_file_and_wrong_type_are_clear(tmp_path: Path, rubric_dir: Path) -> None:
    assert "no such file" in problems_of(tmp_path / "nope.csv")[0].message
    (tmp_path / "evidence.xlsx").write_bytes(b"PK")
    assert "unsupported file type" in problems_of(tmp_path / "evidence.xlsx")[0].message
    result = runner.invoke(app, ["data", "check", str(tmp_path / "nope.csv")])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_json_lines_with_nested_scores_and_groups(tmp_path: Path, rubric_dir: Path) -> None:
    records = []
    for n in range(4):
        row = evidence_row(n)
        records.append(
            {
                **{k: v for k, v in row.items() if not k.startswith(("rater", "group_"))},
                "id": n,  # ids exported as numbers are still ids
                "consent_to_train": True,
                "scores": [{"rater_id": "a", "rater_kind": "expert", "level": row["final_level"]}],
                "groups": {"ell": "yes"},
            }
        )
    path = tmp_path / "evidence.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\nnot json\n")
    assert where(problems_of(path)) == {(5, None)}
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    evidence = load_evidence(DataSource(path=path))
    everything = [row for split in evidence.splits.values() for row in split.to_dict("records")]
    assert sorted(row["id"] for row in everything) == ["0", "1", "2", "3"]
    assert {row["group_ell"] for row in everything} == {"yes"}
    assert all(len(row["scores"]) == 1 for row in everything)


def test_parquet_is_read_like_csv(good_csv: Path) -> None:
    import pandas as pd

    parquet = good_csv.with_suffix(".parquet")
    pd.read_csv(good_csv, dtype=str).to_parquet(parquet)
    from_csv = load_evidence(DataSource(path=good_csv))
    from_parquet = load_evidence(DataSource(path=parquet))
    for split in from_csv.splits:
        assert from_csv.splits[split]["id"].tolist() == from_parquet.splits[split]["id"].tolist()
        assert (
            from_csv.splits[split]["label"].tolist() == from_parquet.splits[split]["label"].tolist()
        )
