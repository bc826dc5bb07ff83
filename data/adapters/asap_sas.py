"""ASAP-SAS (Hewlett, 2012): ten short-answer items, each a one-criterion credential.

Each answer is a submission of one criterion; its decision is whether the score reaches the
met level, the middle of the item's scale (1 of 0-2, 2 of 0-3): at least half the points.

train_rel_2 is training data (Score1 is the final score, Score2 a second rater); the public
leaderboard set, scored by public_leaderboard_solution.csv, is the fixed test split.
"""

from __future__ import annotations

from pathlib import Path

from prescore.data.adapters.files import (
    find_file,
    one_criterion_credential,
    read_table,
    require_columns,
)
from prescore.data.readers import Records
from prescore.data.schema import Credential, Split

CREDENTIAL_PREFIX = "asap-sas"
FOUR_LEVEL_ITEMS = {1, 2, 5, 6}  # scored 0-3; the others 0-2


def credential_id(item: int | str) -> str:
    return f"{CREDENTIAL_PREFIX}-item{item}"


def credentials() -> dict[str, Credential]:
    """One credential per item, its one criterion the item's score."""
    return {
        credential_id(item): one_criterion_credential(
            credential_id(item),
            f"ASAP short answer scoring, item {item}",
            f"item{item}",
            f"Short-answer item {item}",
            0,
            3 if item in FOUR_LEVEL_ITEMS else 2,
        )
        for item in range(1, 11)
    }


def _record(row: dict[str, str], final: str, split: Split | None) -> dict[str, object]:
    return {
        "id": f"sas-{row['Id']}",
        "educator_id": f"sas-{row['Id']}",  # authors are anonymous: one per answer
        "credential_id": credential_id(row["EssaySet"]),
        "criterion_id": f"item{row['EssaySet']}",
        "evidence_type": "short_answer",
        "text": row["EssayText"],
        "consent_to_train": True,  # released by the Hewlett Foundation for research
        "final_level": final,
        "split": split.value if split else None,
    }


def read(path: Path) -> tuple[dict[str, Credential], Records]:
    train_file = find_file(path, "train_rel_2.tsv")
    train = read_table(train_file, delimiter="\t", encoding="cp1252")
    require_columns(train, train_file, ["Id", "EssaySet", "Score1", "Score2", "EssayText"])
    records: Records = [
        {
            **_record(row, row["Score1"], None),
            "scores": [
                {"rater_id": "score1", "rater_kind": "expert", "level": row["Score1"]},
                {"rater_id": "score2", "rater_kind": "expert", "level": row["Score2"]},
            ],
        }
        for row in train
    ]
    folder = train_file.parent
    test_file = folder / "public_leaderboard_rel_2.tsv"
    solution_file = folder / "public_leaderboard_solution.csv"
    if test_file.is_file() and solution_file.is_file():
        solutions = read_table(solution_file)
        require_columns(solutions, solution_file, ["id", "essay_score"])
        scores = {row["id"]: row["essay_score"] for row in solutions}
        test = read_table(test_file, delimiter="\t", encoding="cp1252")
        require_columns(test, test_file, ["Id", "EssaySet", "EssayText"])
        records += [_record(row, scores.get(row["Id"], ""), Split.test) for row in test]
    return credentials(), records
