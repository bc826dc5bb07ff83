"""Each public-set adapter, against small files in the set's own layout written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from prescore.data.load import DataSource, load_evidence
from prescore.data.problems import InputError

AES_HEADER = (
    "essay_id\tessay_set\tessay\trater1_domain1\trater2_domain1\trater3_domain1\tdomain1_score"
)


def write_aes(folder: Path) -> Path:
    folder.mkdir(parents=True)
    lines = [
        AES_HEADER,
        '1\t1\t"Dear newspaper, computers help\x93 us.\t4\t3\t\t7',  # stray quote, cp1252 byte
        "2\t1\tComputers are bad for kids.\t2\t2\t\t4",
        "3\t3\tThe road was rough and hot.\t1\t2\t\t2",
        "4\t8\tLaughter is the shortest distance.\t20\t25\t\t45",
    ]
    (folder / "training_set_rel3.tsv").write_bytes("\r\n".join(lines).encode("latin-1") + b"\r\n")
    (folder / "folds.csv").write_text("essay_id,essay_set,fold\n1,1,0\n2,1,1\n3,3,2\n4,8,4\n")
    return folder


def load(path: Path, adapter: str, **source: object):  # type: ignore[no-untyped-def]
    evidence = load_evidence(DataSource(path=path, adapter=adapter, **source))
    rows = [row for split in evidence.splits.values() for row in split.to_dict("records")]
    return evidence, {row["id"]: row for row in rows}


def test_asap_aes_keeps_folds_and_puts_raters_on_the_resolved_scale(tmp_path: Path) -> None:
    evidence, rows = load(write_aes(tmp_path / "asap-aes"), "asap-aes")
    set1 = evidence.credentials["asap-aes-set1"].criterion("set1")
    assert set1 is not None and set1.labels[0] == "2" and set1.labels[-1] == "12"
    first = rows["aes-1"]
    assert first["text"].startswith('"Dear newspaper') and "\u201c" in first["text"]
    assert set1.levels[first["label"]].value == 7
    assert [set1.levels[s["level"]].value for s in first["scores"]] == [8, 6]  # 4 and 3, doubled
    set3 = evidence.credentials["asap-aes-set3"].criterion("set3")
    assert set3 is not None
    assert [set3.levels[s["level"]].value for s in rows["aes-3"]["scores"]] == [1, 2]  # not doubled
    assert {row["fold"] for row in rows.values()} == {0, 1, 2, 4}
    assert rows["aes-4"]["criterion_id"] == "set8"


def test_asap_sas_uses_the_leaderboard_as_the_test_split(tmp_path: Path) -> None:
    folder = tmp_path / "asap-sas"
    folder.mkdir()
    (folder / "train_rel_2.tsv").write_text(
        "Id\tEssaySet\tScore1\tScore2\tEssayText\n"
        "1\t1\t2\t3\tVinegar amount and container size.\n"
        "2\t3\t1\t1\tThe pandas eat bamboo only.\n"
    )
    (folder / "public_leaderboard_rel_2.tsv").write_text(
        "Id\tEssaySet\tEssayText\n1673\t1\tHow much vinegar was used?\n"
    )
    (folder / "public_leaderboard_solution.csv").write_text(
        "id,essay_set,essay_weight,essay_score,Usage\n1673,1,1,1,PublicTest\n"
    )
    evidence, rows = load(folder, "asap-sas", split={"train": 1.0, "calibration": 0.0, "test": 0.0})
    assert set(evidence.splits["test"]["id"]) == {"sas-1673"}
    assert set(evidence.splits["train"]["id"]) == {"sas-1", "sas-2"}
    assert rows["sas-1"]["label"] == 2 and [s["level"] for s in rows["sas-1"]["scores"]] == [2, 3]
    assert rows["sas-1673"]["scores"] == []
    item3 = evidence.credentials["asap-sas-item3"].criterion("item3")
    assert item3 is not None and len(item3.levels) == 3


def test_asap_plusplus_joins_essays_and_keeps_its_split(tmp_path: Path) -> None:
    write_aes(tmp_path / "asap-aes")
    folder = tmp_path / "asap-plusplus"
    folder.mkdir()
    (folder / "traits_prompts1-6.csv").write_text(
        "essay_id,essay_set,holistic_score,Content,Organization,Word Choice,Sentence Fluency,"
        "Conventions,Prompt Adherence,Language,Narrativity,cts_split\n"
        "1,1,7,4.0,3.0,3.0,3.0,3.0,,,,test\n"
        "3,3,2,1.0,,,,,2.0,1.0,0.0,dev\n"
    )
    evidence, rows = load(folder, "asap-plusplus")
    assert set(evidence.credentials) == {f"asap-plusplus-set{s}" for s in range(1, 7)}
    assert len(rows) == 5 + 4
    assert rows["aespp-1:word_choice"]["text"].startswith('"Dear newspaper')
    assert set(evidence.splits["test"]["submission_id"]) == {"aes-1"}
    assert set(evidence.splits["calibration"]["submission_id"]) == {"aes-3"}
    narrativity = evidence.credentials["asap-plusplus-set3"].criterion("narrativity")
    assert narrativity is not None and narrativity.labels == ["0", "1", "2", "3"]


def test_asap_plusplus_says_where_the_essays_should_be(tmp_path: Path) -> None:
    folder = tmp_path / "asap-plusplus"
    folder.mkdir()
    (folder / "traits_prompts1-6.csv").write_text("essay_id,essay_set,cts_split\n")
    with pytest.raises(InputError, match="asap-aes"):
        load(folder, "asap-plusplus")


def test_feedback_prize_ell_makes_six_criteria_per_essay(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text(
        "text_id,full_text,cohesion,syntax,vocabulary,phraseology,grammar,conventions\n"
        'A1,"I think school\nshould start later.",3.5,3.5,3.0,3.0,4.0,3.0\n'
        'B2,"Online classes are good.",2.0,2.5,3.0,2.0,2.0,2.5\n'
    )
    evidence, rows = load(path, "feedback-prize-ell")
    credential = evidence.credentials["ell-writing"]
    assert [c.id for c in credential.criteria] == [
        "cohesion",
        "syntax",
        "vocabulary",
        "phraseology",
        "grammar",
        "conventions",
    ]
    assert credential.stakes.value == "low"
    assert len(rows) == 12
    assert credential.criteria[0].levels[rows["A1:cohesion"]["label"]].value == 3.5
    splits_of_a1 = {
        name for name, split in evidence.splits.items() if "A1" in split["educator_id"].tolist()
    }
    assert len(splits_of_a1) == 1  # all six items of an essay on one side


def test_an_adapter_pointed_at_the_wrong_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="missing column"):
        load(path, "feedback-prize-ell")
    with pytest.raises(InputError, match="training_set_rel3.tsv"):
        load(tmp_path, "asap-aes")


def test_each_asap_prompt_is_a_one_criterion_credential_met_at_half_its_scale() -> None:
    from prescore.data.adapters import asap_aes, asap_sas

    for credentials in (asap_aes.credentials(), asap_sas.credentials()):
        for credential in credentials.values():
            (criterion,) = credential.criteria
            assert criterion.met_index == len(criterion.levels) // 2
    assert asap_sas.credentials()["asap-sas-item3"].criteria[0].met_level == "1"  # of 0-2
    assert asap_sas.credentials()["asap-sas-item1"].criteria[0].met_level == "2"  # of 0-3
    assert asap_aes.credentials()["asap-aes-set1"].criteria[0].met_level == "7"  # of 2-12
