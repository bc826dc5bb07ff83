"""Level cells read one way: as labels or as values, never a silent guess between the two."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from prescore.cli import app
from prescore.data.load import DataSource, load_evidence
from prescore.data.problems import InputError
from prescore.data.rubrics import load_rubrics
from tests.conftest import COLUMNS, evidence_row, write_csv

runner = CliRunner()
WIDE = {"COLUMNS": "250"}

# A scale where 1 is best: label "1" is the highest level, value 1 the lowest.
ONE_IS_BEST = {
    "id": "ranked",
    "title": "Ranked by supervisors",
    "stakes": "low",
    "criteria": [
        {
            "id": "rank",
            "title": "Supervisor's rank",
            "levels": [
                {"value": 1, "label": "3"},
                {"value": 2, "label": "2"},
                {"value": 3, "label": "1"},
            ],
            "met_level": "2",
        }
    ],
}


def ranked_csv(folder: Path, cells: list[str], rater_cells: list[str] | None = None) -> Path:
    rubrics = folder / "rubrics"
    rubrics.mkdir(exist_ok=True)
    (rubrics / "ranked.yaml").write_text(yaml.safe_dump(ONE_IS_BEST), encoding="utf-8")
    rows = []
    for n, cell in enumerate(cells):
        rater = rater_cells[n] if rater_cells else ""
        rows.append(
            evidence_row(
                n,
                credential_id="ranked",
                criterion_id="rank",
                final_level=cell,
                rater1_level=rater,
                rater2_level="",
            )
        )
    return write_csv(folder / "ranked.csv", rows, COLUMNS)


def labels_of(path: Path, **source: object) -> dict[str, int]:
    evidence = load_evidence(DataSource(path=path, **source))
    return {
        item: label
        for split in evidence.splits.values()
        for item, label in zip(split["id"], split["label"], strict=True)
    }


def test_a_cell_read_two_ways_is_an_error_naming_row_readings_and_fix(tmp_path: Path) -> None:
    # "1" is label "1" (the best level) and value 1 (the worst); a float export writes "1.0"
    path = ranked_csv(tmp_path, ["1", "1.0", "2", "3.0"])
    with pytest.raises(InputError) as caught:
        load_evidence(DataSource(path=path))
    problems = caught.value.problems
    assert {(p.row, p.field) for p in problems} == {
        (1, "final_level"),
        (2, "final_level"),
        (4, "final_level"),
    }
    message = problems[0].message
    assert "ambiguous" in message and "'1'" in message and "'3'" in message
    assert "levels_as: label" in message and "levels_as: value" in message
    assert "--levels-as" in message


def test_levels_as_reads_every_cell_the_same_way_whether_written_as_int_or_float(
    tmp_path: Path,
) -> None:
    path = ranked_csv(tmp_path, ["1", "1.0", "3", "3.0"])
    as_labels = labels_of(path, levels_as="label")
    assert as_labels == {"item-0": 2, "item-1": 2, "item-2": 0, "item-3": 0}
    as_values = labels_of(path, levels_as="value")
    assert as_values == {"item-0": 0, "item-1": 0, "item-2": 2, "item-3": 2}


def test_rater_levels_follow_the_same_rule(tmp_path: Path) -> None:
    path = ranked_csv(tmp_path, ["", ""], rater_cells=["1", "1.0"])
    with pytest.raises(InputError) as caught:
        load_evidence(DataSource(path=path))
    assert {(p.row, p.field) for p in caught.value.problems} == {
        (1, "scores[1].level"),
        (2, "scores[1].level"),
    }
    assert labels_of(path, levels_as="label") == {"item-0": 2, "item-1": 2}


def test_a_scale_whose_labels_are_its_values_needs_no_setting(good_csv: Path) -> None:
    # conftest's reflection criterion: levels [0, 1, 2, 3], labels equal to values
    assert len(labels_of(good_csv)) == 60


def test_data_check_takes_levels_as(tmp_path: Path) -> None:
    path = ranked_csv(tmp_path, ["1", "1.0", "2", "3.0"])
    result = runner.invoke(app, ["data", "check", str(path)], env=WIDE)
    assert result.exit_code == 1 and "ambiguous" in result.output
    result = runner.invoke(app, ["data", "check", str(path), "--levels-as", "label"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "4 valid records" in result.output


def write_rubric(folder: Path, met_level: object, levels: object = (1, 2, 3, 4, 5)) -> Path:
    folder.mkdir(exist_ok=True)
    rubric = {
        "id": "essays",
        "title": "Essays",
        "stakes": "low",
        "criteria": [
            {"id": c, "title": c, "levels": list(levels), "met_level": met_level}
            for c in ("ideas", "organization", "style")
        ],
    }
    # written by hand, so the number is unquoted as a user writes it
    text = yaml.safe_dump(rubric).replace(f"met_level: '{met_level}'", f"met_level: {met_level}")
    (folder / "essays.yaml").write_text(text, encoding="utf-8")
    return folder


def test_met_level_may_be_a_number(tmp_path: Path) -> None:
    folder = write_rubric(tmp_path / "rubrics", 3.0)
    assert "met_level: 3.0" in (folder / "essays.yaml").read_text()
    credential = load_rubrics(folder)["essays"]
    assert [c.met_level for c in credential.criteria] == ["3", "3", "3"]
    assert [c.met_index for c in credential.criteria] == [2, 2, 2]


def test_level_labels_may_be_numbers(tmp_path: Path) -> None:
    levels = [{"value": v, "label": 6 - v} for v in (1, 2, 3, 4, 5)]  # 1 is best
    folder = write_rubric(tmp_path / "rubrics", '"2"', levels)
    criterion = load_rubrics(folder)["essays"].criteria[0]
    assert criterion.labels == ["5", "4", "3", "2", "1"]
    assert criterion.met_index == 3  # quoted, met_level is the label "2"


def test_a_met_level_off_the_scale_is_one_clear_error_per_field(tmp_path: Path) -> None:
    folder = write_rubric(tmp_path / "rubrics", 7.0)
    with pytest.raises(InputError) as caught:
        load_rubrics(folder)
    problems = caught.value.problems
    assert [p.field for p in problems] == [f"criteria.{n}.met_level" for n in range(3)]
    assert all(p.file.endswith("essays.yaml") for p in problems)
    assert "7.0" in problems[0].message and "not one of the levels" in problems[0].message


def test_an_ambiguous_numeric_met_level_says_how_to_write_it(tmp_path: Path) -> None:
    levels = [{"value": v, "label": str(6 - v)} for v in (1, 2, 3, 4, 5)]
    folder = write_rubric(tmp_path / "rubrics", 2, levels)
    with pytest.raises(InputError) as caught:
        load_rubrics(folder)
    problem = caught.value.problems[0]
    assert problem.field == "criteria.0.met_level"
    assert "ambiguous" in problem.message and 'met_level: "2"' in problem.message
