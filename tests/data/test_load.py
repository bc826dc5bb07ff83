"""Consent, de-duplication and the educator-disjoint split."""

from __future__ import annotations

from pathlib import Path

from prescore.data.dedupe import drop_duplicates, normalise_text
from prescore.data.load import DataSource, load_evidence
from prescore.data.split import SplitConfig
from tests.conftest import evidence_row, write_csv


def all_ids(evidence) -> set[str]:  # type: ignore[no-untyped-def]
    return {i for split in evidence.splits.values() for i in split["id"]}


def test_evidence_without_consent_is_never_loaded_and_is_counted(
    tmp_path: Path, rubric_dir: Path
) -> None:
    rows = [evidence_row(n) for n in range(10)]
    rows[3]["consent_to_train"] = "no"
    rows[4]["consent_to_train"] = ""  # unrecorded consent is no consent
    rows[5]["consent_to_train"] = "false"
    evidence = load_evidence(DataSource(path=write_csv(tmp_path / "e.csv", rows)))
    assert evidence.report.without_consent == 3
    assert all_ids(evidence) == {f"item-{n}" for n in range(10)} - {"item-3", "item-4", "item-5"}


def test_exact_and_near_exact_repeats_are_dropped_per_criterion(
    tmp_path: Path, rubric_dir: Path
) -> None:
    rows = [evidence_row(n) for n in range(6)]
    rows.append(evidence_row(100, text=rows[0]["text"], criterion_id="planning"))  # exact copy
    near = "  " + rows[2]["text"].upper().replace(" ", "\n ") + "!!"
    rows.append(evidence_row(102, text=near, criterion_id="planning"))  # same words
    rows.append(
        evidence_row(101, text=rows[0]["text"], criterion_id="reflection")
    )  # other criterion
    evidence = load_evidence(DataSource(path=write_csv(tmp_path / "e.csv", rows)))
    assert evidence.report.exact_duplicates == 1
    assert evidence.report.near_duplicates == 1
    assert all_ids(evidence) == {f"item-{n}" for n in range(6)} | {"item-101"}
    kept = load_evidence(DataSource(path=tmp_path / "e.csv", dedupe=False))
    assert len(all_ids(kept)) == len(rows)


def test_normalise_text_folds_case_space_punctuation_and_unicode_forms() -> None:
    assert normalise_text("Wait\u00a0time,  “really”!") == normalise_text("wait time really")
    assert normalise_text("wait time") != normalise_text("wait times")
    assert drop_duplicates([]).kept == []


def test_split_keeps_each_educator_on_one_side_and_is_reproducible(
    tmp_path: Path, rubric_dir: Path
) -> None:
    path = write_csv(tmp_path / "e.csv", [evidence_row(n) for n in range(400)])
    first = load_evidence(DataSource(path=path))
    second = load_evidence(DataSource(path=path))
    educators = {name: set(split["educator_id"]) for name, split in first.splits.items()}
    assert not educators["train"] & educators["calibration"]
    assert not educators["train"] & educators["test"]
    assert not educators["calibration"] & educators["test"]
    for name in first.splits:
        assert first.splits[name]["id"].tolist() == second.splits[name]["id"].tolist()
    sizes = {name: len(split) for name, split in first.splits.items()}
    assert 0.55 < sizes["train"] / 400 < 0.85 and sizes["test"] > 0 and sizes["calibration"] > 0
    other_seed = load_evidence(DataSource(path=path, split=SplitConfig(seed=14)))
    assert other_seed.splits["test"]["id"].tolist() != first.splits["test"]["id"].tolist()


def test_an_educators_side_does_not_move_when_others_are_added(
    tmp_path: Path, rubric_dir: Path
) -> None:
    def sides(count: int) -> dict[str, str]:
        path = write_csv(
            tmp_path / f"evidence-{count}.csv", [evidence_row(n) for n in range(count)]
        )
        evidence = load_evidence(DataSource(path=path, rubrics=rubric_dir))
        return {
            educator: name
            for name, split in evidence.splits.items()
            for educator in split["educator_id"]
        }

    before, after = sides(100), sides(600)  # 50 educators, then 250 more beside them
    assert len(before) == 50 and len(after) == 300
    assert {educator: after[educator] for educator in before} == before
    assert len(set(before.values())) == 3  # every side is represented, so a move would show


def test_a_files_own_split_column_wins(tmp_path: Path, rubric_dir: Path) -> None:
    rows = [evidence_row(n, split="test") for n in range(10)]
    columns = [*rows[0].keys()]
    evidence = load_evidence(DataSource(path=write_csv(tmp_path / "e.csv", rows, columns)))
    assert len(evidence.splits["test"]) == 10 and len(evidence.splits["train"]) == 0


def test_dataset_columns_carry_levels_scores_and_groups(good_csv: Path) -> None:
    evidence = load_evidence(DataSource(path=good_csv))
    train = evidence.splits["train"]
    row = train.iloc[0].to_dict()
    assert set(row) >= {
        "id",
        "educator_id",
        "text",
        "label",
        "num_levels",
        "scores",
        "group_gender",
    }
    by_id = {f"item-{n}": evidence_row(n) for n in range(60)}
    for row in train.to_dict("records"):
        criterion = evidence.credentials["wait-time"].criterion(row["criterion_id"])
        assert criterion is not None
        assert criterion.levels[row["label"]].label == by_id[row["id"]]["final_level"]
        assert row["num_levels"] == len(criterion.levels)
        assert [s["rater_kind"] for s in row["scores"]] == ["expert", "peer"]


def test_split_fractions_must_add_up() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="add up to 1"):
        SplitConfig(train=0.8, calibration=0.3, test=0.1)
