"""Score evidence with a registered model and route it with the policy fitted beside it.

The BentoML service wires HTTP to `ScoringModel.score`; nothing here knows about HTTP.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prescore.data.schema import Credential, CriterionKey
from prescore.eval.calibration import apply_temperature
from prescore.eval.decisions import EARNED, NOT_YET, decision_of, p_at_least
from prescore.eval.routing import Decision, Reason, Route, RoutingPolicy
from prescore.models.registry import AUTO_RUNTIME, CHAMPION, RegisteredModel, fetch
from prescore.models.scorer import Scorer
from prescore.serving.schemas import (
    CredentialCard,
    CriterionCard,
    ErrorDetail,
    EvidenceToScore,
    LevelProbability,
    ModelCard,
    ScoredEvidence,
    SubmissionDecision,
)


class UnknownCriterion(ValueError):
    def __init__(self, unknown: list[tuple[int, str]]) -> None:
        self.unknown = unknown
        listed = ", ".join(f"items[{i}]: {key}" for i, key in unknown)
        super().__init__(f"this model does not score {listed}; GET /credentials lists what it does")


@dataclass(frozen=True)
class ScoringModel:
    scorer: Scorer
    policy: RoutingPolicy
    name: str
    version: str

    @classmethod
    def from_registry(
        cls, name: str, alias_or_version: str = CHAMPION, runtime: str = AUTO_RUNTIME
    ) -> ScoringModel:
        """The scorer and routing policy of a registered model version; `runtime` as in
        `RegisteredModel.scorer` (auto: the fastest ONNX copy that passed its check)."""
        return cls.from_registered(fetch(name, alias_or_version), runtime)

    @classmethod
    def from_registered(
        cls, registered: RegisteredModel, runtime: str = AUTO_RUNTIME
    ) -> ScoringModel:
        """From a downloaded version: its scorer and the routing policy fitted beside it."""
        policy = routing_policy(registered)
        return cls(registered.scorer(runtime), policy, registered.name, registered.version)

    @property
    def runtime(self) -> str:
        return self.scorer.runtime

    def card(self) -> ModelCard:
        """What this model scores, with each criterion's qualification and stakes."""
        credentials: dict[str, CredentialCard] = {}
        for policy in self.policy.criteria.values():
            card = credentials.setdefault(
                policy.credential_id,
                CredentialCard(
                    credential_id=policy.credential_id,
                    stakes=policy.stakes.value,
                    criteria=[],
                    decision=self.policy.decisions.get(policy.credential_id),
                ),
            )
            card.criteria.append(
                CriterionCard(
                    criterion_id=policy.criterion_id,
                    title=policy.title,
                    levels=policy.level_labels,
                    level_descriptions=policy.level_descriptions,
                    met_index=policy.met_index,
                    qualified=policy.qualified,
                    qualification_failures=policy.qualification_failures,
                    auto_threshold=policy.threshold,
                    target_error=policy.target_error,
                )
            )
        return ModelCard(
            model_name=self.name,
            model_version=self.version,
            runtime=self.runtime,
            credentials=sorted(credentials.values(), key=lambda c: c.credential_id),
            language_warning=self.policy.language.warning if self.policy.language else None,
        )

    def unknown_criteria(self, items: list[EvidenceToScore]) -> list[tuple[int, str]]:
        """(position, 'credential/criterion') of each item this model cannot score."""
        return [
            (i, str(CriterionKey(item.credential_id, item.criterion_id)))
            for i, item in enumerate(items)
            if self.policy.criterion(item.credential_id, item.criterion_id) is None
        ]

    def score_or_flag(self, items: list[EvidenceToScore]) -> list[ScoredEvidence]:
        """Like `score`, but an item this model cannot score comes back routed to a human with
        reason `unknown_criterion` and no suggestion, so one item never fails a shared batch."""
        unknown = {i for i, _ in self.unknown_criteria(items)}
        known = [item for i, item in enumerate(items) if i not in unknown]
        scored = iter(self.score(known))
        return [
            self._unscorable(item) if i in unknown else next(scored) for i, item in enumerate(items)
        ]

    def _unscorable(self, item: EvidenceToScore) -> ScoredEvidence:
        return ScoredEvidence(
            submission_id=item.submission_id,
            credential_id=item.credential_id,
            criterion_id=item.criterion_id,
            level="",
            level_value=0.0,
            expected_value=0.0,
            probabilities=[],
            confidence=0.0,
            prediction_set=[],
            route=Route.human,
            reasons=[Reason.unknown_criterion],
            model_name=self.name,
            model_version=self.version,
            runtime=self.runtime,
        )

    def score(self, items: list[EvidenceToScore]) -> list[ScoredEvidence]:
        """One prediction per item, in order. Check `unknown_criteria` first: they raise."""
        unknown = self.unknown_criteria(items)
        if unknown:
            raise UnknownCriterion(unknown)
        if not items:
            return []
        frame = pd.DataFrame(
            [
                {"text": i.text, "credential_id": i.credential_id, "criterion_id": i.criterion_id}
                for i in items
            ]
        )
        raw = self.scorer.predict_proba(frame)
        return [self._scored(item, row) for item, row in zip(items, raw, strict=True)]

    def _scored(self, item: EvidenceToScore, raw: np.ndarray) -> ScoredEvidence:
        policy = self.policy.criterion(item.credential_id, item.criterion_id)
        assert policy is not None
        levels = len(policy.level_labels)
        calibrated = apply_temperature(raw[None, :levels], policy.temperature)[0]
        best, confidence = policy.suggest(calibrated)
        decision = self.policy.decide(item.credential_id, item.criterion_id, item.text, confidence)
        return ScoredEvidence(
            submission_id=item.submission_id,
            credential_id=item.credential_id,
            criterion_id=item.criterion_id,
            level=policy.level_labels[best],
            level_value=policy.level_values[best],
            expected_value=float(np.dot(calibrated, policy.level_values)),
            probabilities=[
                LevelProbability(label=label, value=value, probability=float(p))
                for label, value, p in zip(
                    policy.level_labels, policy.level_values, calibrated, strict=True
                )
            ],
            confidence=confidence,
            prediction_set=[
                policy.level_labels[k] for k in policy.prediction_set(calibrated.tolist())
            ],
            route=decision.route,
            reasons=list(decision.reasons),
            model_name=self.name,
            model_version=self.version,
            runtime=self.runtime,
        )


def routing_policy(registered: RegisteredModel) -> RoutingPolicy:
    """The routing policy fitted beside a downloaded version's scorer."""
    policy_file = registered.routing_policy_file()
    if policy_file is None:
        raise FileNotFoundError(
            f"{registered.name} version {registered.version} has no routing policy; retrain"
        )
    return RoutingPolicy.model_validate(json.loads(policy_file.read_text()))


def rubrics_of(scored_by: dict[str, tuple[str, str]]) -> dict[str, Credential]:
    """Each credential's rubric, rebuilt from the routing policy of the model version that
    scored it (credential id -> (model name, version)); every version is fetched first, so a
    missing one raises before anything is written."""
    policies: dict[tuple[str, str], RoutingPolicy] = {}
    rubrics = {}
    for credential_id, (name, version) in sorted(scored_by.items()):
        if (name, version) not in policies:
            policies[(name, version)] = routing_policy(fetch(name, version))
        credentials = policies[(name, version)].credentials()
        if credential_id not in credentials:
            raise LookupError(f"{name} version {version} does not score {credential_id}")
        rubrics[credential_id] = credentials[credential_id]
    return rubrics


def decide_submissions(
    items: list[EvidenceToScore], scores: list[ScoredEvidence], card: ModelCard
) -> list[SubmissionDecision]:
    """One decision per (submission_id, credential_id), in the order first seen, from its
    items' calibrated probabilities and the credential's decision policy."""
    groups: dict[tuple[str, str], list[ScoredEvidence]] = {}
    for item, scored in zip(items, scores, strict=True):
        groups.setdefault((item.submission_id, item.credential_id), []).append(scored)
    credentials = {c.credential_id: c for c in card.credentials}
    criteria = card.criteria_by_key()
    return [
        decide_one(submission_id, members, credentials[credential_id], criteria)
        for (submission_id, credential_id), members in groups.items()
    ]


def decide_one(
    submission_id: str,
    members: list[ScoredEvidence],
    credential: CredentialCard,
    criteria: dict[CriterionKey, tuple[CriterionCard, str]],
) -> SubmissionDecision:
    met_each = []
    for scored in members:
        criterion, _ = criteria[CriterionKey(scored.credential_id, scored.criterion_id)]
        if criterion.met_index is None:  # every policy fitted by evaluate() names one
            raise ValueError(f"{scored.credential_id}/{scored.criterion_id} has no met level")
        met_each.append(sum(p.probability for p in scored.probabilities[criterion.met_index :]))
    reasons = {r for s in members for r in s.reasons if r in ITEM_REASONS_FOR_DECISIONS}
    policy = credential.decision
    first = members[0]
    if policy is None:  # the model does not score the whole rubric: it cannot decide
        p_earned = p_at_least(met_each, len(met_each))  # every criterion sent, met
        decision, confidence = decision_of(p_earned)
        route = Decision(Route.human, (Reason.model_not_qualified, *sorted(reasons)))
    else:
        if sorted(s.criterion_id for s in members) != sorted(policy.criteria):
            reasons.add(Reason.incomplete_submission)
        p_earned = policy.p_earned(met_each)
        decision, confidence = decision_of(p_earned)
        route = policy.route(decision, confidence, reasons)
    return SubmissionDecision(
        submission_id=submission_id,
        credential_id=credential.credential_id,
        decision=EARNED if decision == EARNED else NOT_YET,
        p_earned=p_earned,
        confidence=confidence,
        route=route.route,
        reasons=list(route.reasons),
        criteria_not_met=criteria_to_strengthen(members, met_each, decision),
        model_name=first.model_name,
        model_version=first.model_version,
    )


def criteria_to_strengthen(
    members: list[ScoredEvidence], met_each: list[float], decision: str
) -> list[str]:
    """Criteria more likely unmet than met, the same probabilities the decision rests on; a
    "not yet" always names at least the criterion least likely met, so the feedback is never
    empty where the credential is withheld."""
    weakest = [s.criterion_id for s, p in zip(members, met_each, strict=True) if p < 0.5]
    if decision == NOT_YET and not weakest:
        weakest = [members[int(np.argmin(met_each))].criterion_id]
    return weakest


# an item's problems that make its submission's decision a human's too
ITEM_REASONS_FOR_DECISIONS = {
    Reason.unknown_criterion,
    Reason.input_empty,
    Reason.input_too_short,
    Reason.input_too_long,
    Reason.input_unfamiliar_language_or_noise,
}


def submission_problems(items: list[EvidenceToScore]) -> list[ErrorDetail]:
    """A submission is one credential, one item per criterion: its decision needs that."""
    problems = []
    credential_of: dict[str, str] = {}
    educator_of: dict[str, str | None] = {}
    seen: set[tuple[str, str, str]] = set()
    for i, item in enumerate(items):
        author = educator_of.setdefault(item.submission_id, item.educator_id)
        if author != item.educator_id:  # the queue keeps one owner per submission, for forget
            problems.append(
                ErrorDetail(
                    field=f"items.{i}.educator_id",
                    rule="submission_mixes_educators",
                    message=f"items of submission {item.submission_id!r} name another "
                    "educator_id (or none) before; one submission has one owner, on every item",
                )
            )
        first = credential_of.setdefault(item.submission_id, item.credential_id)
        if first != item.credential_id:
            problems.append(
                ErrorDetail(
                    field=f"items.{i}.credential_id",
                    rule="submission_mixes_credentials",
                    message=f"items of submission {item.submission_id!r} name credential "
                    f"{first!r} before; one submission is for one credential",
                )
            )
        key = (item.submission_id, item.credential_id, item.criterion_id)
        if key in seen:
            problems.append(
                ErrorDetail(
                    field=f"items.{i}.criterion_id",
                    rule="criterion_repeated",
                    message=f"submission {item.submission_id!r} already has an item for "
                    "this criterion; send one item per criterion",
                )
            )
        seen.add(key)
    return problems
