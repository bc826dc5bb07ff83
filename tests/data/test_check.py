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


def test_a_quote_left_open_is_a_problem_not_a_record_swallowed(
    tmp_path: Path, rubric_dir: Path
) -> None:
    """Unterminated, the quote ran on into the next record and merged it into this text:
    four records in, three read, no problem reported."""
    path = write_csv(tmp_path / "evidence.csv", [evidence_row(n) for n in range(4)])
    lines = path.read_text().splitlines()
    assert '"' not in lines[2]
    lines[2] = lines[2].replace("Evidence number 1:", '"Evidence number 1:')
    path.write_text("\n".join(lines) + "\n")
    (problem,) = problems_of(path)
    assert problem.row == 2 and "starts on line 3" in problem.message
    assert "a quote is missing" in problem.message
    result = runner.invoke(app, ["data", "check", str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_quoted_texts_may_hold_quotes_and_line_breaks(tmp_path: Path, rubric_dir: Path) -> None:
    rows = [evidence_row(n) for n in range(4)]
    rows[1]["text"] = 'She said "wait",\nthen waited; "twice".'
    evidence = load_evidence(DataSource(path=write_csv(tmp_path / "evidence.csv", rows)))
    texts = {t for split in evidence.splits.values() for t in split["text"]}
    assert rows[1]["text"] in texts


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


def test_check_with_a_config_shows_the_split_groups_and_counts_that_training_uses(
    tmp_path: Path, good_csv: Path
) -> None:
    from prescore.training.config import load_config

    config = tmp_path / "x.yaml"
    config.write_text(
        "name: x\ndata:\n  path: evidence.csv\n"
        "  split: {train: 0.5, calibration: 0.2, test: 0.3, seed: 7}\n"
    )
    evidence = load_evidence(load_config(config).data)
    default = load_evidence(DataSource(path=good_csv))
    assert len(evidence.splits["test"]) != len(default.splits["test"])  # the check must matter
    result = runner.invoke(app, ["data", "check", "--config", str(config)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for split, frame in evidence.splits.items():
        educators = frame["educator_id"].nunique()
        assert f"{split} {len(frame):,} items / {educators:,} educators" in result.output
    assert "train 0.5, calibration 0.2, test 0.3 by educator, seed 7" in result.output
    assert "group_gender" in result.output
    result = runner.invoke(app, ["data", "check", str(good_csv), "--config", str(config)])
    assert result.exit_code == 2 and "not both" in result.output


def test_group_fields_keep_their_values_as_written(tmp_path: Path, good_csv: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(good_csv, dtype=str)
    # a grade column with a gap: pandas holds it as floats, so Parquet stores 10.0
    frame["group_grade"] = [10, 11, None] * 20
    parquet = tmp_path / "evidence.parquet"
    frame.to_parquet(parquet)
    evidence = load_evidence(DataSource(path=parquet, rubrics=tmp_path / "rubrics"))
    grades = {g for split in evidence.splits.values() for g in split["group_grade"].dropna()}
    assert grades == {"10", "11"}
    result = runner.invoke(
        app,
        ["data", "check", str(parquet), "--rubrics", str(tmp_path / "rubrics")],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert "group_grade" in result.output and "10.0" not in result.output
