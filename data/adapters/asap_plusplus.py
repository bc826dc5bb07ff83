"""ASAP++ (Mathias & Bhattacharyya, 2018): analytic trait scores for ASAP-AES sets 1-6.

Each essay set becomes a credential whose criteria are its traits. The essays themselves come
from ASAP-AES, found beside this folder (../asap-aes). The published split (cts_split) is kept:
train, dev as calibration, test.
"""

from __future__ import annotations

from pathlib import Path

from prescore.data.adapters import asap_aes
from prescore.data.adapters.files import (
    find_file,
    integer_levels,
    read_table,
    require_columns,
    score_cell,
)
from prescore.data.problems import InputError, Problem
from prescore.data.readers import Records
from prescore.data.schema import Credential, Criterion, Split, Stakes

TRAITS_BY_SET = {
    **{
        s: ["Content", "Organization", "Word Choice", "Sentence Fluency", "Conventions"]
        for s in (1, 2)
    },
    **{s: ["Content", "Prompt Adherence", "Language", "Narrativity"] for s in (3, 4, 5, 6)},
}
TRAIT_RANGE = {1: (1, 6), 2: (1, 6), 3: (0, 3), 4: (0, 3), 5: (0, 4), 6: (0, 4)}
SPLITS = {"train": Split.train, "dev": Split.calibration, "test": Split.test}


def _criterion_id(trait: str) -> str:
    return trait.lower().replace(" ", "_")


def credential(essay_set: int) -> Credential:
    low, high = TRAIT_RANGE[essay_set]
    levels = integer_levels(low, high)
    return Credential(
        id=f"asap-plusplus-set{essay_set}",
        title=f"ASAP++ analytic traits, essay set {essay_set}: {asap_aes.TITLES[essay_set]}",
        stakes=Stakes.low,
        criteria=tuple(
            Criterion(
                id=_criterion_id(trait),
                title=trait,
                levels=levels,
                met_level=levels[len(levels) // 2].label,
            )
            for trait in TRAITS_BY_SET[essay_set]
        ),
    )


def read(path: Path) -> tuple[dict[str, Credential], Records]:
    traits_file = find_file(path, "traits_prompts1-6.csv")
    aes_folder = traits_file.parent.parent / "asap-aes"
    if not aes_folder.is_dir():
        message = "ASAP++ holds scores only; the essays are read from ../asap-aes beside it"
        raise InputError([Problem(str(aes_folder), None, None, message)])
    essays = {row["essay_id"]: row["essay"] for row in asap_aes.read_essays(aes_folder)}
    rows = read_table(traits_file)
    require_columns(rows, traits_file, ["essay_id", "essay_set", "cts_split"])

    records: Records = []
    for row in rows:
        essay_set = int(row["essay_set"])
        for trait in TRAITS_BY_SET[essay_set]:
            level = score_cell(row.get(trait))
            if level is None:
                continue  # this trait was not scored for this essay
            records.append(
                {
                    "id": f"aespp-{row['essay_id']}:{_criterion_id(trait)}",
                    "submission_id": f"aes-{row['essay_id']}",
                    "educator_id": f"aes-{row['essay_id']}",
                    "credential_id": f"asap-plusplus-set{essay_set}",
                    "criterion_id": _criterion_id(trait),
                    "evidence_type": "essay",
                    "text": essays.get(row["essay_id"], ""),
                    "consent_to_train": True,
                    "final_level": level,
                    "split": SPLITS.get(row["cts_split"]),
                }
            )
    credentials = {f"asap-plusplus-set{s}": credential(s) for s in TRAITS_BY_SET}
    return credentials, records
