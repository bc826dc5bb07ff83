"""Credential decisions: the award rule, P(earned), submissions and their routing."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError
from sklearn.metrics import cohen_kappa_score

from prescore.data.load import DataSource, EvidenceSet, load_evidence
from prescore.data.problems import InputError
from prescore.data.rubrics import load_rubrics
from prescore.data.schema import AwardRule, Credential, Stakes
from prescore.eval.decisions import (
    EARNED,
    NOT_YET,
    cohen_kappa,
    fit_recalibration,
    p_at_least,
)
from prescore.eval.evaluate import Evaluation, EvaluationSettings, evaluate
from prescore.eval.qualification import QualificationGates
from prescore.eval.report import markdown
from prescore.eval.routing import DecisionPolicy, Reason, Route
from prescore.eval.submissions import DecisionGates, group_submissions
from prescore.models.tfidf import TfidfScorer
from tests.conftest import RUBRIC, evidence_row, write_csv


def test_p_at_least_is_the_poisson_binomial_tail() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=4)
    for needed in range(5):
        brute = sum(
            np.prod([q if met else 1 - q for q, met in zip(p, outcome, strict=True)])
            for outcome in itertools.product([False, True], repeat=4)
            if sum(outcome) >= needed
        )
        assert p_at_least(p.tolist(), needed) == pytest.approx(brute)


def test_award_rules_read_from_a_rubric_and_refuse_what_cannot_work(tmp_path: Path) -> None:
    assert AwardRule.model_validate("all_met").required(3) == 3
    assert AwardRule.model_validate({"at_least": 2}).required(3) == 2
    assert AwardRule.model_validate({"rule": "at_least", "count": 1}).earned([False, True], 2)
    assert not AwardRule().earned([True, False], 2)
    with pytest.raises(ValidationError, match="needs a count"):
        AwardRule(rule="at_least")
    with pytest.raises(ValidationError, match="cannot be met"):
        Credential.model_validate({**RUBRIC, "award": {"at_least": 3}})
    (tmp_path / "wait-time.yaml").write_text(yaml.safe_dump({**RUBRIC, "award": "most"}))
    with pytest.raises(InputError) as caught:
        load_rubrics(tmp_path)
    (problem,) = caught.value.problems
    assert problem.file.endswith("wait-time.yaml") and problem.field == "award.rule"


def test_recalibration_repairs_overconfident_probabilities() -> None:
    rng = np.random.default_rng(1)
    true_p = rng.uniform(0.2, 0.8, size=2000)
    earned = rng.uniform(size=2000) < true_p
    overconfident = 1 / (1 + np.exp(-4 * np.log(true_p / (1 - true_p))))
    fitted = fit_recalibration(overconfident, earned)
    assert 0.15 < fitted.slope < 0.4  # undoes the factor 4 on the log-odds
    repaired = fitted.apply(overconfident)
    assert np.abs(repaired - true_p).mean() < np.abs(overconfident - true_p).mean() / 3
    assert fit_recalibration(overconfident[:10], earned[:10]).slope == 1.0  # too few


def test_cohen_kappa_matches_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.uniform(size=200) < 0.6, rng.uniform(size=200) < 0.5
    assert cohen_kappa(a.tolist(), b.tolist()) == pytest.approx(cohen_kappa_score(a, b))
    # undefined where either side gives one decision only: NaN, which fails every gate
    assert math.isnan(cohen_kappa([True, True], [True, True]))
    assert math.isnan(cohen_kappa([True, False, True], [True, True, True]))
    assert math.isnan(cohen_kappa([], []))


def two_criteria() -> dict[str, Credential]:
    return {"wait-time": Credential.model_validate(RUBRIC)}


def test_submissions_group_items_and_know_when_they_are_complete() -> None:
    rows = [
        # s1: both criteria, planning met (Proficient = index 2), reflection met (index >= 2)
        ("a", "s1", "planning", 2, [2, 1]),
        ("b", "s1", "reflection", 3, [3, 3]),
        # s2: planning only: incomplete
        ("c", "s2", "planning", 0, [0, 0]),
    ]
    split = pd.DataFrame(
        [
            {
                "id": i,
                "submission_id": s,
                "credential_id": "wait-time",
                "criterion_id": c,
                "label": label,
                "scores": [{"level": r} for r in raters],
            }
            for i, s, c, label, raters in rows
        ]
    )
    probabilities = np.array([[0.1, 0.2, 0.7, 0.0], [0.1, 0.1, 0.3, 0.5], [0.9, 0.1, 0.0, 0.0]])
    s1, s2 = group_submissions(split, probabilities, two_criteria())
    assert s1.complete and not s2.complete
    assert s1.human_earned is True and s2.human_earned is False
    assert s1.rater_earned == (True, False)  # rater 2 put planning below Proficient
    assert s1.p_combined == pytest.approx(0.7 * 0.8)  # all_met: the product of P(met)


def decision_policy(**overrides: object) -> DecisionPolicy:
    settings: dict[str, object] = {
        "credential_id": "wait-time",
        "stakes": Stakes.low,
        "award": AwardRule(),
        "criteria": ["planning", "reflection"],
        "qualified": True,
        "threshold": 0.8,
        "award_threshold": 0.9,
        "target_error": 0.1,
        "confidence_level": 0.9,
    }
    return DecisionPolicy.model_validate({**settings, **overrides})


def test_a_decision_goes_auto_only_when_every_condition_holds() -> None:
    assert decision_policy().route(NOT_YET, 0.85, set()).route is Route.auto
    award = decision_policy().route(EARNED, 0.85, set())
    assert award.route is Route.human and award.reasons == (Reason.low_confidence,)
    assert decision_policy().route(EARNED, 0.95, set()).route is Route.auto
    high = decision_policy(stakes=Stakes.high).route(NOT_YET, 0.99, set())
    assert high.reasons == (Reason.high_stakes,)
    never = decision_policy(award_threshold=None).route(EARNED, 0.99, set())
    assert never.reasons == (Reason.no_safe_threshold,)
    incomplete = decision_policy().route(NOT_YET, 0.99, {Reason.incomplete_submission})
    assert incomplete.route is Route.human


def submission_evidence(
    folder: Path, stakes: str, groups: bool = False, routing: str = "selective"
) -> DataSource:
    """Two criteria per educator, one submission each; the text names the levels. With
    `groups`, the fixture's gender field, which coincides with the criterion."""
    rubrics = folder / "rubrics"
    rubrics.mkdir()
    rubric = {**RUBRIC, "stakes": stakes, "routing": routing}
    (rubrics / "wait-time.yaml").write_text(yaml.safe_dump(rubric))
    words = {"0": "absent", "1": "emerging", "2": "steady", "3": "masterful"}
    rows = [evidence_row(n) for n in range(800)]
    for row in rows:
        level = words.get(row["final_level"], row["final_level"])
        row["text"] = f"My wait time practice is {level} {level}. " + row["text"]
        row["submission_id"] = row["educator_id"]
        if not groups:
            del row["group_gender"]
    columns = [*rows[0].keys()]
    return DataSource(path=write_csv(folder / "evidence.csv", rows, columns))


def test_evaluation_decides_submissions_and_counts_only_what_serving_routes_auto(
    tmp_path: Path,
) -> None:
    evidence = load_evidence(submission_evidence(tmp_path, "low"))
    train = evidence.splits["train"]
    scorer = TfidfScorer(min_df=1, alpha=0.01).fit(train, np.asarray(train["label"]))
    settings = EvaluationSettings(
        gates=QualificationGates(min_items=20),
        decision_gates=DecisionGates(min_submissions=20),
        certification_share=0.7,  # the fixture's calibration split is small
    )
    evaluation = evaluate(scorer, evidence, settings)
    triage = evaluation.decisions["wait-time"]
    policy = evaluation.policy.decisions["wait-time"]
    assert triage.complete == triage.submissions == len(evidence.splits["test"]) // 2
    assert policy.qualified, policy.qualification_failures
    assert policy.target_error == 0.0  # the fixture's two raters always agree on the decision
    assert triage.auto == 0 and triage.guarantee_held  # a zero target proves nothing safe
    assert "Credential decisions" in evaluation_markdown(evaluation)

    # one rater only: the configured decision target applies
    looser = settings.model_copy(update={"decision_target_error": 0.2})
    relaxed = evaluate(scorer, without_second_rater(evidence), looser)
    assert relaxed.policy.decisions["wait-time"].target_error == 0.2
    decided = relaxed.decisions["wait-time"]
    assert decided.auto > 0 and decided.auto_error <= 0.2

    (tmp_path / "high").mkdir()
    high = load_evidence(submission_evidence(tmp_path / "high", "high"))
    assert evaluate(scorer, without_second_rater(high), looser).decisions["wait-time"].auto == 0


def without_second_rater(evidence: EvidenceSet) -> EvidenceSet:
    splits = {}
    for name, split in evidence.splits.items():
        copy = split.copy()
        copy["scores"] = [scores[:1] for scores in copy["scores"]]
        splits[name] = copy
    return replace(evidence, splits=splits)


def evaluation_markdown(evaluation: Evaluation) -> str:
    return markdown(evaluation, "fixture")


def test_routed_in_full_a_criterion_flagged_for_a_subgroup_disqualifies_the_decision(
    tmp_path: Path,
) -> None:
    evidence = load_evidence(submission_evidence(tmp_path, "low", groups=True, routing="full"))
    train = evidence.splits["train"]
    scorer = TfidfScorer(min_df=1, alpha=0.01).fit(train, np.asarray(train["label"]))
    settings = EvaluationSettings(
        gates=QualificationGates(min_items=20),
        decision_gates=DecisionGates(min_submissions=20),
        min_group_size=20,
    )
    evaluation = evaluate(scorer, evidence, settings)
    flagged = [row for row in evaluation.fairness if row.flagged]
    assert flagged and all(row.items >= 20 for row in flagged)
    policy = evaluation.policy.decisions["wait-time"]
    assert not policy.qualified
    assert any("subgroup_agreement gender" in f for f in policy.qualification_failures)
    assert evaluation.decisions["wait-time"].auto == 0
    small = settings.model_copy(update={"min_group_size": 10_000})  # too few to judge: no flag
    assert not any(row.flagged for row in evaluate(scorer, evidence, small).fairness)


def test_a_false_award_bound_fits_one_threshold_per_side() -> None:
    from prescore.eval.submissions import side_thresholds

    rng = np.random.default_rng(3)
    n = 20_000
    confidence = rng.uniform(0.5, 1.0, size=n)
    # a little under-confident, so a tight award bound can be proven near the top
    correct = rng.uniform(size=n) < np.minimum(confidence + 0.03, 1.0)
    awarded = rng.uniform(size=n) < 0.5
    not_yet, award = side_thresholds(confidence, correct, awarded, 0.10, 0.03, 0.9)
    assert not_yet is not None and award is not None and award > not_yet
    for side, threshold, bound in ((~awarded, not_yet, 0.10), (awarded, award, 0.03)):
        chosen = side & (confidence >= threshold)
        assert 1 - correct[chosen].mean() <= bound
