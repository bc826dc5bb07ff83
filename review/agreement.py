"""How reviewers agree with adjudicated submissions, with each other and with the model, in the
numbers the model is judged by (eval/agreement.py): the figures of `prescore reviewers report`
and the administrators' page, and what a reviewer may score live because of them
(`assessor_of`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from prescore.data.review_export import newest_models
from prescore.eval.agreement import adjacent_agreement, exact_agreement, quadratic_weighted_kappa
from prescore.eval.decisions import EARNED, cohen_kappa
from prescore.review.assessors import Plan, kind_of, plan_of, training_of
from prescore.review.database import Database
from prescore.review.export import decided
from prescore.review.tables import (
    BLIND,
    DECIDED,
    EXPERT,
    LIVE,
    PEER,
    TRAINING,
    Review,
    Reviewer,
    ReviewerRole,
    SubmissionEntry,
)
from prescore.review.verdicts import Assessor


def assessor_of(queue: Database, name: str) -> Assessor:
    """What a reviewer may score live now: their credentials where training is done; high
    stakes where they are an expert and not flagged."""
    with queue.sessions() as session:
        reviewer = session.get(Reviewer, name)
    credentials = list(reviewer.credentials) if reviewer else []
    kind, _ = kind_of(queue, name)
    live = [c for c in credentials if training_of(queue, name, c).complete]
    flagged = {f.credential_id for f in figures(queue, name) if f.flagged}
    high = [c for c in live if kind == EXPERT and c not in flagged]
    return Assessor(name, kind, live, high)


@dataclass(frozen=True)
class Pair:
    """Two verdicts on one submission: levels per criterion and decisions; `scales` holds each
    criterion's levels, lowest first."""

    levels: dict[str, str]
    decision: str
    other_levels: dict[str, str]
    other_decision: str
    scales: dict[str, list[str]]


@dataclass(frozen=True)
class Agreement:
    """Exact, adjacent and quadratic weighted kappa on criterion levels, agreement and Cohen's
    kappa on decisions; NaN where there is nothing to compare."""

    submissions: int = 0
    items: int = 0
    exact: float = math.nan
    adjacent: float = math.nan
    qwk: float = math.nan
    decision_agreement: float = math.nan
    decision_kappa: float = math.nan


def agreement(pairs: Iterable[Pair]) -> Agreement:
    """One set of numbers for reviewers, peer pairs and the model alike. QWK is per criterion
    (its own scale), averaged weighted by items; exact and adjacent pool every item."""
    pairs = list(pairs)
    per_criterion: dict[str, tuple[list[int], list[int], int]] = {}
    for pair in pairs:
        for criterion, scale in pair.scales.items():
            a, b = pair.levels.get(criterion), pair.other_levels.get(criterion)
            if a in scale and b in scale:
                first, second, _ = per_criterion.setdefault(criterion, ([], [], len(scale)))
                first.append(scale.index(a))
                second.append(scale.index(b))
    if not pairs:
        return Agreement()
    firsts = [level for a, _, _ in per_criterion.values() for level in a]
    seconds = [level for _, b, _ in per_criterion.values() for level in b]
    weighted = [
        (quadratic_weighted_kappa(a, b, n), len(a)) for a, b, n in per_criterion.values() if a
    ]
    total = sum(count for _, count in weighted)
    decided = [p for p in pairs if p.decision and p.other_decision]
    ours = [p.decision == EARNED for p in decided]
    theirs = [p.other_decision == EARNED for p in decided]
    return Agreement(
        submissions=len(pairs),
        items=len(firsts),
        exact=exact_agreement(firsts, seconds),
        adjacent=adjacent_agreement(firsts, seconds),
        qwk=sum(k * count for k, count in weighted) / total if total else math.nan,
        decision_agreement=(
            sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(decided)
            if decided
            else math.nan
        ),
        decision_kappa=cohen_kappa(ours, theirs),
    )


def scales_of(entry: SubmissionEntry) -> dict[str, list[str]]:
    return {item.criterion_id: list(item.levels) for item in entry.items}


def adjudicated_levels(entry: SubmissionEntry) -> dict[str, str]:
    return {item.criterion_id: item.decided_level or "" for item in entry.items}


def suggested_levels(entry: SubmissionEntry) -> dict[str, str]:
    return {item.criterion_id: item.suggested_level for item in entry.items}


def against_adjudicated(review: Review, entry: SubmissionEntry) -> Pair:
    return Pair(
        review.levels,
        review.decision,
        adjudicated_levels(entry),
        entry.decided_decision or "",
        scales_of(entry),
    )


@dataclass(frozen=True)
class Figures:
    """One reviewer on one credential: calibration, volume, time, agreement with the model."""

    reviewer: str
    kind: str
    admin: bool
    credential_id: str
    plan: Plan
    training_done: int
    calibration: Agreement  # training and blind verdicts against the adjudicated ones
    blind_items: int
    live_reviews: int
    median_seconds: float | None
    with_model: Agreement  # their live verdicts against the model's suggestions
    flagged: bool
    why: list[str] = field(default_factory=list)


def judge(calibration: Agreement, plan: Plan) -> list[str]:
    """Why a reviewer is under the credential's bar; empty where they meet it, or have not
    yet scored enough adjudicated submissions to be judged. QWK is judged once it is defined:
    on levels without variety (one and the same level throughout, as after a single item) it
    is undefined, and the decision agreement alone is judged until then."""
    if calibration.submissions < plan.judged_after:
        return []
    why = []
    if not math.isnan(calibration.qwk) and not calibration.qwk >= plan.min_qwk:
        why.append(f"QWK {calibration.qwk:.2f} < {plan.min_qwk:.2f}")
    if not calibration.decision_agreement >= plan.min_decision_agreement:
        why.append(
            f"decision agreement {calibration.decision_agreement:.0%} < "
            f"{plan.min_decision_agreement:.0%}"
        )
    return why


def entries_by_id(queue: Database, ids: set[int]) -> dict[int, SubmissionEntry]:
    if not ids:
        return {}
    with queue.sessions() as session:
        found = session.scalars(select(SubmissionEntry).where(SubmissionEntry.id.in_(ids)))
        return {entry.id: entry for entry in found}


def figures(queue: Database, reviewer: str | None = None) -> list[Figures]:
    """Per reviewer and assigned credential (one reviewer's with `reviewer`)."""
    query = select(Reviewer).order_by(Reviewer.name)
    if reviewer is not None:
        query = query.where(Reviewer.name == reviewer)
    with queue.sessions() as session:
        reviewers = list(session.scalars(query))
        reviews_query = select(Review).order_by(Review.id)
        if reviewer is not None:
            reviews_query = reviews_query.where(Review.reviewer == reviewer)
        reviews = list(session.scalars(reviews_query))
        roles = {role.name: role for role in session.scalars(select(ReviewerRole))}
    entries = entries_by_id(queue, {r.entry_id for r in reviews})
    rows = []
    for person in reviewers:
        role = roles.get(person.name)
        for credential_id in person.credentials:
            mine = [
                r
                for r in reviews
                if r.reviewer == person.name
                and r.credential_id == credential_id
                and r.entry_id in entries
            ]
            calibration = [r for r in mine if r.purpose in (TRAINING, BLIND)]
            live = [r for r in mine if r.purpose == LIVE]
            plan = plan_of(queue, credential_id)
            scored = agreement(against_adjudicated(r, entries[r.entry_id]) for r in calibration)
            with_model = agreement(
                Pair(
                    r.levels,
                    r.decision,
                    suggested_levels(entries[r.entry_id]),
                    entries[r.entry_id].decision,
                    scales_of(entries[r.entry_id]),
                )
                for r in live
            )
            times = [r.seconds for r in live if r.seconds is not None]
            why = judge(scored, plan)
            rows.append(
                Figures(
                    reviewer=person.name,
                    kind=role.kind if role else EXPERT,
                    admin=bool(role and role.admin),
                    credential_id=credential_id,
                    plan=plan,
                    training_done=sum(r.purpose == TRAINING for r in calibration),
                    calibration=scored,
                    blind_items=sum(r.purpose == BLIND for r in calibration),
                    live_reviews=len(live),
                    median_seconds=statistics.median(times) if times else None,
                    with_model=with_model,
                    flagged=bool(why),
                    why=why,
                )
            )
    return rows


@dataclass(frozen=True)
class Benchmark:
    """Per credential, what reviewers are compared with: two humans on the same submission
    (peer pairs, and a peer with the expert who decided after them), and the model's
    suggestions against the decided levels, in the same numbers."""

    credential_id: str
    human_pairs: Agreement
    model: Agreement


def benchmarks(queue: Database) -> list[Benchmark]:
    with queue.sessions() as session:
        live = list(
            session.scalars(select(Review).where(Review.purpose == LIVE).order_by(Review.id))
        )
        decided = list(
            session.scalars(
                select(SubmissionEntry)
                .where(SubmissionEntry.status == DECIDED)
                .order_by(SubmissionEntry.id)
            )
        )
    entries = {entry.id: entry for entry in decided}
    by_entry: dict[int, list[Review]] = {}
    for review in live:
        by_entry.setdefault(review.entry_id, []).append(review)
    pairs: dict[str, list[Pair]] = {}
    for entry_id, reviews in by_entry.items():
        entry = entries.get(entry_id)
        peers = [r for r in reviews if r.kind == PEER]
        if entry is None or not peers:
            continue
        second = next((r for r in reviews if r is not peers[0]), None)
        if second is not None:
            pairs.setdefault(entry.credential_id, []).append(
                Pair(
                    peers[0].levels,
                    peers[0].decision,
                    second.levels,
                    second.decision,
                    scales_of(entry),
                )
            )
    model: dict[str, list[Pair]] = {}
    for entry in decided:
        model.setdefault(entry.credential_id, []).append(
            Pair(
                suggested_levels(entry),
                entry.decision,
                adjudicated_levels(entry),
                entry.decided_decision or "",
                scales_of(entry),
            )
        )
    return [
        Benchmark(credential, agreement(pairs.get(credential, [])), agreement(model[credential]))
        for credential in sorted(model)
    ]


def scoring_models(queue: Database) -> dict[str, tuple[str, str]]:
    """Per credential with decided submissions, the newest (model name, version) that scored
    one: whose held-out agreement the report shows beside the reviewers'."""
    return newest_models(
        (entry.credential_id, entry.model_name, entry.model_version) for entry in decided(queue)
    )


def held_out(metrics: dict[str, float], credential_id: str) -> dict[str, tuple[float, float]]:
    """Per criterion of a credential: (the model's QWK, human-human QWK) on the held-out test
    split of the run that trained it (NaN where it had no second rater): the bar the model
    was qualified against (eval/qualification.py)."""
    found: dict[str, tuple[float, float]] = {}
    prefix = f"test_qwk.{credential_id}."
    for key, value in metrics.items():
        if key.startswith(prefix):
            criterion = key.removeprefix(prefix)
            human = metrics.get(f"eval_human_qwk.{credential_id}.{criterion}", math.nan)
            found[criterion] = (value, human)
    return dict(sorted(found.items()))
