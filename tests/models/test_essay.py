"""The essay scorer and its ordinal parts on tiny data: cut points, probabilities that agree
with them, and tuning that never looks at the eval set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from prescore.models.essay import EssayScorer
from prescore.models.essay_features import WRITING_FEATURES, EssayFeatures
from prescore.models.kernel_ridge import fit_dual_ridge, linear_kernel, out_of_fold
from prescore.models.ordinal import (
    fit_cut_points,
    fit_spread,
    level_probabilities,
    levels_from_cut_points,
    qwk,
    rounding_cut_points,
)
from tests.conftest import scoring_frame


def noisy_scores(n: int, levels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels, and a regression score that tracks them with a bias a plain rounding misses."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(levels, size=n)
    return 0.6 * labels + 0.3 + rng.normal(0, 0.3, n), labels


def test_qwk_matches_scikit_learn() -> None:
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(1)
    a, b = rng.integers(5, size=200), rng.integers(5, size=200)
    assert qwk(a, b, 5) == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"))


def test_cut_points_are_increasing_and_beat_rounding() -> None:
    scores, labels = noisy_scores(400, 6)
    cuts = fit_cut_points(scores, labels, 6)
    assert len(cuts) == 5 and np.all(np.diff(cuts) > 0)
    rounded = qwk(levels_from_cut_points(scores, rounding_cut_points(6)), labels, 6)
    assert qwk(levels_from_cut_points(scores, cuts), labels, 6) > rounded


def test_cut_points_stay_at_rounding_without_signal() -> None:
    assert np.array_equal(fit_cut_points(np.zeros(5), np.zeros(5, int), 3), [0.5, 1.5])


@pytest.mark.parametrize("spread", [0.2, 1.0, 5.0])
def test_probabilities_sum_to_one_and_their_argmax_is_the_cut_point_level(spread: float) -> None:
    cuts = np.array([0.2, 0.25, 1.9, 4.0])  # uneven intervals, one very narrow
    scores = np.linspace(-3, 7, 2001)
    p = level_probabilities(scores, cuts, 5, spread)
    assert p.shape == (2001, 5) and (p >= 0).all()
    assert np.allclose(p.sum(axis=1), 1)
    levels = levels_from_cut_points(scores, cuts)
    assert np.array_equal(p.argmax(axis=1), levels)
    assert (np.diff(levels) >= 0).all()  # a higher score never gets a lower level
    expected = p @ np.arange(5)
    assert (np.diff(expected) >= -1e-12).all()  # nor a lower expected level


def test_the_spread_follows_how_far_off_the_scores_are() -> None:
    scores, labels = noisy_scores(400, 6)
    cuts = fit_cut_points(scores, labels, 6)
    tight = fit_spread(scores, labels, cuts, 6)
    loose = fit_spread(scores + np.random.default_rng(2).normal(0, 1, 400), labels, cuts, 6)
    assert tight < loose


def test_dual_ridge_agrees_with_scikit_learn() -> None:
    from scipy import sparse
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(3)
    words = sparse.random(60, 200, density=0.1, random_state=3, format="csr")
    dense = rng.normal(size=(60, 4))
    targets = rng.normal(size=(60, 2))
    features = (words, dense)
    ridge = fit_dual_ridge(features, linear_kernel(features, features), targets, np.array([0.7, 3]))
    for column, alpha in enumerate([0.7, 3]):
        reference = Ridge(alpha=alpha).fit(
            sparse.hstack([words, dense]).toarray(), targets[:, column]
        )
        reference_prediction = reference.predict(sparse.hstack([words, dense]).toarray())
        assert np.allclose(ridge.predict(features)[:, column], reference_prediction)
    oof = out_of_fold(linear_kernel(features, features), targets, 3, 0, np.array([1.0]))
    assert oof.shape == (1, 60, 2)


def test_writing_features_count_what_the_training_texts_never_used() -> None:
    features = EssayFeatures(min_df=1).fit(["the cat sat on the mat"] * 2)
    words, writing = features.transform(["the cat sat", "teh cta sat on teh mat"])
    assert writing.shape == (2, len(WRITING_FEATURES)) and words.shape[0] == 2
    unknown = WRITING_FEATURES.index("share of words unknown to training")
    assert writing[1, unknown] > writing[0, unknown]


def test_the_scorer_learns_the_signal_and_predicts_its_cut_point_levels() -> None:
    X, y = scoring_frame(160)
    scorer = EssayScorer(min_df=1, folds=3, stack=None).fit(X[:120], y[:120])
    p = scorer.predict_proba(X[120:])
    assert np.allclose(p.sum(axis=1), 1) and (p >= 0).all()
    assert np.array_equal(p.argmax(axis=1), scorer.predict(X[120:]))
    three = np.asarray(X[120:]["num_levels"] == 3)
    assert (p[three, 3:] == 0).all()  # nothing beyond a 3-level criterion's scale
    assert (scorer.predict(X[120:]) == y[120:]).mean() > 0.8
    for fitted in scorer.criteria_.values():
        assert np.all(np.diff(fitted.cut_points) > 0)


def test_the_eval_set_changes_nothing() -> None:
    X, y = scoring_frame(100)
    alone = EssayScorer(min_df=1, folds=3, stack=None).fit(X[:70], y[:70])
    given = EssayScorer(min_df=1, folds=3, stack=None).fit(
        X[:70], y[:70], eval_set=(X[70:], y[70:])
    )
    assert np.array_equal(alone.predict_proba(X), given.predict_proba(X))
    again = clone(alone).fit(X[:70], y[:70])
    assert np.array_equal(again.predict_proba(X), alone.predict_proba(X))


def test_criteria_on_the_same_texts_share_one_vocabulary() -> None:
    X, y = scoring_frame(60)
    texts = X["text"].tolist()
    both = pd.concat(
        [X.assign(criterion_id="one", num_levels=5), X.assign(criterion_id="two", num_levels=5)],
        ignore_index=True,
    )
    labels = np.concatenate([np.minimum(y, 4), 4 - np.minimum(y, 4)])
    scorer = EssayScorer(min_df=1, folds=3, stack=None).fit(both, labels)
    assert len(scorer.groups_) == 1 and len(scorer.criteria_) == 2
    assert len(scorer.predict_proba(both)) == 2 * len(texts)


def test_bad_settings_are_refused_before_training() -> None:
    from prescore.models.scorer import make_scorer

    with pytest.raises(ValueError, match="cut_points"):
        make_scorer("essay", {"cut_points": "median"})
    with pytest.raises(ValueError, match="char_analyzer"):
        make_scorer("essay", {"char_analyzer": "word"})
    with pytest.raises(ValueError, match="folds"):
        make_scorer("essay", {"folds": 1})


def test_the_stacked_booster_round_trips_and_keeps_the_cut_point_levels(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    from prescore.models.scorer import load_scorer

    X, y = scoring_frame(200)
    scorer = EssayScorer(min_df=1, folds=3, stack="lightgbm").fit(X[:160], y[:160])
    p = scorer.predict_proba(X[160:])
    assert np.allclose(p.sum(axis=1), 1)
    assert np.array_equal(p.argmax(axis=1), scorer.predict(X[160:]))
    assert all(f.booster is not None for f in scorer.criteria_.values())
    reloaded = load_scorer(scorer.save(tmp_path / "essay"))
    assert np.array_equal(reloaded.predict_proba(X[160:]), p)


def test_the_expected_level_is_the_score_where_the_cut_point_level_allows() -> None:
    cuts = rounding_cut_points(5)
    scores = np.array([-1.0, 1.0, 1.8, 2.3, 3.0, 4.5])
    p = level_probabilities(scores, cuts, 5, 0.6)
    assert np.allclose(p @ np.arange(5), np.clip(scores, 0, 4), atol=1e-6)
    assert np.array_equal(p.argmax(axis=1), levels_from_cut_points(scores, cuts))


def key_idea_frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Answers scored 1 where they name exactly one of two ideas, 0 where they name both or
    neither: no weighting of words scores that, trees over which words are present can."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for _ in range(n):
        first, second = bool(rng.integers(2)), bool(rng.integers(2))
        named = [w for w, present in (("salt", first), ("heat", second)) if present]
        # fillers of random length, so how many words an answer has tells nothing
        before, after = (
            " ".join(rng.choice(["cell", "wall", "move", "into", "pore", "flow"], size=size))
            for size in rng.integers(4, 12, size=2)
        )
        rows.append(
            {
                "text": " ".join([before, *named, after]),
                "credential_id": "biology",
                "criterion_id": "transport",
                "num_levels": 2,
            }
        )
        labels.append(int(first != second))
    return pd.DataFrame(rows), np.array(labels)


def test_trees_over_the_words_score_what_no_weighting_of_them_can(tmp_path: Path) -> None:
    from prescore.models.scorer import load_scorer

    X, y = key_idea_frame(300)
    # single words only: a pair "salt heat" would give a linear model the answer
    settings = {"min_df": 1, "folds": 3, "char_weight": 0.0, "word_ngram_max": 1}
    blind = EssayScorer(stack_words=False, stack_blocks=False, **settings).fit(X[:240], y[:240])
    trees = EssayScorer(stack_words=True, stack_blocks=True, **settings).fit(X[:240], y[:240])
    held = y[240:]
    assert (blind.predict(X[240:]) == held).mean() < 0.9  # 0.83 (0.58-0.83 over seeds 0-3)
    assert (trees.predict(X[240:]) == held).mean() >= 0.95  # 1.0 (0.95-1.0)
    reloaded = load_scorer(trees.save(tmp_path / "essay"))
    assert np.array_equal(reloaded.predict_proba(X[240:]), trees.predict_proba(X[240:]))


def test_each_feature_block_gets_a_ridge_the_booster_reads() -> None:
    X, y = scoring_frame(200)
    scorer = EssayScorer(min_df=1, folds=3).fit(X[:160], y[:160])
    # words and characters in each group of texts; no encoder vectors here
    assert [len(group.block_ridges) for group in scorer.groups_] == [2, 2]
    alone = EssayScorer(min_df=1, folds=3, stack_blocks=False).fit(X[:160], y[:160])
    assert [group.block_ridges for group in alone.groups_] == [[], []]
    p = scorer.predict_proba(X[160:])
    assert np.allclose(p.sum(axis=1), 1)
    assert np.array_equal(p.argmax(axis=1), scorer.predict(X[160:]))


def test_a_model_saved_before_the_booster_read_blocks_and_words_still_scores(
    tmp_path: Path,
) -> None:
    import json

    import joblib

    from prescore.models.essay import STATE_FILE
    from prescore.models.scorer import SCORER_FILE, load_scorer

    X, y = scoring_frame(120)
    old = {"stack_words": False, "stack_blocks": False, "stack_criteria": False}
    scorer = EssayScorer(min_df=1, folds=3, **old)
    folder = scorer.fit(X[:90], y[:90]).save(tmp_path / "essay")
    # as the previous release wrote it: no such params, no block ridges in its groups
    meta = json.loads((folder / SCORER_FILE).read_text())
    for param in ("stack_words", "stack_blocks", "stack_criteria"):
        del meta["params"][param]
    (folder / SCORER_FILE).write_text(json.dumps(meta))
    state = joblib.load(folder / STATE_FILE)
    for group in state["groups"]:
        del group.__dict__["block_ridges"]
    joblib.dump(state, folder / STATE_FILE)
    reloaded = load_scorer(folder)
    assert np.array_equal(reloaded.predict_proba(X[90:]), scorer.predict_proba(X[90:]))


def test_criteria_on_the_same_texts_each_read_the_others_scores(tmp_path: Path) -> None:
    from prescore.models.scorer import load_scorer

    X, y = scoring_frame(160)
    both = pd.concat(
        [X.assign(criterion_id="one", num_levels=5), X.assign(criterion_id="two", num_levels=5)],
        ignore_index=True,
    )
    labels = np.concatenate([np.minimum(y, 4), 4 - np.minimum(y, 4)])
    fitted = {
        crossed: EssayScorer(min_df=1, folds=3, stack_criteria=crossed).fit(both, labels)
        for crossed in (False, True)
    }
    width = {
        crossed: [f.booster.n_features_in_ for f in scorer.criteria_.values()]
        for crossed, scorer in fitted.items()
    }
    # the other criterion's ridge score and its two block ridges' (words, characters)
    assert [w - v for w, v in zip(width[True], width[False], strict=True)] == [3, 3]
    reloaded = load_scorer(fitted[True].save(tmp_path / "essay"))
    assert np.array_equal(reloaded.predict_proba(both), fitted[True].predict_proba(both))
