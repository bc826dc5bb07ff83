"""The routing policy serving applies: `auto` only when every condition holds, else `human`.

Saved with the model version, so a served prediction is routed by the rules that were
fitted with that model. A decision lists every reason that sent an item to a human.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from prescore.data.schema import (
    AwardRule,
    Credential,
    Criterion,
    CriterionKey,
    Level,
    Routing,
    Stakes,
)
from prescore.eval.decisions import EARNED, Recalibration, combined_p_earned
from prescore.eval.input_checks import InputProfile
from prescore.eval.qualification import QualificationGates
from prescore.eval.selective import SUBGROUP_ERROR, failed_kinds
from prescore.models.language import LanguageFit


class Route(StrEnum):
    auto = "auto"
    human = "human"


class Reason(StrEnum):
    high_stakes = "high_stakes"
    model_not_qualified = "model_not_qualified"
    low_confidence = "low_confidence"
    no_safe_threshold = "no_safe_threshold"
    unknown_criterion = "unknown_criterion"
    incomplete_submission = "incomplete_submission"
    input_empty = "input_empty"
    input_too_short = "input_too_short"
    input_too_long = "input_too_long"
    input_unfamiliar_language_or_noise = "input_unfamiliar_language_or_noise"
    subgroup_error = "subgroup_error"
    # reviewers overturned the credential's audited auto decisions significantly above the
    # target: auto is stopped until an operator resumes it or a new version serves
    audit_alarm = "audit_alarm"


@dataclass(frozen=True)
class Decision:
    route: Route
    reasons: tuple[Reason, ...]


def qualification_reasons(qualified: bool, failures: list[str]) -> list[Reason]:
    """Why an unqualified model sends an item or decision to a human: always
    `model_not_qualified`, and `subgroup_error` where a group's auto decisions erred."""
    if qualified:
        return []
    extra = [Reason.subgroup_error] if SUBGROUP_ERROR in failed_kinds(failures) else []
    return [Reason.model_not_qualified, *extra]


def route(
    stakes: Stakes,
    qualified: bool,
    failures: list[str],
    threshold: float | None,
    confidence: float,
    problems: Iterable[Reason] = (),
) -> Decision:
    """The routing rule, for an item and for a submission's decision alike: `auto` only when
    the stakes are low, the model is qualified, a safe threshold was certified and the
    confidence clears it, and nothing is wrong with the input (`problems`, already found:
    the input checks, an incomplete submission, an unknown criterion). Every reason that
    failed is listed; the audits' circuit breaker (audit_alarm) acts on the result."""
    reasons: list[Reason] = []
    if stakes is Stakes.high:
        reasons.append(Reason.high_stakes)
    reasons += qualification_reasons(qualified, failures)
    if threshold is None:
        reasons.append(Reason.no_safe_threshold)
    elif confidence < threshold:
        reasons.append(Reason.low_confidence)
    reasons.extend(problems)
    return Decision(Route.human if reasons else Route.auto, tuple(reasons))


def suggestion_confidence(
    probabilities: np.ndarray, tolerance: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the most likely level, and the probability that the human's level lies within
    `tolerance` levels of it (tolerance 0: the probability of that level alone)."""
    probabilities = np.atleast_2d(probabilities)
    best = probabilities.argmax(axis=1)
    cumulative = np.concatenate(
        [np.zeros((len(probabilities), 1)), probabilities.cumsum(axis=1)], axis=1
    )
    rows = np.arange(len(probabilities))
    low = np.clip(best - tolerance, 0, probabilities.shape[1])
    high = np.clip(best + tolerance + 1, 0, probabilities.shape[1])
    return best, cumulative[rows, high] - cumulative[rows, low]


class CriterionPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    credential_id: str
    criterion_id: str
    stakes: Stakes
    level_labels: list[str] = Field(description="the rubric's levels, lowest first")
    level_values: list[float]
    title: str = Field("", description="the criterion's title in the rubric, for reviewers")
    level_descriptions: list[str] = Field(default_factory=list)
    met_index: int | None = Field(None, description="index of the lowest level that counts as met")
    qualified: bool
    qualification_failures: list[str] = Field(default_factory=list)
    temperature: float = 1.0
    threshold: float | None = Field(
        None, description="lowest calibrated confidence that may go auto; None: never"
    )
    target_error: float
    target_basis: str = Field("", description="where the target comes from, for the report")
    routing: Routing = Routing.selective
    certification_items: int = Field(0, description="items the threshold was certified on")
    error_tolerance: int = Field(
        0, ge=0, description="levels a suggestion may be off and still agree with the human"
    )
    confidence_level: float
    set_threshold: float = Field(
        1.0,
        description="split-conformal rule: a level is in the prediction set when its calibrated "
        "probability is at least 1 - set_threshold; 1.0 keeps every level",
    )
    set_coverage: float = 0.9

    def suggest(self, probabilities: np.ndarray) -> tuple[int, float]:
        """The suggested level and the confidence that routing compares with the threshold."""
        best, confidence = suggestion_confidence(probabilities, self.error_tolerance)
        return int(best[0]), float(confidence[0])

    def prediction_set(self, probabilities: list[float]) -> list[int]:
        """Levels the model cannot rule out: the true level is among them with set_coverage."""
        return [i for i, p in enumerate(probabilities) if 1 - p <= self.set_threshold]

    def route(self, confidence: float, problems: Iterable[Reason] = ()) -> Decision:
        """Route one item; `confidence` as `suggest` gives it, `problems` its input's."""
        return route(
            self.stakes,
            self.qualified,
            self.qualification_failures,
            self.threshold,
            confidence,
            problems,
        )


class DecisionPolicy(BaseModel):
    """How one credential's submissions are decided and routed: the award rule, the
    recalibration of P(earned), the decision's qualification and its risk-controlled
    thresholds (see eval/decisions.py)."""

    model_config = ConfigDict(extra="forbid")

    credential_id: str
    title: str = Field("", description="the credential's title in the rubric, for reviewers")
    stakes: Stakes
    award: AwardRule
    criteria: list[str] = Field(description="the rubric's criterion ids, all needed to decide")
    slope: float = 1.0
    intercept: float = 0.0
    qualified: bool
    qualification_failures: list[str] = Field(default_factory=list)
    threshold: float | None = Field(
        None, description="lowest decision confidence that may go auto; None: never"
    )
    award_threshold: float | None = Field(
        None,
        description="lowest confidence at which an 'earned' may go auto, under the false-award "
        "bound; equal to threshold where no separate bound is set; None: awards never go auto",
    )
    target_error: float
    target_basis: str = Field("", description="where the target comes from, for the report")
    max_false_award: float | None = None
    confidence_level: float
    routing: Routing = Routing.selective
    certification_submissions: int = Field(
        0, description="submissions the thresholds were certified on"
    )

    def p_earned(self, p_met_each: list[float]) -> float:
        combined = combined_p_earned(p_met_each, self.award, len(self.criteria))
        return float(Recalibration(self.slope, self.intercept).apply(np.array([combined]))[0])

    def route(self, decision: str, confidence: float, item_reasons: set[Reason]) -> Decision:
        """Route a complete submission's decision; `item_reasons` are its items' input and
        criterion problems, which send the whole decision to a human."""
        threshold = self.award_threshold if decision == EARNED else self.threshold
        return route(
            self.stakes,
            self.qualified,
            self.qualification_failures,
            threshold,
            confidence,
            sorted(item_reasons),
        )


class RoutingPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gates: QualificationGates
    input_profile: InputProfile
    criteria: dict[str, CriterionPolicy]  # key: a CriterionKey's text
    decisions: dict[str, DecisionPolicy] = Field(
        default_factory=dict, description="per credential id"
    )
    language: LanguageFit | None = Field(
        None, description="how well the base model's tokenizer knows the training evidence"
    )

    def criterion(self, credential_id: str, criterion_id: str) -> CriterionPolicy | None:
        return self.criteria.get(str(CriterionKey(credential_id, criterion_id)))

    def decide(
        self, credential_id: str, criterion_id: str, text: str, confidence: float
    ) -> Decision:
        """Route one prediction, its text checked here; `confidence` is the calibrated
        probability of its level. (The scoring core, eval/scoring.py, routes whole requests.)"""
        policy = self.criterion(credential_id, criterion_id)
        if policy is None:
            return Decision(Route.human, (Reason.unknown_criterion,))
        problems = self.input_profile.problems(text)
        return policy.route(confidence, [Reason(problem) for problem in problems])

    def met_levels(self) -> dict[CriterionKey, int | None]:
        """Each criterion's met level index, what P(met) and a decision need."""
        return {
            CriterionKey(c.credential_id, c.criterion_id): c.met_index
            for c in self.criteria.values()
        }

    def credentials(self) -> dict[str, Credential]:
        """The rubrics this policy was fitted on, rebuilt from its criteria (levels, met levels,
        titles, stakes) and each credential's award rule: what a reviewed export needs to be
        training data again. Raises ValueError for a policy too old to hold its met levels."""
        grouped: dict[str, list[CriterionPolicy]] = {}
        for policy in self.criteria.values():
            grouped.setdefault(policy.credential_id, []).append(policy)
        credentials = {}
        for credential_id, policies in grouped.items():
            decision = self.decisions.get(credential_id)
            if decision is None:  # scored in part: its whole rubric and award rule are unknown
                continue
            order = {criterion: i for i, criterion in enumerate(decision.criteria)}  # the rubric's
            policies.sort(key=lambda p: order.get(p.criterion_id, len(order)))
            credentials[credential_id] = Credential(
                id=credential_id,
                title=decision.title or credential_id,
                stakes=decision.stakes,
                criteria=tuple(rubric_criterion(policy) for policy in policies),
                award=decision.award,
                routing=decision.routing,
            )
        return credentials


def rubric_criterion(policy: CriterionPolicy) -> Criterion:
    if policy.met_index is None:
        raise ValueError(
            f"the routing policy of {policy.credential_id}/{policy.criterion_id} predates met "
            "levels, so its rubric cannot be rebuilt; retrain the model"
        )
    descriptions = policy.level_descriptions or [""] * len(policy.level_labels)
    return Criterion(
        id=policy.criterion_id,
        title=policy.title or policy.criterion_id,
        levels=tuple(
            Level(value=value, label=label, description=description)
            for label, value, description in zip(
                policy.level_labels, policy.level_values, descriptions, strict=True
            )
        ),
        met_level=policy.level_labels[policy.met_index],
    )
