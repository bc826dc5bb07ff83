"""Selective automation: fits on their own rows, thresholds confirmed on unseen data, gates
that cannot pass by accident."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from prescore.data.schema import Routing
from prescore.eval.decisions import Recalibration
from prescore.eval.protocol import calibration_plan, selection_rows
from prescore.eval.qualification import QualificationGates, measure, qualify
from prescore.eval.routing import DecisionPolicy, Reason, Route
from prescore.eval.selective import SUBGROUP_ERROR, error_tests, p_value_above
from prescore.eval.submissions import (
    DecisionGates,
    DecisionSettings,
    Submission,
    confirm_on_test,
    qualify_decisions,
)
from tests.eval.test_decisions import decision_policy as decision_policy_with

EDUCATORS = [f"e{n}" for n in range(400)]


def test_split_certifies_on_rows_no_fit_has_seen() -> None:
    plan = calibration_plan(EDUCATORS, "split", 0.5, selects=True)
    ((certify, fit_rows),) = plan.folds
    assert not (certify & fit_rows).any() and (certify | fit_rows).all()
    assert np.array_equal(plan.served, fit_rows)  # served fits are the ones certified
    assert np.array_equal(selection_rows(EDUCATORS, 0.5), fit_rows)
    assert 0.4 < certify.mean() < 0.6


@pytest.mark.parametrize("selects", [False, True])
def test_crossfit_scores_each_certifying_row_by_fits_on_other_rows(selects: bool) -> None:
    plan = calibration_plan(EDUCATORS, "crossfit", 0.5, selects=selects)
    for certify, fit_rows in plan.folds:
        assert not (certify & fit_rows).any()
    certified = plan.certify
    selection = selection_rows(EDUCATORS, 0.5)
    if selects:  # rows that chose the epoch or the weights certify nothing
        assert not (certified & selection).any() and certified[~selection].all()
    else:
        assert certified.all()
    assert plan.served.all()


def test_the_same_educator_lands_on_the_same_side_whatever_else_is_in_the_split() -> None:
    alone = selection_rows(["e7"], 0.5)[0]
    assert selection_rows(["e1", "e7", "e9"], 0.5)[1] == alone


def test_error_tests_judge_each_large_enough_group_on_its_own_auto_decisions() -> None:
    # everyone within target, one group three times over it: what selective automation hides
    groups = [{"gender": "f"}] * 100 + [{"gender": "m"}] * 100 + [{"gender": "x"}] * 10
    auto = np.ones(210, dtype=bool)
    wrong = np.zeros(210, dtype=bool)
    wrong[100:120] = True  # 20 of 100 wrong for m: 20%
    wrong[200] = True
    everyone, f, m = error_tests(auto, wrong, groups, 0.1, min_group_size=50)
    assert (everyone.group, everyone.auto, everyone.errors) == ("", 210, 21)
    assert not everyone.failed  # 10% against a 10% target
    assert not f.failed and f.errors == 0
    assert m.failed and m.group == "gender=m" and m.p_value < 0.05
    assert SUBGROUP_ERROR in m.failure() and "20 of 100" in m.failure()
    assert p_value_above(0, 50, 0.1) == 1.0 and p_value_above(5, 0, 0.1) == 1.0


def submission(n: int, p: float, earned: bool, group: str) -> Submission:
    return Submission(
        credential_id="wait-time",
        submission_id=f"s{n}",
        rows=[],
        complete=True,
        p_combined=p,
        human_earned=earned,
        rater_earned=None,
        groups={"language": group},
    )


def decision_policy(**overrides: object) -> DecisionPolicy:
    """test_decisions' policy, one threshold for both decisions."""
    return decision_policy_with(**{"award_threshold": 0.8, **overrides})


SETTINGS = DecisionSettings(
    fallback_target_error=0.1,
    max_false_award=None,
    confidence_level=0.9,
    gates=DecisionGates(min_submissions=20),
    min_group_size=50,
)


def test_a_group_whose_auto_decisions_err_disqualifies_the_credential_by_name() -> None:
    test = [submission(n, 0.95, True, "en") for n in range(100)]  # all right
    test += [submission(100 + n, 0.95, n >= 22, "es") for n in range(100)]  # 22 wrong
    confirmed = confirm_on_test(decision_policy(), test, [], SETTINGS)
    assert not confirmed.qualified
    (failure,) = confirmed.qualification_failures
    assert (
        failure.startswith(SUBGROUP_ERROR) and "language=es" in failure and "22 of 100" in failure
    )
    route = confirmed.route("earned", 0.95, set())
    assert route.route is Route.human
    assert Reason.subgroup_error in route.reasons
    fair = [submission(n, 0.95, n % 100 >= 8, "en" if n < 100 else "es") for n in range(200)]
    assert confirm_on_test(decision_policy(), fair, [], SETTINGS).qualified


def test_the_whole_populations_error_is_confirmed_on_test() -> None:
    test = [submission(n, 0.95, n >= 40, "en") for n in range(200)]  # 20% wrong, target 10%
    confirmed = confirm_on_test(decision_policy(), test, [], SETTINGS)
    assert not confirmed.qualified
    assert confirmed.qualification_failures[0].startswith("test_error")


def test_full_routing_is_judged_by_the_williamson_gates() -> None:
    test = [submission(n, 0.95, n >= 40, "en") for n in range(200)]
    full = decision_policy(routing=Routing.full, threshold=0.0, award_threshold=0.0)
    confirmed = confirm_on_test(full, test, [], SETTINGS)
    # the model said "earned" throughout: kappa is undefined, and undefined fails
    assert any("decision kappa nan" in f for f in confirmed.qualification_failures)


def test_a_decision_kappa_that_is_undefined_fails_its_gates() -> None:
    both_earned = [Submission("c", f"s{n}", [], True, 0.9, True, (True, True)) for n in range(60)]
    failures, kappa, human_kappa = qualify_decisions(
        both_earned, Recalibration(), DecisionGates(min_submissions=20)
    )
    assert math.isnan(kappa) and math.isnan(human_kappa)
    assert any("< 0.70" in f for f in failures)
    assert any("against human-human" in f for f in failures)  # NaN degradation fails too


def test_an_undefined_human_qwk_fails_the_degradation_gate() -> None:
    measured = measure(
        "c/k",
        [0, 1, 2, 1] * 15,
        [0, 1, 2, 2] * 15,
        [0.0, 1.0, 2.0],
        second_human=[1] * 60,
        first_human=[1] * 60,  # both raters one level throughout: their QWK is undefined
    )
    verdict = qualify(measured, QualificationGates(min_qwk=0.0, max_abs_smd=10, min_items=10))
    assert math.isnan(measured.human_qwk)
    assert not verdict.qualified and "against human-human" in verdict.failures[0]


def test_groups_from_the_split_rows() -> None:
    from prescore.eval.evaluate import row_groups

    split = pd.DataFrame({"group_gender": ["f", None], "text": ["a", "b"]})
    assert row_groups(split) == [{"gender": "f"}, {}]
    assert row_groups(pd.DataFrame({"text": ["a"]})) == [{}]
