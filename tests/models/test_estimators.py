"""Scorers as scikit-learn estimators: params stored as given, so get_params / set_params /
clone work for every kind, and a config's settings reach Trainer unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone

from prescore.models.ensemble import EnsembleScorer
from prescore.models.scorer import Scorer, make_scorer, scorer_classes
from prescore.models.tfidf import TfidfScorer
from prescore.models.transformer import DEFAULT_TRAINING_ARGS, TransformerScorer
from tests.conftest import scoring_frame

# every kind with params away from their defaults, mutable ones included
NON_DEFAULT: dict[str, dict[str, Any]] = {
    "tfidf": {"max_features": 500, "ngram_max": 1, "head": "logistic", "alpha": 0.5},
    "essay": {"char_ngram_max": 4, "alpha": 0.5, "cut_points": "round", "stack": None, "seed": 5},
    "embeddings": {"window_tokens": 50, "overlap_tokens": 10, "batch_size": 4},
    "transformer": {
        "max_length": 64,
        "stride": 8,
        "training_args": {"num_train_epochs": 1, "ddp_backend": "gloo"},
        "freeze_layers": 2,
        "seed": 7,
    },
    "ensemble": {
        "members": [{"kind": "tfidf", "params": {"min_df": 1}}, {"kind": "embeddings"}],
        "grid_step": 0.25,
    },
}


def test_every_kind_is_covered() -> None:
    assert set(NON_DEFAULT) == set(scorer_classes())


@pytest.mark.parametrize("kind", sorted(NON_DEFAULT))
def test_params_are_stored_as_given_and_round_trip(kind: str) -> None:
    params = NON_DEFAULT[kind]
    scorer = make_scorer(kind, params)
    got = scorer.get_params(deep=False)
    assert {name: got[name] for name in params} == params
    for name in params:  # stored as given: the very object, not a rewritten copy
        assert got[name] is params[name]
    rebuilt = type(scorer)(**got)
    assert rebuilt.get_params(deep=False) == got


@pytest.mark.parametrize("kind", sorted(NON_DEFAULT))
def test_a_clone_is_unfitted_with_equal_params(kind: str) -> None:
    scorer = make_scorer(kind, NON_DEFAULT[kind])
    scorer.num_levels_ = {"c/a": 3}  # as a fit would leave it
    copy = clone(scorer)
    assert type(copy) is type(scorer) and copy is not scorer
    assert copy.get_params(deep=False) == scorer.get_params(deep=False)
    assert not hasattr(copy, "num_levels_")
    for name, value in NON_DEFAULT[kind].items():  # mutable params are copies, not shared
        if isinstance(value, dict | list):
            assert copy.get_params()[name] is not value


@pytest.mark.parametrize("kind", sorted(NON_DEFAULT))
def test_set_params_changes_only_what_it_names(kind: str) -> None:
    scorer = scorer_classes()[kind]()
    before = scorer.get_params(deep=False)
    name, value = next(iter(NON_DEFAULT[kind].items()))
    assert scorer.set_params(**{name: value}) is scorer
    assert scorer.get_params(deep=False) == {**before, name: value}
    with pytest.raises(ValueError, match="Invalid parameter"):
        scorer.set_params(no_such_param=1)


def test_the_ensembles_default_members_are_chosen_when_used_not_when_built() -> None:
    ensemble = EnsembleScorer()
    assert ensemble.members is None
    assert clone(ensemble).members is None  # clone refuses a constructor that rewrites
    assert [m["kind"] for m in ensemble.member_specs()] == ["transformer", "essay"]


def test_a_clone_of_a_fitted_scorer_fits_to_the_same_predictions() -> None:
    X, y = scoring_frame(80)
    fitted = TfidfScorer(min_df=1).fit(X, y)
    again = clone(fitted).fit(X, y)
    assert np.array_equal(again.predict_proba(X), fitted.predict_proba(X))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epochs": 2}, r"unknown parameter\(s\) \['epochs'\] for transformer"),
        ({"training_args": {"num_epochs": 2}}, "did you mean num_train_epochs"),
        ({"training_args": {"warmup_ratio": 0.1}}, "did you mean warmup_steps"),
        ({"training_args": {"output_dir": "x"}}, "set by the transformer scorer itself"),
        ({"training_args": {"seed": 1}}, "the config's `seed`"),
        ({"training_args": {"load_best_model_at_end": False}}, "keep_best_epoch"),
        ({"training_args": {"num_train_epochs": 0}}, "num_train_epochs > 0"),
        ({"training_args": [1]}, "training_args must be a mapping"),
        ({"layer_lr_decay": 0}, "layer_lr_decay must be in"),
        ({"layer_lr_decay": 1.2}, "layer_lr_decay must be in"),
        ({"ranking_weight": -1}, "ranking_weight >= 0"),
    ],
)
def test_bad_training_args_are_refused_before_training(
    params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_scorer("transformer", params)


def test_training_args_merge_over_the_defaults() -> None:
    settings = TransformerScorer().trainer_settings()
    assert settings == {**DEFAULT_TRAINING_ARGS, "per_device_eval_batch_size": 8}
    given = TransformerScorer(training_args={"per_device_train_batch_size": 32, "bf16": False})
    settings = given.trainer_settings()
    assert settings["per_device_train_batch_size"] == 32
    assert settings["per_device_eval_batch_size"] == 32  # follows the training batch
    assert settings["bf16"] is False and settings["learning_rate"] == 5e-5
    assert not given._use_bf16()


def test_mapped_tokenization_gives_the_windows_of_one_text_at_a_time(
    tiny_encoder: Path,
) -> None:
    from transformers import AutoTokenizer

    scorer = TransformerScorer(base_model=str(tiny_encoder), max_length=32, stride=8)
    scorer.tokenizer_ = AutoTokenizer.from_pretrained(tiny_encoder)
    X, y = scoring_frame(12)
    long_text = " ".join(f"word{i}" for i in range(120))
    X.loc[[0, 5], "text"] = long_text  # one text scored on two criteria: one document
    scorer.head_index_ = {key: i for i, key in enumerate(sorted(set(scorer.keys(X))))}
    mapped = scorer.documents(X, y, mapped=True)
    direct = scorer.documents(X, y)
    assert mapped == direct
    assert len(mapped) == len(set(X["text"])) and mapped[0].rows == [0, 5]
    for document, text in zip(mapped, dict.fromkeys(X["text"]), strict=True):
        alone = scorer.tokenizer_(
            text, truncation=True, max_length=32, stride=8, return_overflowing_tokens=True
        )["input_ids"]
        assert document.windows == [list(ids) for ids in alone]
    assert len(mapped[0].windows) > 1


def test_only_epoch_trained_scorers_report_a_fit_summary() -> None:
    assert Scorer().fit_summary() == {}
    assert TfidfScorer().fit_summary() == {}


def test_a_warmup_share_is_said_in_the_installed_transformers_own_terms() -> None:
    """0.1 of the steps: transformers 5 reads it from warmup_steps, 4.x only as warmup_ratio
    (its warmup_steps takes whole steps, so 0.1 there meant no warm-up)."""
    from prescore.models.transformer import share_of_steps_for_warmup

    share = {"warmup_steps": 0.1, "learning_rate": 5e-5}
    assert share_of_steps_for_warmup(share, 5) == share
    assert share_of_steps_for_warmup(share, 4) == {
        "warmup_steps": 0,
        "warmup_ratio": 0.1,
        "learning_rate": 5e-5,
    }
    whole = {"warmup_steps": 20}
    assert share_of_steps_for_warmup(whole, 4) == whole  # whole steps mean the same in both
