"""The scoring core: a scorer's raw probabilities, under the routing policy fitted beside it,
become each item's level, route and reasons and each submission's decision.

Everything that answers with a registered version calls `score_submissions` here: POST /score
(through the model host, which batches the items of many requests and so calls its two
halves, `score_items` and `decide_submissions`), `prescore predict`, the MLflow pyfunc model
and the evaluation's test predictions. The routing rule itself is `eval.routing.route`; P(met)
is `eval.decisions.p_met`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from prescore.data.schema import CriterionKey
from prescore.eval.calibration import apply_temperature
from prescore.eval.decisions import EARNED, NOT_YET, decision_of, p_at_least, p_met
from prescore.eval.routing import (
    CriterionPolicy,
    Decision,
    DecisionPolicy,
    Reason,
    Route,
    RoutingPolicy,
)
from prescore.models.inputs import criterion_keys
from prescore.models.scorer import Scorer

# what the core reads of each item; `text` only for the input checks, never kept
ITEM_COLUMNS = ("submission_id", "credential_id", "criterion_id", "text")


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
    expected_value: float = Field(
        description="probability-weighted mean of the level values: on fine scales a closer "
        "estimate of the human score than the suggested level (lower squared error)"
    )
    probabilities: list[LevelProbability]
    confidence: float = Field(
        description="calibrated probability that a human agrees with the suggested level "
        "(within the criterion's error tolerance, 0 levels unless configured)"
    )
    prediction_set: list[str] = Field(description="levels the model cannot rule out")
    route: Route
    reasons: list[Reason]
    model_name: str
    model_version: str
    runtime: str = Field(
        "", description="what computed the probabilities: onnx-int8, onnx-fp32, torch-fp32, ..."
    )


class SubmissionDecision(BaseModel):
    """The credential decision for one submission: the items of a request that share
    submission_id and credential_id, one per criterion of the rubric."""

    submission_id: str
    credential_id: str
    decision: Literal["earned", "not_yet"]
    p_earned: float = Field(description="calibrated probability that a human would award it")
    confidence: float = Field(description="calibrated probability that the decision is right")
    route: Route
    reasons: list[Reason]
    criteria_not_met: list[str] = Field(
        description="criteria whose suggested level is below the met level: what to strengthen"
    )
    model_name: str
    model_version: str


@dataclass(frozen=True)
class ScoredBy:
    """The registered version whose scorer computed the probabilities, and on what."""

    model_name: str
    model_version: str
    runtime: str = ""


# an item's problems that make its submission's decision a human's too
ITEM_REASONS_FOR_DECISIONS = {
    Reason.unknown_criterion,
    Reason.input_empty,
    Reason.input_too_short,
    Reason.input_too_long,
    Reason.input_unfamiliar_language_or_noise,
}


def known_rows(policy: RoutingPolicy, frame: pd.DataFrame) -> np.ndarray:
    """Which rows name a criterion the policy (so the scorer beside it) scores."""
    keys = criterion_keys(frame) if len(frame) else np.array([], dtype=object)
    return np.array([str(key) in policy.criteria for key in keys], dtype=bool)


def raw_probabilities(scorer: Scorer, policy: RoutingPolicy, frame: pd.DataFrame) -> np.ndarray:
    """The scorer's probabilities for the rows it can score; zeros for the others, which
    `score_items` flags `unknown_criterion` and never reads."""
    raw = np.zeros((len(frame), scorer.width))
    known = known_rows(policy, frame)
    if known.any():
        raw[known] = scorer.predict_proba(frame[known].reset_index(drop=True))
    return raw


def score_submissions(
    policy: RoutingPolicy,
    frame: pd.DataFrame,
    raw: np.ndarray,
    scored_by: ScoredBy,
    input_problems: Sequence[Sequence[str]] | None = None,
) -> tuple[list[ScoredEvidence], list[SubmissionDecision]]:
    """One score per row of `frame` (ITEM_COLUMNS), in order, from the scorer's `raw`
    probabilities (`raw_probabilities`), and one decision per (submission_id, credential_id)
    in the order first seen. `input_problems` saves checking texts already checked."""
    scores = score_items(policy, frame, raw, scored_by, input_problems)
    return scores, decide_submissions(scores, policy.decisions, policy.met_levels())


def score_items(
    policy: RoutingPolicy,
    frame: pd.DataFrame,
    raw: np.ndarray,
    scored_by: ScoredBy,
    input_problems: Sequence[Sequence[str]] | None = None,
) -> list[ScoredEvidence]:
    """Each row's level, probabilities, confidence, prediction set, route and reasons; a row
    whose criterion the policy does not know comes back routed to a human with reason
    `unknown_criterion` and no suggestion, so one item never fails a shared batch."""
    out = []
    for position, (submission_id, credential_id, criterion_id, text) in enumerate(
        zip(*(frame[column] for column in ITEM_COLUMNS), strict=True)
    ):
        criterion = policy.criterion(credential_id, criterion_id)
        if criterion is None:
            out.append(unscorable(str(submission_id), credential_id, criterion_id, scored_by))
            continue
        problems = (
            policy.input_profile.problems(text)
            if input_problems is None
            else input_problems[position]
        )
        out.append(scored(str(submission_id), criterion, raw[position], problems, scored_by))
    return out


def scored(
    submission_id: str,
    criterion: CriterionPolicy,
    raw: np.ndarray,
    input_problems: Sequence[str],
    scored_by: ScoredBy,
) -> ScoredEvidence:
    levels = len(criterion.level_labels)
    calibrated = apply_temperature(raw[None, :levels], criterion.temperature)[0]
    best, confidence = criterion.suggest(calibrated)
    routed = criterion.route(confidence, [Reason(problem) for problem in input_problems])
    return ScoredEvidence(
        submission_id=submission_id,
        credential_id=criterion.credential_id,
        criterion_id=criterion.criterion_id,
        level=criterion.level_labels[best],
        level_value=criterion.level_values[best],
        expected_value=float(np.dot(calibrated, criterion.level_values)),
        probabilities=[
            LevelProbability(label=label, value=value, probability=float(p))
            for label, value, p in zip(
                criterion.level_labels, criterion.level_values, calibrated, strict=True
            )
        ],
        confidence=confidence,
        prediction_set=[
            criterion.level_labels[k] for k in criterion.prediction_set(calibrated.tolist())
        ],
        route=routed.route,
        reasons=list(routed.reasons),
        model_name=scored_by.model_name,
        model_version=scored_by.model_version,
        runtime=scored_by.runtime,
    )


def unscorable(
    submission_id: str, credential_id: str, criterion_id: str, scored_by: ScoredBy
) -> ScoredEvidence:
    return ScoredEvidence(
        submission_id=submission_id,
        credential_id=credential_id,
        criterion_id=criterion_id,
        level="",
        level_value=0.0,
        expected_value=0.0,
        probabilities=[],
        confidence=0.0,
        prediction_set=[],
        route=Route.human,
        reasons=[Reason.unknown_criterion],
        model_name=scored_by.model_name,
        model_version=scored_by.model_version,
        runtime=scored_by.runtime,
    )


def decide_submissions(
    scores: Sequence[ScoredEvidence],
    decisions: Mapping[str, DecisionPolicy],
    met_levels: Mapping[CriterionKey, int | None],
) -> list[SubmissionDecision]:
    """One decision per (submission_id, credential_id), in the order first seen, from its
    items' P(met) under the credential's decision policy (`decisions`, per credential id;
    none: the model does not score the whole rubric, so a human decides). `met_levels`: each
    scored criterion's met level index."""
    groups: dict[tuple[str, str], list[ScoredEvidence]] = {}
    for one in scores:
        groups.setdefault((one.submission_id, one.credential_id), []).append(one)
    return [
        decide_one(members, decisions.get(members[0].credential_id), met_levels)
        for members in groups.values()
    ]


def decide_one(
    members: list[ScoredEvidence],
    policy: DecisionPolicy | None,
    met_levels: Mapping[CriterionKey, int | None],
) -> SubmissionDecision:
    reasons = {r for s in members for r in s.reasons if r in ITEM_REASONS_FOR_DECISIONS}
    scorable = [s for s in members if Reason.unknown_criterion not in s.reasons]
    met_each = [item_p_met(s, met_levels) for s in scorable]
    if policy is None:  # the model does not score the whole rubric: it cannot decide
        p_earned = p_at_least(met_each, len(met_each))  # every criterion sent, met
        decision, confidence = decision_of(p_earned)
        routed = Decision(Route.human, (Reason.model_not_qualified, *sorted(reasons)))
    else:
        if sorted(s.criterion_id for s in members) != sorted(policy.criteria):
            reasons.add(Reason.incomplete_submission)
        p_earned = policy.p_earned(met_each)
        decision, confidence = decision_of(p_earned)
        routed = policy.route(decision, confidence, reasons)
    first = members[0]
    return SubmissionDecision(
        submission_id=first.submission_id,
        credential_id=first.credential_id,
        decision=EARNED if decision == EARNED else NOT_YET,
        p_earned=p_earned,
        confidence=confidence,
        route=routed.route,
        reasons=list(routed.reasons),
        criteria_not_met=criteria_to_strengthen(scorable, met_each, decision),
        model_name=first.model_name,
        model_version=first.model_version,
    )


def item_p_met(scored: ScoredEvidence, met_levels: Mapping[CriterionKey, int | None]) -> float:
    met_index = met_levels[CriterionKey(scored.credential_id, scored.criterion_id)]
    if met_index is None:  # every policy fitted by evaluate() names one
        raise ValueError(f"{scored.credential_id}/{scored.criterion_id} has no met level")
    return float(p_met(np.array([p.probability for p in scored.probabilities]), met_index)[0])


def criteria_to_strengthen(
    members: list[ScoredEvidence], met_each: list[float], decision: str
) -> list[str]:
    """Criteria more likely unmet than met, the same probabilities the decision rests on; a
    "not yet" always names at least the criterion least likely met, so the feedback is never
    empty where the credential is withheld."""
    weakest = [s.criterion_id for s, p in zip(members, met_each, strict=True) if p < 0.5]
    if decision == NOT_YET and not weakest and members:
        weakest = [members[int(np.argmin(met_each))].criterion_id]
    return weakest


# what scoring adds to each item, flat: `prescore predict` writes these beside the input row
# and the MLflow pyfunc model returns them; nested values are JSON text where a format needs it
SCORE_COLUMNS = {
    "level": "string",
    "level_value": "double",
    "expected_value": "double",
    "probabilities": "string",
    "confidence": "double",
    "prediction_set": "string",
    "route": "string",
    "reasons": "string",
    "decision": "string",
    "p_earned": "double",
    "decision_confidence": "double",
    "decision_route": "string",
    "decision_reasons": "string",
    "criteria_not_met": "string",
    "model_name": "string",
    "model_version": "string",
}


def score_rows(
    scores: Sequence[ScoredEvidence], decisions: Sequence[SubmissionDecision]
) -> list[dict[str, Any]]:
    """Each item's SCORE_COLUMNS, its submission's decision beside it; nested values as
    Python lists and dicts (`as_text` turns them into JSON text)."""
    decided = {(d.submission_id, d.credential_id): d for d in decisions}
    out = []
    for one in scores:
        decision = decided[(one.submission_id, one.credential_id)]
        out.append(
            {
                "level": one.level,
                "level_value": one.level_value,
                "expected_value": one.expected_value,
                "probabilities": {p.label: p.probability for p in one.probabilities},
                "confidence": one.confidence,
                "prediction_set": one.prediction_set,
                "route": one.route.value,
                "reasons": [r.value for r in one.reasons],
                "decision": decision.decision,
                "p_earned": decision.p_earned,
                "decision_confidence": decision.confidence,
                "decision_route": decision.route.value,
                "decision_reasons": [r.value for r in decision.reasons],
                "criteria_not_met": decision.criteria_not_met,
                "model_name": one.model_name,
                "model_version": one.model_version,
            }
        )
    return out


def as_text(value: Any) -> Any:
    """A list or dict as JSON text (CSV, Parquet, Spark columns); anything else as it is."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value
