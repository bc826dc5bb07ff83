"""Every scorer: the scikit-learn contract, probabilities per level, exact save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from prescore.models.embeddings import PROGRESS_CHUNK_BATCHES, EmbeddingScorer
from prescore.models.essay import EssayScorer
from prescore.models.heads import OrdinalRidgeHeads
from prescore.models.scorer import Scorer, load_scorer
from prescore.models.tfidf import TfidfScorer
from prescore.models.transformer import (
    OrdinalHeads,
    TransformerScorer,
    encoder_rate_groups,
    layer_index,
)
from tests.conftest import scoring_frame


def build(kind: str, encoder: Path) -> Scorer:
    if kind == "tfidf":
        return TfidfScorer(min_df=1)
    if kind == "tfidf-logistic":
        return TfidfScorer(min_df=1, head="logistic")
    if kind == "tfidf-length":
        return TfidfScorer(min_df=1, alpha=1.0, length_features=True)
    if kind == "essay":
        return EssayScorer(min_df=1, folds=3)
    if kind == "essay-embeddings":
        return EssayScorer(min_df=1, folds=3, embeddings=str(encoder))
    if kind == "embeddings":
        return EmbeddingScorer(base_model=str(encoder), window_tokens=20, overlap_tokens=5)
    if kind == "embeddings-length":
        return EmbeddingScorer(
            base_model=str(encoder), window_tokens=20, overlap_tokens=5, length_features=True
        )
    return TransformerScorer(
        base_model=str(encoder),
        max_length=32,
        stride=8,
        training_args={"num_train_epochs": 2, "per_device_train_batch_size": 8},
        seed=7,
    )


@pytest.fixture(
    scope="module",
    params=[
        "tfidf",
        "tfidf-logistic",
        "tfidf-length",
        "essay",
        "essay-embeddings",
        "embeddings",
        "embeddings-length",
        "transformer",
    ],
)
def fitted(request: pytest.FixtureRequest, tiny_encoder: Path) -> Scorer:
    X, y = scoring_frame(80)
    return build(request.param, tiny_encoder).fit(X, y)


def test_probabilities_cover_each_items_own_scale(fitted: Scorer) -> None:
    X, _ = scoring_frame(20, seed=1)
    probabilities = fitted.predict_proba(X)
    assert probabilities.shape == (20, 5)
    assert np.allclose(probabilities.sum(axis=1), 1)
    three_level = (X["criterion_id"] == "planning").to_numpy()
    assert np.all(probabilities[three_level, 3:] == 0)
    assert np.array_equal(fitted.predict(X), probabilities.argmax(axis=1))


def test_save_and_load_predict_identically(fitted: Scorer, tmp_path: Path) -> None:
    X, _ = scoring_frame(20, seed=2)
    reloaded = load_scorer(fitted.save(tmp_path / "scorer"))
    assert type(reloaded) is type(fitted)
    assert np.array_equal(reloaded.predict_proba(X), fitted.predict_proba(X))


def test_unknown_criterion_and_missing_columns_are_refused(fitted: Scorer) -> None:
    X, _ = scoring_frame(4)
    with pytest.raises(ValueError, match="not trained on criteria"):
        fitted.predict_proba(X.assign(criterion_id="questioning"))
    with pytest.raises(ValueError, match="lacks column"):
        fitted.predict_proba(X.drop(columns=["text"]))


@pytest.mark.parametrize("head", ["ridge", "logistic"])
def test_tfidf_learns_the_signal(head: str) -> None:
    X, y = scoring_frame(300)
    X_test, y_test = scoring_frame(100, seed=5)
    predicted = TfidfScorer(min_df=1, head=head, alpha=0.1).fit(X, y).predict(X_test)
    assert np.mean(predicted == y_test) > 0.6  # chance is about 0.27


def test_an_unknown_head_or_a_bad_alpha_is_refused_before_training() -> None:
    with pytest.raises(ValueError, match="head must be"):
        TfidfScorer(head="forest").check_params()
    with pytest.raises(ValueError, match="alpha must be above 0"):
        TfidfScorer(alpha=0).check_params()
    with pytest.raises(ValueError, match="overlap_tokens"):
        EmbeddingScorer(window_tokens=20, overlap_tokens=30).check_params()


def test_leave_one_out_regularises_noise_hard_and_signal_lightly() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 20))
    signal = np.clip(np.rint(2 + features[:, 0]), 0, 4).astype(int)
    noise = rng.integers(0, 5, size=200)
    keys = np.array(["c/signal"] * 200 + ["c/noise"] * 200)
    heads = OrdinalRidgeHeads().fit(
        np.vstack([features, features]), np.r_[signal, noise], keys, {"c/signal": 5, "c/noise": 5}
    )
    alphas = heads.chosen_alphas()
    assert alphas["c/noise"] > alphas["c/signal"]
    # the spread is the leave-one-out error: wider than the training residuals of the noise
    ridge, spread = heads.heads_["c/noise"]
    assert spread > np.std(noise - ridge.predict(features)) > 0


def test_length_features_let_a_head_see_what_normalised_tfidf_cannot() -> None:
    """The level is how long the text is; every text repeats the same words, so TF-IDF rows
    (normalised) are identical and only the length features tell the levels apart."""

    def frame(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
        levels = np.random.default_rng(seed).integers(0, 3, size=90)
        texts = [" ".join(["wait for answers"] * (2 + 6 * int(level))) for level in levels]
        X = pd.DataFrame(
            {"text": texts, "credential_id": "c", "criterion_id": "length", "num_levels": 3}
        )
        return X, levels

    X, y = frame(0)
    X_test, y_test = frame(1)
    plain = TfidfScorer(min_df=1, ngram_max=1).fit(X, y)
    with_length = TfidfScorer(min_df=1, ngram_max=1, length_features=True).fit(X, y)
    assert np.mean(with_length.predict(X_test) == y_test) > 0.95
    assert (
        np.mean(plain.predict(X_test) == y_test) < 0.5
    )  # one prediction for all: chance is about 1/3


def test_a_long_encode_in_chunks_gives_the_same_vectors(tiny_encoder: Path) -> None:
    texts = [f"students wait {n} seconds before answering" for n in range(40)]
    whole = EmbeddingScorer(base_model=str(tiny_encoder), batch_size=64).embed(texts)
    chunked = EmbeddingScorer(base_model=str(tiny_encoder), batch_size=1)
    assert len(texts) > PROGRESS_CHUNK_BATCHES * chunked.batch_size  # takes the chunked path
    assert np.allclose(chunked.embed(texts), whole, atol=1e-6)


@pytest.mark.slow
def test_transformer_training_is_deterministic_under_a_seed(tiny_encoder: Path) -> None:
    X, y = scoring_frame(40)
    first = build("transformer", tiny_encoder).fit(X, y).predict_proba(X)
    second = build("transformer", tiny_encoder).fit(X, y).predict_proba(X)
    assert np.array_equal(first, second)


def test_long_evidence_is_read_whole(tiny_encoder: Path) -> None:
    X, y = scoring_frame(10)
    scorer = build("transformer", tiny_encoder).fit(X, y)
    long_text = " ".join(f"word{i}" for i in range(200)) + " finalword"
    windows = scorer._windows(long_text)
    assert len(windows) > 1
    last = scorer.tokenizer_.decode(windows[-1])
    assert "finalword" in last.replace(" ", "")
    # the end of the text changes the prediction input: it is not cut away
    changed = scorer.predict_proba(X.head(1).assign(text=long_text + " always always always"))
    base = scorer.predict_proba(X.head(1).assign(text=long_text))
    assert not np.array_equal(changed, base)


def test_ordinal_loss_costs_more_the_further_the_miss() -> None:
    heads = OrdinalHeads(hidden_size=1, num_levels=[5])
    index = torch.tensor([0])
    truth = torch.tensor([4])

    def loss_when_predicting(level: int) -> float:
        logits = torch.tensor([[10.0 if k < level else -10.0 for k in range(4)]])
        return float(heads.loss(logits, index, truth))

    losses = [loss_when_predicting(level) for level in range(5)]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 1e-3
    probabilities = heads.probabilities(torch.tensor([[2.0, 0.5, -1.0, -3.0]]), index)[0]
    assert np.isclose(probabilities.sum(), 1) and (probabilities >= 0).all()


def test_the_ranking_loss_pairs_items_of_one_criterion_whose_levels_differ() -> None:
    heads = torch.tensor([0, 0, 0, 1])
    labels = torch.tensor([2, 0, 2, 0])
    first_logits = torch.tensor([1.0, 3.0, 0.0, 9.0], requires_grad=True)
    logits = torch.stack([first_logits, first_logits - 1], dim=1)
    loss = OrdinalHeads.ranking_loss(logits, heads, labels)
    # two pairs, both on criterion 0: item 0 over item 1 (margin -2), item 2 over 1 (-3);
    # item 3 is alone on its criterion, and items 0 and 2 share a level
    expected = torch.nn.functional.softplus(torch.tensor([2.0, 3.0])).mean()
    assert torch.isclose(loss, expected.detach(), atol=1e-3)
    loss.backward()
    grad = first_logits.grad
    assert grad is not None
    assert grad[0] < 0 and grad[2] < 0 and grad[1] > 0 and grad[3] == 0  # ups the higher ones
    no_pairs = OrdinalHeads.ranking_loss(logits, heads, torch.tensor([1, 1, 1, 1]))
    assert float(no_pairs.detach()) == 0


def test_layer_rates_fall_by_the_decay_from_the_top_layer_down(tiny_encoder: Path) -> None:
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tiny_encoder)  # two layers
    for parameter in encoder.encoder.layer[0].attention.parameters():
        parameter.requires_grad = False
    groups = encoder_rate_groups(encoder, 1e-3, 0.5)
    rate_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(encoder.named_parameters())
    assert rate_of[id(named["embeddings.word_embeddings.weight"])] == pytest.approx(2.5e-4)
    assert rate_of[id(named["encoder.layer.0.output.dense.weight"])] == pytest.approx(5e-4)
    assert rate_of[id(named["encoder.layer.1.output.dense.weight"])] == pytest.approx(1e-3)
    assert rate_of[id(named["pooler.dense.weight"])] == pytest.approx(1e-3)
    trainable = [p for p in encoder.parameters() if p.requires_grad]
    assert len(rate_of) == len(trainable)  # every trainable parameter once, no frozen one
    assert {g["lr"] for g in encoder_rate_groups(encoder, 1e-3, 1.0)} == {1e-3}
    # layers are read from the names BERT, MPNet and DistilBERT share, not from a config key
    assert layer_index("transformer.layer.3.attention.q_lin.weight") == 3
    assert layer_index("encoder.relative_attention_bias.weight") is None


@pytest.mark.slow
def test_the_transformer_trains_with_the_ranking_loss_and_layer_decay(tiny_encoder: Path) -> None:
    X, y = scoring_frame(60)
    plain = build("transformer", tiny_encoder).fit(X, y).predict_proba(X)
    for recipe in ({"ranking_weight": 1.0}, {"layer_lr_decay": 0.5}):
        scorer = build("transformer", tiny_encoder).set_params(**recipe).fit(X, y)
        probabilities = scorer.predict_proba(X)
        assert np.isfinite(probabilities).all()
        assert not np.allclose(probabilities, plain), recipe  # each changes the fit


@pytest.mark.slow
def test_the_transformer_ends_on_its_best_calibration_epoch(tiny_encoder: Path) -> None:
    X, y = scoring_frame(60)
    X_held, y_held = scoring_frame(30, seed=9)
    # held-out levels turned upside down: the better it learns, the worse it does there
    held_out = (X_held, X_held["num_levels"].to_numpy() - 1 - y_held)

    def fit(keep_best_epoch: bool) -> TransformerScorer:
        scorer = TransformerScorer(
            base_model=str(tiny_encoder), max_length=32, stride=8,
            training_args={
                "num_train_epochs": 4, "per_device_train_batch_size": 8, "learning_rate": 1e-2
            },
            seed=7, head_learning_rate=0.3, keep_best_epoch=keep_best_epoch,
        )  # fmt: skip
        return scorer.fit(X, y, eval_set=held_out)

    best, last = fit(True), fit(False)
    losses = {e["epoch"]: e["eval_loss"] for e in best.log_history_ if "eval_loss" in e}
    assert len(losses) == 4 and best.best_epoch_ == min(losses, key=losses.__getitem__)
    assert best.best_epoch_ < 4  # so the last epoch is not the best
    # same seed, same training: only the weights it ends on differ
    assert not np.allclose(best.predict_proba(held_out[0]), last.predict_proba(held_out[0]))
    assert last.best_epoch_ is None


def test_cached_embeddings_are_reused_and_equal_fresh_ones(
    tiny_encoder: Path, tmp_path: Path
) -> None:
    X, y = scoring_frame(30)
    cached = EmbeddingScorer(base_model=str(tiny_encoder), cache_dir=str(tmp_path / "cache"))
    fresh = EmbeddingScorer(base_model=str(tiny_encoder))
    first = cached.embed(X["text"].tolist())
    assert np.allclose(first, fresh.embed(X["text"].tolist()), atol=1e-6)

    real = cached._encoder()

    class NoEncoder:  # reads windows as the real one does (its tokenizer), encodes nothing
        tokenizer, max_seq_length = real.tokenizer, real.max_seq_length

        def encode(self, *_: object, **__: object) -> None:
            raise AssertionError("encoded a text that was cached")

    cached.encoder_ = NoEncoder()
    assert np.array_equal(cached.embed(X["text"].tolist()), first.astype(np.float32))
    database = (tmp_path / "cache" / "embeddings.sqlite").read_bytes()
    assert X["text"].iloc[0].encode() not in database  # digests, not evidence text
    other = EmbeddingScorer(
        base_model=str(tiny_encoder), cache_dir=str(tmp_path / "cache"), window_tokens=50
    )
    other.encoder_ = NoEncoder()
    with pytest.raises(AssertionError, match="encoded a text"):  # other windows, other vectors
        other.embed(X["text"].tolist()[:1])
