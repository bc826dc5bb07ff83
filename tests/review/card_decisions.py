"""Submission decisions for tests that hold a model card and made-up scores rather than a
model: the scoring core's decisions under the policies the card carries."""

from __future__ import annotations

from prescore.eval.scoring import decide_submissions as decide_submissions_core
from prescore.serving.schemas import (
    EvidenceToScore,
    ModelCard,
    ScoredEvidence,
    SubmissionDecision,
)


def decide_submissions(
    items: list[EvidenceToScore], scores: list[ScoredEvidence], card: ModelCard
) -> list[SubmissionDecision]:
    """`items` are the scores' items, in order."""
    assert len(items) == len(scores)
    decisions = {c.credential_id: c.decision for c in card.credentials if c.decision is not None}
    met_levels = {key: c.met_index for key, (c, _) in card.criteria_by_key().items()}
    return decide_submissions_core(scores, decisions, met_levels)
