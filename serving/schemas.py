"""What the scoring API takes and gives: pydantic at the HTTP boundary."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from prescore import defaults
from prescore.data.schema import SLUG_PATTERN, CriterionKey
from prescore.eval.routing import DecisionPolicy

# the scoring core's answers, as the API gives them (eval/scoring.py)
from prescore.eval.scoring import LevelProbability as LevelProbability
from prescore.eval.scoring import ScoredEvidence as ScoredEvidence
from prescore.eval.scoring import SubmissionDecision as SubmissionDecision


class EvidenceToScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    submission_id: str = Field(min_length=1, max_length=200)
    credential_id: str = Field(pattern=SLUG_PATTERN, max_length=200)
    criterion_id: str = Field(pattern=SLUG_PATTERN, max_length=200)
    evidence_type: str = Field(min_length=1, max_length=100)
    # never in reprs, so never in logs
    text: str = Field(max_length=defaults.MAX_TEXT_CHARS_CEILING, repr=False)
    educator_id: str | None = Field(
        None, max_length=200, description="pseudonymous author; reviewed items keep it"
    )
    consent_to_train: bool = Field(
        False, description="may a reviewed copy of this evidence be used for training"
    )
    deadline: datetime | None = Field(None, description="when a human score is due")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty or whitespace only")
        return value

    @field_validator("submission_id", "evidence_type", "text", "educator_id")
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        """The review queue stores these: refused here, not as a 500 after scoring (pydantic
        itself refuses lone surrogates, as string_unicode; NUL is ours to refuse)."""
        problem = unstorable_character(value or "")
        if problem:
            raise ValueError(problem)
        return value


def unstorable_character(value: str) -> str | None:
    """What makes text impossible to store, or None: Postgres text cannot hold a NUL, and a
    lone surrogate (JSON's "\\ud800" alone) is no character at all, so no database's UTF-8
    can hold it; SQLite would refuse it too."""
    if "\x00" in value:
        return "holds a NUL character (\\u0000), which cannot be stored; remove it"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(value[error.start])
        return (
            f"holds a lone surrogate (\\u{code:04x}) at position {error.start}, which is not "
            "valid Unicode and cannot be stored; send the text as UTF-8"
        )
    return None


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[EvidenceToScore] = Field(min_length=1)


class ScoreResponse(BaseModel):
    model_name: str
    model_version: str
    runtime: str = Field("", description="what computed the probabilities of these scores")
    scores: list[ScoredEvidence] = Field(description="one per item, in the order sent")
    submissions: list[SubmissionDecision] = Field(
        default_factory=list,
        description="one per (submission_id, credential_id) in the request, in the order first "
        "seen; a decision needs every criterion of the rubric in the same request",
    )


class CriterionCard(BaseModel):
    criterion_id: str
    title: str = ""
    levels: list[str]
    level_descriptions: list[str] = Field(default_factory=list)
    met_index: int | None = Field(None, description="lowest level that counts as met")
    qualified: bool = Field(description="passed the agreement gates on held-out evidence")
    qualification_failures: list[str]
    auto_threshold: float | None = Field(
        description="calibrated confidence from which a low-stakes item may go auto; "
        "null: every item goes to a human"
    )
    target_error: float


class AuditAlarm(BaseModel):
    """Why a credential's auto route is stopped: reviewers overturned its audited auto
    decisions significantly more often than the target (review/audits.py)."""

    stopped_since: datetime
    model_version: str = Field(description="the version whose audits tripped it")
    audits: int = Field(description="audited auto decisions counted since the last resume")
    errors: int = Field(description="of those, decided otherwise by the reviewer")
    target_error: float
    p_value: float = Field(description="one-sided exact binomial p-value of the excess")
    resume: str = Field(description="the command that restarts the auto route")


class CredentialCard(BaseModel):
    credential_id: str
    stakes: str = Field(description="high: every item goes to a human, with the suggestion")
    criteria: list[CriterionCard]
    decision: DecisionPolicy | None = Field(
        None,
        description="how submissions are decided: the award rule, whether the decision is "
        "qualified, its thresholds and target; null where the model scores only part of the "
        "rubric",
    )
    audit_alarm: AuditAlarm | None = Field(
        None,
        description="set while the credential's auto route is stopped by its audits: every "
        "decision and item goes to a human with reason audit_alarm; null while auto runs",
    )


class ModelCard(BaseModel):
    """What the loaded model scores: GET /credentials."""

    model_name: str
    model_version: str
    runtime: str = Field(
        "",
        description="what computes the probabilities: onnx-int8 or onnx-fp32 (an ONNX copy that "
        "passed its check against PyTorch), torch-fp32, scikit-learn, ...",
    )
    credentials: list[CredentialCard]
    language_warning: str | None = Field(
        None,
        description="set where the training evidence's language or script does not look like "
        "the base model's (share of words its tokenizer does not know)",
    )

    def criteria_by_key(self) -> dict[CriterionKey, tuple[CriterionCard, str]]:
        """Each criterion's card and its credential's stakes."""
        return {
            CriterionKey(credential.credential_id, criterion.criterion_id): (
                criterion,
                credential.stakes,
            )
            for credential in self.credentials
            for criterion in credential.criteria
        }


class ReloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str | None = Field(
        None,
        description="the configured alias, which promotion moves (any other is refused: only "
        "promotion chooses what serves); default: that one",
    )


class CriterionLevel(BaseModel):
    criterion_id: str
    title: str = Field("", description="the criterion's title on the rubric")
    level: str = Field(description="the level's title on the rubric, e.g. Proficient")


class SubmissionOutcome(BaseModel):
    """What became of one scored submission: GET /submissions/{id}, and every webhook's
    `data`. Never the evidence text."""

    submission_id: str
    credential_id: str
    status: Literal["pending", "decided", "withdrawn"] = Field(
        description="withdrawn: the educator was forgotten before a reviewer decided; no "
        "decision will come"
    )
    decision: Literal["earned", "not_yet"] | None = Field(
        None, description="the decision in force; None while a human has not decided"
    )
    decided_by: Literal["model", "expert", "peers"] | None = None
    levels: list[CriterionLevel] = Field(
        default_factory=list, description="the deciding levels per criterion; empty while pending"
    )
    feedback: str | None = Field(None, description="to the educator: what to strengthen")
    erased: bool = Field(
        False, description="the educator was forgotten: the decision remains, the feedback not"
    )
    route: str = Field(description="where the model sent it: auto or human")
    suggestion: Literal["earned", "not_yet"] | None = Field(
        None, description="the model's decision, where it made one"
    )
    p_earned: float | None = None
    model_name: str
    model_version: str
    scored_at: datetime
    decided_at: datetime | None = None
    earlier_decisions: int = Field(
        0, description="decisions before this one (an audit's revision adds one, never replaces)"
    )


class ErrorDetail(BaseModel):
    field: str = Field(description="where the problem is, e.g. items.3.text")
    rule: str = Field(description="the rule it breaks, e.g. string_too_long")
    message: str


class ErrorResponse(BaseModel):
    error: str
    details: list[ErrorDetail] = Field(default_factory=list)
