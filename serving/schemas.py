"""What the scoring API takes and gives: pydantic at the HTTP boundary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prescore.data.schema import SLUG_PATTERN
from prescore.eval.routing import Reason, Route

MAX_TEXT_CHARS = 200_000


class EvidenceToScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    submission_id: str = Field(min_length=1, max_length=200)
    credential_id: str = Field(pattern=SLUG_PATTERN, max_length=200)
    criterion_id: str = Field(pattern=SLUG_PATTERN, max_length=200)
    evidence_type: str = Field(min_length=1, max_length=100)
    text: str = Field(max_length=MAX_TEXT_CHARS, repr=False)  # never in reprs, so never in logs

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty or whitespace only")
        return value


class LevelProbability(BaseModel):
    label: str
    value: float
    probability: float


class ScoredEvidence(BaseModel):
    submission_id: str
    credential_id: str
    criterion_id: str
    level: str = Field(description="label of the suggested level")
    level_value: float
    probabilities: list[LevelProbability]
    confidence: float = Field(description="calibrated probability of the suggested level")
    prediction_set: list[str] = Field(description="levels the model cannot rule out")
    route: Route
    reasons: list[Reason]
    model_name: str
    model_version: str
