"""The scoring core the service wraps: a registered model and its policy, item by item."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from prescore.data.schema import Stakes
from prescore.eval.routing import Reason, Route
from prescore.models.registry import configure_tracking
from prescore.serving.schemas import EvidenceToScore
from prescore.serving.scoring import ScoringModel
from tests.conftest import evidence_row
from tests.serving.conftest import MODEL, Registry


@pytest.fixture(scope="module")
def registered(registry: Registry) -> ScoringModel:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
        configure_tracking()
        return ScoringModel.from_registry(MODEL, "1")


def item(n: int, **overrides: str) -> EvidenceToScore:
    row = evidence_row(n)
    fields = {
        "submission_id": f"s{n}",
        "credential_id": "wait-time",
        "criterion_id": row["criterion_id"],
        "evidence_type": "reflection",
        "text": row["text"] + f" Overall {row['final_level']}.",
    }
    return EvidenceToScore(**{**fields, **overrides})


def test_scores_carry_level_probabilities_set_route_and_model(registered: ScoringModel) -> None:
    items = [item(n) for n in range(300, 310)]
    scored = registered.score(items)
    assert [s.submission_id for s in scored] == [i.submission_id for i in items]
    for one in scored:
        probabilities = [p.probability for p in one.probabilities]
        assert np.isclose(sum(probabilities), 1)
        assert one.confidence == pytest.approx(
            max(probabilities), rel=1e-12
        )  # a difference of sums
        assert one.level == one.probabilities[int(np.argmax(probabilities))].label
        assert one.level in one.prediction_set
        assert one.model_name == "prescore-serve" and one.model_version == "1"
        # the route, worked out from the criterion's fitted policy here, not by the same call
        criterion = registered.policy.criterion(one.credential_id, one.criterion_id)
        assert criterion is not None
        expected = {Reason.high_stakes} if criterion.stakes is Stakes.high else set()
        expected |= set() if criterion.qualified else {Reason.model_not_qualified}
        if criterion.threshold is None:
            expected.add(Reason.no_safe_threshold)
        elif one.confidence < criterion.threshold:
            expected.add(Reason.low_confidence)
        assert set(one.reasons) == expected  # these texts are like the training evidence
        assert one.route == (Route.human if expected else Route.auto)


def test_batch_and_single_give_the_same_answer(registered: ScoringModel) -> None:
    items = [item(n) for n in range(400, 406)]
    batch = registered.score(items)
    singles = [registered.score([i])[0] for i in items]
    assert batch == singles


def test_an_unknown_criterion_is_named_and_flagged_not_scored(registered: ScoringModel) -> None:
    items = [item(1, submission_id="a"), item(2, criterion_id="questioning", submission_id="a")]
    assert registered.unknown_criteria(items) == [(1, "wait-time/questioning")]
    (problem,) = registered.input_problems(items)
    assert (problem.field, problem.rule) == ("items.1.criterion_id", "unknown_criterion")
    scores, (decision,) = registered.score_submissions(items)
    assert scores[1].route == Route.human and scores[1].reasons == [Reason.unknown_criterion]
    assert scores[1].probabilities == [] and scores[0].probabilities
    assert decision.route == Route.human and Reason.unknown_criterion in decision.reasons


def test_the_text_never_shows_in_a_repr_or_a_validation_error() -> None:
    secret = "SECRET-EVIDENCE-4711 my student Jamie said"
    assert secret not in repr(item(1, text=secret))
    with pytest.raises(ValidationError) as caught:
        EvidenceToScore(
            submission_id="s",
            credential_id="bad id!",
            criterion_id="c",
            evidence_type="r",
            text=secret,
        )
    assert [e["loc"] for e in caught.value.errors()] == [("credential_id",)]


def test_a_submission_gets_one_decision_from_all_its_criteria(registered: ScoringModel) -> None:
    card = registered.card()
    (credential,) = card.credentials
    assert credential.decision is not None and credential.decision.award.rule == "all_met"
    both = [item(10, submission_id="a"), item(11, submission_id="a")]  # planning, reflection
    alone = [item(12, submission_id="b")]
    items = both + alone
    scores, (first, second) = registered.score_submissions(items)
    assert (first.submission_id, second.submission_id) == ("a", "b")
    met = [
        sum(p.probability for p in s.probabilities[c.met_index or 0 :])
        for s, c in zip(scores[:2], credential.criteria, strict=True)
    ]
    assert first.p_earned == pytest.approx(credential.decision.p_earned(met))
    assert first.decision == ("earned" if first.p_earned >= 0.5 else "not_yet")
    assert first.confidence == pytest.approx(max(first.p_earned, 1 - first.p_earned))
    assert "incomplete_submission" not in first.reasons
    assert second.route == "human" and "incomplete_submission" in second.reasons
    met_index = {c.criterion_id: c.met_index for c in credential.criteria}
    for decided, members in ((first, scores[:2]), (second, scores[2:])):
        below = [
            s.criterion_id
            for s in members
            if [p.label for p in s.probabilities].index(s.level) < (met_index[s.criterion_id] or 0)
        ]
        assert decided.criteria_not_met == below
