"""Score evidence with a registered model and route it with the policy fitted beside it.

The BentoML service wires HTTP to `ScoringModel.score_submissions` (through the model host);
the core itself is eval/scoring.py, which the evaluation and the MLflow pyfunc model share.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from prescore.data.schema import Credential, CriterionKey
from prescore.eval.routing import RoutingPolicy
from prescore.eval.scoring import (
    ITEM_COLUMNS,
    ScoredBy,
    known_rows,
    raw_probabilities,
    score_items,
    score_submissions,
)
from prescore.eval.scoring import decide_submissions as decide_submissions_core
from prescore.models.registry import AUTO_RUNTIME, CHAMPION, RegisteredModel, fetch
from prescore.models.scorer import Scorer
from prescore.serving.schemas import (
    CredentialCard,
    CriterionCard,
    ErrorDetail,
    EvidenceToScore,
    ModelCard,
    ScoredEvidence,
    SubmissionDecision,
)


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

    @property
    def scored_by(self) -> ScoredBy:
        return ScoredBy(self.name, self.version, self.runtime)

    def unknown_criteria(self, items: list[EvidenceToScore]) -> list[tuple[int, str]]:
        """(position, 'credential/criterion') of each item this model cannot score."""
        known = known_rows(self.policy, frame_of(items))
        return [
            (i, str(CriterionKey(item.credential_id, item.criterion_id)))
            for i, item in enumerate(items)
            if not known[i]
        ]

    def input_problems(self, items: list[EvidenceToScore]) -> list[ErrorDetail]:
        """The items this version cannot score, each named as the API names it (a 422)."""
        credentials = {c.credential_id for c in self.policy.criteria.values()}
        problems = []
        for i, _ in self.unknown_criteria(items):
            if items[i].credential_id not in credentials:
                problems.append(
                    ErrorDetail(
                        field=f"items.{i}.credential_id",
                        rule="unknown_credential",
                        message="this model does not score that credential; see GET /credentials",
                    )
                )
            else:
                problems.append(
                    ErrorDetail(
                        field=f"items.{i}.criterion_id",
                        rule="unknown_criterion",
                        message="this credential has no such criterion in the loaded model; "
                        "see GET /credentials",
                    )
                )
        return problems

    def score_submissions(
        self, items: list[EvidenceToScore]
    ) -> tuple[list[ScoredEvidence], list[SubmissionDecision]]:
        """Each item's score, in order, and one decision per (submission_id, credential_id):
        the scoring core (eval/scoring.py) on this version's scorer and policy. An item this
        model cannot score comes back routed to a human (unknown_criterion), and so does its
        submission's decision."""
        frame = frame_of(items)
        raw = raw_probabilities(self.scorer, self.policy, frame)
        return score_submissions(self.policy, frame, raw, self.scored_by)

    def score(self, items: list[EvidenceToScore]) -> list[ScoredEvidence]:
        """The items' scores alone: the model host scores the items of many requests in one
        call, then decides each request's submissions with `decide`."""
        frame = frame_of(items)
        raw = raw_probabilities(self.scorer, self.policy, frame)
        return score_items(self.policy, frame, raw, self.scored_by)

    def decide(self, scores: list[ScoredEvidence]) -> list[SubmissionDecision]:
        """One decision per (submission_id, credential_id) of these scores, this version's."""
        return decide_submissions_core(scores, self.policy.decisions, self.policy.met_levels())


def frame_of(items: list[EvidenceToScore]) -> pd.DataFrame:
    """The items as the scoring core reads them (ITEM_COLUMNS): the text stays in memory."""
    return pd.DataFrame(
        [
            {
                "submission_id": i.submission_id,
                "credential_id": i.credential_id,
                "criterion_id": i.criterion_id,
                "text": i.text,
            }
            for i in items
        ],
        columns=list(ITEM_COLUMNS),
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
    """Each credential's rubric as stored with the model version that scored it (credential
    id -> (model name, version)), or, for versions trained before rubrics were stored, rebuilt
    from its routing policy; every version is fetched first, so a missing one raises before
    anything is written."""
    known: dict[tuple[str, str], dict[str, Credential]] = {}
    rubrics = {}
    for credential_id, (name, version) in sorted(scored_by.items()):
        if (name, version) not in known:
            registered = fetch(name, version)
            stored = registered.rubrics()
            known[(name, version)] = (
                stored if stored is not None else routing_policy(registered).credentials()
            )
        credentials = known[(name, version)]
        if credential_id not in credentials:
            raise LookupError(f"{name} version {version} does not score {credential_id}")
        rubrics[credential_id] = credentials[credential_id]
    return rubrics


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
