"""Agreement statistics against values worked out by hand, and the qualification gates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prescore.eval.agreement import (
    adjacent_agreement,
    exact_agreement,
    pearson,
    quadratic_weighted_kappa,
    standardised_mean_difference,
)
from prescore.eval.qualification import QualificationGates, measure, qualify


def test_qwk_matches_a_hand_computation() -> None:
    # 3 levels, weights w_ij = (i-j)^2 / 4. Observed pairs (human, machine):
    # (0,0) (1,1) (2,1) (2,2). Observed weighted disagreement: (0+0+1/4+0)/4 = 1/16.
    # Marginals: human [1,1,2]/4, machine [1,2,1]/4; expected weighted disagreement:
    # sum_ij h_i m_j w_ij = (1*2*1/4 + 1*1*1 + 1*1*1/4 + 1*1*1/4 + 2*1*1 + 2*2*1/4) / 16 = 5/16.
    # QWK = 1 - (1/16) / (5/16) = 0.8.
    human, machine = [0, 1, 2, 2], [0, 1, 1, 2]
    assert quadratic_weighted_kappa(human, machine, 3) == pytest.approx(0.8)
    assert quadratic_weighted_kappa(human, human, 3) == pytest.approx(1.0)
    # one level throughout: agreement beyond chance is undefined, not perfect
    assert math.isnan(quadratic_weighted_kappa([2, 2, 2], [2, 2, 2], 3))


def test_exact_adjacent_pearson_and_smd_by_hand() -> None:
    human, machine = [0, 1, 2, 3], [0, 2, 2, 0]
    assert exact_agreement(human, machine) == 0.5
    assert adjacent_agreement(human, machine) == 0.75  # the last pair is 3 apart
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    # means 2.5 and 1.5, sample variances 5/3 and 5/3: SMD = (2.5 - 1.5) / sqrt(5/3)
    assert standardised_mean_difference([1, 2, 3, 4], [0, 1, 2, 3]) == pytest.approx(
        1 / math.sqrt(5 / 3)
    )
    assert standardised_mean_difference([2, 2], [2, 2]) == 0.0


def test_gates_pass_a_good_model_and_name_every_failure_of_a_bad_one() -> None:
    rng = np.random.default_rng(0)
    human = rng.integers(0, 4, 200).tolist()
    second = [h if rng.uniform() < 0.8 else min(3, h + 1) for h in human]
    values = [1.0, 2.0, 3.0, 4.0]
    good = qualify(measure("c/k", human, human, values, second), QualificationGates())
    assert good.qualified and good.failures == []
    assert good.human_pairs == 200 and good.degradation > 0

    shifted = [min(3, h + 1) for h in human]  # always one level high: QWK fine, SMD not
    bad = qualify(measure("c/k", shifted, human, values, second), QualificationGates(min_items=500))
    assert not bad.qualified
    text = " ".join(bad.failures)
    assert "held-out items" in text and "|SMD|" in text

    random = qualify(
        measure("c/k", rng.integers(0, 4, 200).tolist(), human, values, second),
        QualificationGates(),
    )
    assert any(f.startswith("QWK") for f in random.failures)
    assert any("against human-human" in f for f in random.failures)


def test_human_human_is_first_rater_against_second_not_final_against_second() -> None:
    # the final level is the raters' adjudication: it sides with rater 2 whenever they differ
    first = [0, 1, 2, 3, 0, 1, 2, 3, 0, 3]
    second = [0, 1, 2, 3, 3, 0, 0, 1, 3, 0]
    final = second
    values = [1.0, 2.0, 3.0, 4.0]
    flattering = measure("c/k", final, final, values, second)
    honest = measure("c/k", final, final, values, second, first_human=first)
    assert flattering.human_qwk == pytest.approx(1.0)
    assert honest.human_qwk == pytest.approx(quadratic_weighted_kappa(first, second, 4))
    assert honest.human_qwk < 0.5
    assert honest.machine_qwk_on_pairs == pytest.approx(honest.human_qwk)  # machine == final
