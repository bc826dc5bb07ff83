"""Feedback Prize ELL (ELLIPSE corpus): six analytic criteria, 1.0-5.0 in half steps.

Each essay becomes six evidence items, one per criterion, all from the same educator
(the essay's author), so an essay never straddles a split.
"""

from __future__ import annotations

from pathlib import Path

from prescore.data.adapters.files import find_file, read_table, require_columns
from prescore.data.readers import Records
from prescore.data.schema import Credential, Criterion, Level, Stakes

CREDENTIAL_ID = "ell-writing"
CRITERIA = {
    "cohesion": "Text organisation: ideas linked with a variety of cohesive devices.",
    "syntax": "Variety and accuracy of sentence structures.",
    "vocabulary": "Range and precision of topic-related and academic words.",
    "phraseology": "Command of phrases, collocations and idioms.",
    "grammar": "Accuracy of grammar and usage.",
    "conventions": "Spelling, capitalisation and punctuation.",
}
LEVELS = tuple(Level(value=v / 2, label=f"{v / 2:.1f}") for v in range(2, 11))


def credential() -> Credential:
    return Credential(
        id=CREDENTIAL_ID,
        title="Writing in English as a learner (ELLIPSE analytic rubric)",
        stakes=Stakes.low,
        description="Essays by English language learners in grades 8-12, scored by two raters "
        "(the score is their mean) on six analytic criteria.",
        criteria=tuple(
            Criterion(
                id=criterion_id,
                title=criterion_id.title(),
                description=description,
                levels=LEVELS,
                met_level="3.0",
            )
            for criterion_id, description in CRITERIA.items()
        ),
    )


def read(path: Path) -> tuple[dict[str, Credential], Records]:
    file = find_file(path, "train.csv")
    rows = read_table(file)
    require_columns(rows, file, ["text_id", "full_text", *CRITERIA])
    records: Records = [
        {
            "id": f"{row['text_id']}:{criterion_id}",
            "submission_id": row["text_id"],
            "educator_id": row["text_id"],
            "credential_id": CREDENTIAL_ID,
            "criterion_id": criterion_id,
            "evidence_type": "essay",
            "text": row["full_text"],
            "consent_to_train": True,  # released for research under CC BY-NC-SA 4.0
            "final_level": row[criterion_id],
        }
        for row in rows
        for criterion_id in CRITERIA
    ]
    return {CREDENTIAL_ID: credential()}, records
