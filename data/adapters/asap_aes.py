"""ASAP-AES (Hewlett, 2012): eight essay prompts, each a one-criterion credential.

Each essay is a submission of one criterion (the holistic score), so its decision is whether
that score reaches the met level: the middle level of the prompt's resolved scale (for
example 7 on set 1's 2-12), i.e. at least half of the scale.

The resolved score (domain1_score) is the final level; rater1 and rater2 are kept as scores so
that human-human agreement can be measured. On sets 1, 7 and 8 the resolved score is the sum
of the two raters, so each rater's score is doubled onto the resolved scale: quadratic weighted
kappa is unchanged by that, since both the scores and the scale's range double.
"""

from __future__ import annotations

import csv
from pathlib import Path

from prescore.data.adapters.files import (
    find_file,
    one_criterion_credential,
    read_table,
    require_columns,
    score_cell,
)
from prescore.data.readers import Records
from prescore.data.schema import Credential

CREDENTIAL_PREFIX = "asap-aes"
# set -> (lowest, highest) resolved score, and the factor from a rater's scale to it
SCORE_RANGES = {
    1: (2, 12),
    2: (1, 6),
    3: (0, 3),
    4: (0, 3),
    5: (0, 4),
    6: (0, 4),
    7: (0, 30),
    8: (0, 60),
}
RATER_FACTOR = {1: 2, 7: 2, 8: 2}
TITLES = {
    1: "Persuasive letter: effects of computers on people",
    2: "Persuasive essay: censorship in libraries",
    3: "Source-based response: 'Rough Road Ahead'",
    4: "Source-based response: 'Winter Hibiscus'",
    5: "Source-based response: 'Narciso Rodriguez' memoir mood",
    6: "Source-based response: Empire State Building mooring dock",
    7: "Narrative: a time you were patient",
    8: "Narrative: laughter in a relationship",
}


def credential_id(essay_set: int) -> str:
    return f"{CREDENTIAL_PREFIX}-set{essay_set}"


def credentials() -> dict[str, Credential]:
    """One credential per prompt, its one criterion the prompt's holistic score."""
    return {
        credential_id(essay_set): one_criterion_credential(
            credential_id(essay_set),
            f"ASAP automated essay scoring, prompt {essay_set}",
            f"set{essay_set}",
            TITLES[essay_set],
            low,
            high,
        )
        for essay_set, (low, high) in SCORE_RANGES.items()
    }


def read_essays(path: Path) -> list[dict[str, str]]:
    """The essays as the set's README says to read them.

    cp1252 with undefined bytes replaced, and quoting off (one essay opens with a stray quote).
    """
    file = find_file(path, "training_set_rel3.tsv")
    rows = read_table(file, delimiter="\t", encoding="cp1252", quoting=csv.QUOTE_NONE)
    require_columns(rows, file, ["essay_id", "essay_set", "essay", "domain1_score"])
    return rows


def read_folds(path: Path) -> dict[str, int]:
    folder = path if path.is_dir() else path.parent
    file = folder / "folds.csv"
    if not file.is_file():
        return {}
    return {row["essay_id"]: int(row["fold"]) for row in read_table(file)}


def read(path: Path) -> tuple[dict[str, Credential], Records]:
    folds = read_folds(path)
    records: Records = []
    for row in read_essays(path):
        essay_set = int(row["essay_set"])
        factor = RATER_FACTOR.get(essay_set, 1)
        records.append(
            {
                "id": f"aes-{row['essay_id']}",
                "educator_id": f"aes-{row['essay_id']}",  # authors are anonymous: one per essay
                "credential_id": credential_id(essay_set),
                "criterion_id": f"set{essay_set}",
                "evidence_type": "essay",
                "text": row["essay"],
                "consent_to_train": True,  # released by the Hewlett Foundation for research
                "final_level": row["domain1_score"],
                "scores": [
                    {"rater_id": rater, "rater_kind": "expert", "level": int(cell) * factor}
                    for rater in ("rater1", "rater2")
                    if (cell := score_cell(row.get(f"{rater}_domain1"))) is not None
                ],
                "fold": folds.get(row["essay_id"]),
            }
        )
    return credentials(), records
