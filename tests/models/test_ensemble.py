"""The ensemble: members fitted together, weights chosen on held-out items, exact round trip."""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prescore.models.ensemble import (
    ALL_CRITERIA,
    EnsembleScorer,
    best_weights,
    simplex_grid,
)
from prescore.models.scorer import load_scorer
from prescore.models.tfidf import TfidfScorer
from tests.conftest import scoring_frame

TWO_TFIDFS = [
    {"kind": "tfidf", "params": {"min_df": 1}},
    {"kind": "tfidf", "params": {"min_df": 1, "head": "logistic"}},
]


def nll(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-9, 1))))


@pytest.mark.parametrize(("members", "step"), [(2, 0.1), (3, 0.1), (3, 0.25)])
def test_the_grid_covers_the_simplex(members: int, step: float) -> None:
    grid = simplex_grid(members, step)
    parts = round(1 / step)
    assert len(grid) == comb(parts + members - 1, members - 1)
    assert np.allclose(grid.sum(axis=1), 1) and (grid >= 0).all()


def test_weights_go_to_the_member_that_gives_the_truth_most_probability() -> None:
    labels = np.array([0, 1, 2, 1])
    right = np.eye(3)[labels] * 0.8 + 0.2 / 3
    wrong = np.eye(3)[(labels + 1) % 3] * 0.8 + 0.2 / 3
    stacked = np.stack([wrong, right])
    assert best_weights(stacked, labels, simplex_grid(2, 0.1)).tolist() == [0.0, 1.0]
    # each member right on half the items: only a mix gives every item some probability
    first_half = (np.arange(4) < 2)[:, None]
    split = np.stack([np.where(first_half, right, wrong), np.where(first_half, wrong, right)])
    mixed = best_weights(split, labels, simplex_grid(2, 0.1))
    assert 0 < mixed[0] < 1


HELD_OUT = scoring_frame(120, seed=3)  # 60 items per criterion


@pytest.fixture(scope="module")
def two_tfidfs() -> EnsembleScorer:
    """Two TF-IDF heads pooled, weights chosen on 120 held-out items (60 per criterion)."""
    return EnsembleScorer(members=TWO_TFIDFS).fit(*scoring_frame(160), eval_set=HELD_OUT)


def test_the_pool_is_the_weighted_mean_of_the_members(two_tfidfs: EnsembleScorer) -> None:
    ensemble = two_tfidfs
    X_new, _ = scoring_frame(30, seed=4)
    weights = ensemble.weights_for(ensemble.keys(X_new))
    members = [m.predict_proba(X_new) for m in ensemble.members_]
    expected = weights[:, :1] * members[0] + weights[:, 1:] * members[1]
    assert np.allclose(ensemble.predict_proba(X_new), expected)
    assert np.allclose(ensemble.predict_proba(X_new).sum(axis=1), 1)
    # both criteria have 60 held-out items, enough for their own weights
    assert {"wait-time/planning", "wait-time/reflection", ALL_CRITERIA} == set(ensemble.weights_)


def test_on_the_held_out_items_the_pool_is_never_worse_than_a_member(
    two_tfidfs: EnsembleScorer,
) -> None:
    ensemble = two_tfidfs
    X_eval, y_eval = HELD_OUT
    keys = ensemble.keys(X_eval)
    pooled = ensemble.predict_proba(X_eval)
    for key in set(keys):
        rows = keys == key
        for member in ensemble.members_:
            alone = nll(member.predict_proba(X_eval[rows]), y_eval[rows])
            assert nll(pooled[rows], y_eval[rows]) <= alone + 1e-12


def test_without_held_out_items_members_weigh_the_same() -> None:
    X, y = scoring_frame(80)
    ensemble = EnsembleScorer(members=TWO_TFIDFS).fit(X, y)
    assert ensemble.weights_ == {ALL_CRITERIA: [0.5, 0.5]}


def test_held_out_items_on_a_criterion_not_trained_on_are_left_out() -> None:
    X, y = scoring_frame(160)
    X_eval, y_eval = scoring_frame(120, seed=3)
    ensemble = EnsembleScorer(members=TWO_TFIDFS)
    unknown = (X_eval.assign(criterion_id="questioning"), y_eval)
    assert ensemble.fit(X, y, eval_set=unknown).weights_ == {ALL_CRITERIA: [0.5, 0.5]}
    mixed = (
        pd.concat([X_eval, X_eval.assign(criterion_id="questioning")]),
        np.r_[y_eval, y_eval],
    )
    assert "wait-time/questioning" not in ensemble.fit(X, y, eval_set=mixed).weights_


def test_pooling_already_fitted_members_equals_fitting_the_ensemble(
    two_tfidfs: EnsembleScorer,
) -> None:
    fitted = two_tfidfs
    X, y = scoring_frame(160)
    members = [TfidfScorer(min_df=1).fit(X, y), TfidfScorer(min_df=1, head="logistic").fit(X, y)]
    pooled = EnsembleScorer.of_fitted(members, HELD_OUT)
    assert pooled.weights_ == fitted.weights_
    X_new, _ = scoring_frame(20, seed=5)
    assert np.array_equal(pooled.predict_proba(X_new), fitted.predict_proba(X_new))


def test_an_ensemble_with_a_transformer_saves_and_loads_exactly(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    members = [
        {"kind": "tfidf", "params": {"min_df": 1}},
        {
            "kind": "transformer",
            "params": {"base_model": str(tiny_encoder), "max_length": 32, "stride": 8},
        },
    ]
    X, y = scoring_frame(60)
    ensemble = EnsembleScorer(members=members, seed=5)
    ensemble.fit(X, y, eval_set=scoring_frame(60, seed=2))
    assert ensemble.members_[1].seed == 5  # the ensemble's seed reaches its members
    assert ensemble.members_[1].best_epoch_ is not None  # the eval set reached the encoder
    reloaded = load_scorer(ensemble.save(tmp_path / "ensemble"))
    X_new, _ = scoring_frame(20, seed=6)
    assert type(reloaded) is EnsembleScorer
    assert np.array_equal(reloaded.predict_proba(X_new), ensemble.predict_proba(X_new))


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([{"kind": "tfidf"}], "at least two members"),
        ("tfidf", "at least two members"),
        ([{"kind": "tfidf"}, {"kind": "forest"}], "unknown scorer kind 'forest'"),
        ([{"kind": "tfidf"}, {"kind": "ensemble"}], "cannot hold an ensemble"),
        ([{"kind": "tfidf"}, {"kind": "tfidf", "params": {"min_dff": 1}}], "unknown parameter"),
        ([{"kind": "tfidf"}, {"kind": "tfidf", "params": [1]}], "params a mapping"),
        ([{"kind": "tfidf"}, {"kind": "tfidf", "weight": 2}], "must be a mapping"),
    ],
)
def test_bad_members_are_refused_before_training(members: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EnsembleScorer(members=members).check_params()  # type: ignore[arg-type]


def test_a_grid_step_that_does_not_divide_one_is_refused() -> None:
    with pytest.raises(ValueError, match="grid_step"):
        EnsembleScorer(members=TWO_TFIDFS, grid_step=0.3).check_params()
